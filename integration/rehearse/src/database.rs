//! The database half of the audit: read-only SQL over the legacy table names (`events`,
//! `orders`, `payments`), restricted to the run's events. `held_qty` is used where the schema
//! has it (ours); a legacy schema is audited without it.

use crate::audit::Check;
use crate::report::DatabaseAudit;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

const AUDIT_TIMEOUT: Duration = Duration::from_secs(60);

fn unavailable(detail: String) -> DatabaseAudit {
    DatabaseAudit {
        status: "unavailable".into(),
        detail,
        checks: Vec::new(),
    }
}

pub async fn audit(url: &str, events: &[String]) -> DatabaseAudit {
    let options = match PgConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => return unavailable(format!("not a PostgreSQL URL: {e}")),
    };
    let host = options.get_host().to_owned();
    let local = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !local {
        return unavailable(format!(
            "database host {host} is not a loopback address; the rehearsal only reads local databases"
        ));
    }
    let pool = match PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
    {
        Ok(p) => p,
        Err(e) => return unavailable(format!("cannot connect: {e}")),
    };
    let result = tokio::time::timeout(AUDIT_TIMEOUT, checks(&pool, events)).await;
    pool.close().await;
    match result {
        Ok(Ok(checks)) => {
            let passed = checks.iter().all(|c| c.passed != Some(false));
            DatabaseAudit {
                status: if passed { "passed" } else { "failed" }.into(),
                detail: format!("{} event(s) audited with read-only SQL", events.len()),
                checks,
            }
        }
        Ok(Err(e)) => unavailable(format!("query failed: {e}")),
        Err(_) => unavailable(format!("no answer within {AUDIT_TIMEOUT:?}")),
    }
}

fn check(name: &str, spec: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        spec: spec.to_owned(),
        passed: Some(passed),
        detail,
    }
}

async fn checks(pool: &PgPool, events: &[String]) -> Result<Vec<Check>, sqlx::Error> {
    let ids: Vec<String> = events.to_vec();
    // Ours keeps the stock in shards and shows the legacy columns in a view; legacy keeps
    // sold_qty (and no held_qty) on `events`.
    let with_stock: bool =
        sqlx::query_scalar("SELECT to_regclass('events_with_stock') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let relation = if with_stock {
        "events_with_stock"
    } else {
        "events"
    };
    let has_held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_name = $1 AND column_name = 'held_qty')",
    )
    .bind(relation)
    .fetch_one(pool)
    .await?;
    let held = if has_held { "e.held_qty" } else { "0" };
    let rows = sqlx::query(&format!(
        "SELECT e.id::text AS id, e.total_qty::bigint AS total, e.sold_qty::bigint AS sold, \
                ({held})::bigint AS held, \
                COALESCE((SELECT SUM(o.qty) FROM orders o \
                          WHERE o.event_id = e.id AND o.status = 'PAID'), 0)::bigint AS paid, \
                COALESCE((SELECT SUM(o.qty) FROM orders o \
                          WHERE o.event_id = e.id AND o.status IN ('HOLD', 'FAIL')), 0)::bigint AS open \
         FROM {relation} e WHERE e.id::text = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    let (mut over, mut sold_diff, mut held_diff, mut summary) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let (total, sold, held, paid, open): (i64, i64, i64, i64, i64) = (
            r.try_get("total")?,
            r.try_get("sold")?,
            r.try_get("held")?,
            r.try_get("paid")?,
            r.try_get("open")?,
        );
        summary.push(format!(
            "{id}: total {total}, sold {sold}, held {held}, PAID orders {paid}"
        ));
        if sold + held > total || sold < 0 || held < 0 {
            over.push(format!("{id}: sold {sold} + held {held} > total {total}"));
        }
        if sold != paid {
            sold_diff.push(format!("{id}: sold_qty {sold} ≠ Σ PAID qty {paid}"));
        }
        if has_held && held != open {
            held_diff.push(format!("{id}: held_qty {held} ≠ Σ HOLD/FAIL qty {open}"));
        }
    }
    if rows.len() != ids.len() {
        over.push(format!(
            "{} of {} events not found in the database",
            ids.len() - rows.len(),
            ids.len()
        ));
    }
    out.push(check(
        "no oversell: sold + held ≤ total",
        "§8.1",
        over.is_empty(),
        if over.is_empty() {
            summary.join("; ")
        } else {
            over.join("; ")
        },
    ));
    out.push(check(
        "sold_qty = Σ qty of PAID orders",
        "§8.1",
        sold_diff.is_empty(),
        if sold_diff.is_empty() {
            "every event agrees".into()
        } else {
            sold_diff.join("; ")
        },
    ));
    if has_held {
        out.push(check(
            "held_qty = Σ qty of HOLD and FAIL orders",
            "§6, §8.1",
            held_diff.is_empty(),
            if held_diff.is_empty() {
                "every event agrees".into()
            } else {
                held_diff.join("; ")
            },
        ));
    }

    let over_limit: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM ( \
           SELECT o.user_id, o.event_id FROM orders o JOIN events e ON e.id = o.event_id \
           WHERE o.event_id::text = ANY($1) AND o.status IN ('HOLD', 'FAIL', 'PAID') \
           GROUP BY o.user_id, o.event_id HAVING SUM(o.qty) > MAX(e.max_per_user)) x",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    out.push(check(
        "per-user limit respected",
        "§8.2",
        over_limit == 0,
        format!("{over_limit} (user, event) pair(s) above max_per_user"),
    ));

    let paid_without_one_ok: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM ( \
           SELECT o.id FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.status = 'OK' \
           WHERE o.event_id::text = ANY($1) AND o.status = 'PAID' \
           GROUP BY o.id HAVING COUNT(p.id) <> 1) x",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    out.push(check(
        "every PAID order has exactly one OK payment",
        "§8.3",
        paid_without_one_ok == 0,
        format!("{paid_without_one_ok} PAID order(s) without exactly one OK payment"),
    ));

    let stray_ok: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM payments p JOIN orders o ON o.id = p.order_id \
         WHERE o.event_id::text = ANY($1) AND p.status = 'OK' AND o.status <> 'PAID'",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    out.push(check(
        "every OK payment belongs to a PAID order (else REFUND_REQUIRED)",
        "§8.3",
        stray_ok == 0,
        format!("{stray_ok} OK payment(s) of orders that are not PAID"),
    ));

    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*)::bigint FROM payments p JOIN orders o ON o.id = p.order_id \
         WHERE o.event_id::text = ANY($1) AND p.status = 'REQ'",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    out.push(check(
        "no payment left REQ after the sale settled",
        "§8.5",
        pending == 0,
        format!("{pending} REQ payment(s)"),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// A fresh database with the schema of `adapters/postgres`, or `None` (test skipped) when
    /// no PostgreSQL answers on loopback.
    async fn fresh_database() -> Option<(String, String)> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect(ADMIN_URL)
            .await
            .ok()?;
        let name = format!("rehearse_audit_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .ok()?;
        admin.close().await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../adapters/postgres/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .ok()?;
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "sql"))
        {
            let sql = std::fs::read_to_string(f).ok()?;
            sqlx::raw_sql(&sql).execute(&pool).await.ok()?;
        }
        pool.close().await;
        Some((url, name))
    }

    async fn drop_database(name: &str) {
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(ADMIN_URL)
            .await
        {
            let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }

    /// Sets the event's sold count, in the stock shard (ours) or on the event row (legacy).
    async fn set_sold(pool: &PgPool, event: &str, sold: i64) {
        let sharded: bool = sqlx::query_scalar("SELECT to_regclass('event_stock') IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
        let sql = if sharded {
            format!(
                "INSERT INTO event_stock (event_id, shard, total_qty, sold_qty, held_qty, on_sale) \
                 VALUES ('{event}', 0, 10, {sold}, 0, true) \
                 ON CONFLICT (event_id, shard) DO UPDATE SET sold_qty = EXCLUDED.sold_qty"
            )
        } else {
            format!("UPDATE events SET sold_qty = {sold} WHERE id = '{event}'")
        };
        sqlx::raw_sql(&sql).execute(pool).await.unwrap();
    }

    fn passed(a: &DatabaseAudit, name: &str) -> Option<bool> {
        a.checks
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.passed)
    }

    #[tokio::test]
    async fn the_database_audit_finds_a_sold_count_without_paid_orders_and_a_paid_order_without_payment()
     {
        let Some((url, name)) = fresh_database().await else {
            eprintln!("skipped: no PostgreSQL with the adapters/postgres schema on 127.0.0.1:5432");
            return;
        };
        let event = uuid::Uuid::new_v4().to_string();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        // Sold 3, but the PAID orders hold 4, and one of them has no OK payment.
        sqlx::raw_sql(&format!(
            "INSERT INTO events (id, name, starts_at, ends_at, total_qty, max_per_user, price, status) \
               VALUES ('{event}', 'Audit', now(), now() + interval '1 day', 10, 2, 1000, 'ONSALE');"
        ))
        .execute(&pool)
        .await
        .unwrap();
        set_sold(&pool, &event, 3).await;
        sqlx::raw_sql(&format!(
            "INSERT INTO orders (id, user_id, event_id, qty, status, amount, hold_expires_at) VALUES \
               ('00000000-0000-0000-0000-00000000000a', gen_random_uuid(), '{event}', 2, 'PAID', 2000, now()), \
               ('00000000-0000-0000-0000-00000000000b', gen_random_uuid(), '{event}', 2, 'PAID', 2000, now()); \
             INSERT INTO payments (order_id, status, method, amount, request_id) VALUES \
               ('00000000-0000-0000-0000-00000000000a', 'OK', 'MOCK', 2000, gen_random_uuid());"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let broken = audit(&url, std::slice::from_ref(&event)).await;
        assert_eq!(broken.status, "failed", "{broken:#?}");
        assert_eq!(
            passed(&broken, "sold_qty = Σ qty of PAID orders"),
            Some(false)
        );
        assert_eq!(
            passed(&broken, "every PAID order has exactly one OK payment"),
            Some(false)
        );
        assert_eq!(
            passed(&broken, "no oversell: sold + held ≤ total"),
            Some(true)
        );
        assert_eq!(passed(&broken, "per-user limit respected"), Some(true));

        // Repaired: the second order's payment exists and the count is right.
        sqlx::raw_sql(
            "INSERT INTO payments (order_id, status, method, amount, request_id) VALUES \
               ('00000000-0000-0000-0000-00000000000b', 'OK', 'MOCK', 2000, gen_random_uuid());",
        )
        .execute(&pool)
        .await
        .unwrap();
        set_sold(&pool, &event, 4).await;
        pool.close().await;
        let sound = audit(&url, &[event]).await;
        assert_eq!(sound.status, "passed", "{sound:#?}");
        drop_database(&name).await;
    }

    #[tokio::test]
    async fn a_remote_database_is_never_audited() {
        let a = audit("postgres://u@db.example.com/x", &[]).await;
        assert_eq!(a.status, "unavailable");
        assert!(a.detail.contains("not a loopback"), "{}", a.detail);
    }
}
