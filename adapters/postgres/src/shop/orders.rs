//! `OrderStore`: the reservation, idempotency records and hold expiry.

use super::batch::created;
use super::{PgShop, Tx, gather, limit_param, lock_shards};
use crate::error::db;
use crate::row::{self, ORDER_COLUMNS, get, get_int, ts};
use async_trait::async_trait;
use flash_core::domain::{
    HoldOutcome, HoldRejection, HoldRequest, IdempotencyRecord, KeyedOutcome, Order, check_hold,
};
use flash_core::ports::{OrderStore, StoreResult};
use flash_core::{OrderId, StoreError, Timestamp, UserId};
use sqlx::Postgres;
use sqlx::postgres::PgRow;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A refusal recorded under a key by a version before refusals stopped being kept; such rows
/// expire with their key (24 h), and are read until then.
fn parse_rejection(s: &str) -> Option<HoldRejection> {
    match s {
        "EventNotFound" => Some(HoldRejection::EventNotFound),
        "NotOnSale" => Some(HoldRejection::NotOnSale),
        "SoldOut" => Some(HoldRejection::SoldOut),
        "OverUserLimit" => Some(HoldRejection::OverUserLimit),
        _ => None,
    }
}

/// Claims (user, key) and reads the event, the user's committed quantity and the shards with
/// room for the order, in one round trip.
/// The claim inserts the record, or takes over an expired one; a live record of another
/// transaction makes the INSERT wait for it to finish, so concurrent duplicates of one key
/// serialize here and the losers find the winner's outcome. `fresh` is 0 when the key is taken.
const CLAIM_SQL: &str = "\
WITH claim AS ( \
    INSERT INTO idempotency_keys (user_id, key, fingerprint, expires_at, created_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (user_id, key) DO UPDATE \
        SET fingerprint = EXCLUDED.fingerprint, order_id = NULL, rejection = NULL, \
            expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at \
        WHERE idempotency_keys.expires_at <= EXCLUDED.created_at \
    RETURNING 1) \
SELECT (SELECT count(*) FROM claim) AS fresh, \
       e.id, e.name, e.starts_at, e.ends_at, e.total_qty, e.sold_qty, e.held_qty, \
       e.max_per_user, e.price, e.status::text AS status, e.created_at, e.updated_at, \
       e.prequeue_starts_at, e.queue_mode, coalesce(q.committed_qty, 0) AS committed, \
       ARRAY(SELECT shard FROM event_stock \
             WHERE event_id = $6 AND on_sale AND total_qty - sold_qty - held_qty >= $7) \
           AS candidates \
FROM (SELECT 1) AS one \
LEFT JOIN events_with_stock e ON e.id = $6 \
LEFT JOIN order_quotas q ON q.user_id = $1 AND q.event_id = $6";

/// Raises the user's committed quantity if it stays within the limit (the upsert locks the
/// (user, event) row, so one user's concurrent orders serialize on it and nobody else's do),
/// and only then inserts the order and points the idempotency record at it. No row: over the
/// limit.
const PLACE_SQL: &str = "\
WITH quota AS ( \
    INSERT INTO order_quotas (user_id, event_id, committed_qty) \
    SELECT $1, $2, $3 WHERE $3 <= $4 \
    ON CONFLICT (user_id, event_id) DO UPDATE \
        SET committed_qty = order_quotas.committed_qty + EXCLUDED.committed_qty \
        WHERE order_quotas.committed_qty + EXCLUDED.committed_qty <= $4 \
    RETURNING committed_qty), \
placed AS ( \
    INSERT INTO orders (id, user_id, event_id, qty, status, amount, idem_key, hold_expires_at, \
                        created_at, updated_at) \
    SELECT $5, $1, $2, $3, 'HOLD', $6, $7, $8, $9, $9 FROM quota \
    RETURNING id) \
UPDATE idempotency_keys k SET order_id = placed.id FROM placed \
WHERE k.user_id = $1 AND k.key = $7 \
RETURNING k.order_id";

/// Takes the stock from one of the shards that had room in the snapshot, and records it on the
/// order. The shard row is what concurrent buyers of one event contend for, so this is the last
/// statement before COMMIT. The pick's predicate reads only key columns, so it locks exactly the
/// row it returns (a re-check after a concurrent update cannot make it lock one and move on);
/// `{wait}` is `SKIP LOCKED` for the first try (any free shard will do) or empty (wait for one).
/// `picked` NULL: every candidate was busy; `picked` without `took`: the room went meanwhile.
const TAKE_STOCK_SQL: &str = "\
WITH pick AS ( \
    SELECT shard FROM event_stock WHERE event_id = $1 AND shard = ANY($3) \
    ORDER BY random() LIMIT 1 FOR UPDATE {wait}), \
took AS ( \
    UPDATE event_stock s SET held_qty = s.held_qty + $2 FROM pick \
    WHERE s.event_id = $1 AND s.shard = pick.shard AND s.on_sale \
      AND s.total_qty - s.sold_qty - s.held_qty >= $2 \
    RETURNING s.shard), \
mark AS (UPDATE orders SET stock_shard = (SELECT shard FROM took) WHERE id = $4 \
         AND EXISTS (SELECT 1 FROM took)) \
SELECT (SELECT shard FROM pick) AS picked, (SELECT shard FROM took) AS took";

const RECORD_SQL: &str = "\
SELECT k.fingerprint, k.rejection, k.order_id IS NOT NULL AS has_order, \
       o.id AS order_id, o.user_id AS order_user, o.event_id AS order_event, \
       e.name AS event_name, o.qty AS order_qty, o.amount AS order_amount, \
       o.status::text AS order_status, o.created_at AS order_created, \
       o.updated_at AS order_updated, o.hold_expires_at \
FROM idempotency_keys k \
LEFT JOIN orders o ON o.id = k.order_id \
LEFT JOIN events e ON e.id = o.event_id \
WHERE k.user_id = $1 AND k.key = $2 AND k.expires_at > $3";

fn record(row: &PgRow) -> StoreResult<IdempotencyRecord> {
    let outcome = if get::<bool>(row, "has_order")? {
        KeyedOutcome::Order(row::order(row)?)
    } else {
        let r: Option<String> = get(row, "rejection")?;
        let r = r.ok_or_else(|| {
            StoreError::Internal("idempotency record without an outcome".to_owned())
        })?;
        KeyedOutcome::Rejected(parse_rejection(&r).ok_or_else(|| {
            StoreError::Internal(format!("idempotency record: unknown refusal {r:?}"))
        })?)
    };
    Ok(IdempotencyRecord {
        fingerprint: get(row, "fingerprint")?,
        outcome,
    })
}

impl PgShop {
    /// A refusal is not kept under its key (SPEC §11): the claim of the key is rolled back
    /// with everything else the transaction wrote, so the same key may be tried again.
    async fn refuse(&self, tx: Tx, r: HoldRejection) -> StoreResult<HoldOutcome> {
        tx.rollback().await.map_err(|e| db("rollback", e))?;
        Ok(HoldOutcome::Rejected(r))
    }
}

/// How one try at placing a HOLD ended.
enum Attempt {
    Done(HoldOutcome),
    /// The room seen in the snapshot went to a concurrent order before this one got its shard
    /// lock; the transaction was rolled back and the caller tries again, decisively.
    Raced,
}

impl PgShop {
    /// Places a HOLD in a transaction of its own: an optimistic try on one shard, then, if the
    /// room it saw went meanwhile, a decisive one.
    pub(super) async fn place_one(&self, req: &HoldRequest) -> StoreResult<HoldOutcome> {
        for decisive in [false, true] {
            if let Attempt::Done(outcome) = self.try_hold(req, decisive).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Internal(
            "a decisive hold attempt did not decide".to_owned(),
        ))
    }

    /// One transaction placing a HOLD. `decisive` skips the optimistic shard pick and locks
    /// every shard of the event, which always reaches a verdict.
    async fn try_hold(&self, req: &HoldRequest, decisive: bool) -> StoreResult<Attempt> {
        let (user, now) = (req.user.as_uuid(), ts(req.now)?);
        let mut tx = self.begin("place hold").await?;
        let snap = sqlx::query(CLAIM_SQL)
            .bind(user)
            .bind(&req.idempotency_key)
            .bind(&req.fingerprint)
            .bind(ts(req.key_expires_at)?)
            .bind(now)
            .bind(req.event_id.as_uuid())
            .bind(req.qty)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("claim idempotency key", e))?;

        if get::<i64>(&snap, "fresh")? == 0 {
            let row = sqlx::query(RECORD_SQL)
                .bind(user)
                .bind(&req.idempotency_key)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db("read idempotency record", e))?
                .ok_or_else(|| {
                    StoreError::Internal("a claimed idempotency key has no record".to_owned())
                })?;
            let rec = record(&row)?;
            tx.commit().await.map_err(|e| db("commit", e))?;
            return Ok(Attempt::Done(if rec.fingerprint == req.fingerprint {
                HoldOutcome::Replayed(rec.outcome)
            } else {
                HoldOutcome::KeyMismatch
            }));
        }

        if get::<Option<Uuid>>(&snap, "id")?.is_none() {
            return self
                .refuse(tx, HoldRejection::EventNotFound)
                .await
                .map(Attempt::Done);
        }
        let event = row::event(&snap)?;
        // The rule on a snapshot: refusals (most requests once a sale is sold out) are decided
        // here without locking anything. A yes is confirmed by the conditional writes below.
        if let Err(r) = check_hold(&event, req.qty, get_int(&snap, "committed")?) {
            return self.refuse(tx, r).await.map(Attempt::Done);
        }

        let amount = event.price.saturating_mul(req.qty);
        let placed = sqlx::query(PLACE_SQL)
            .bind(user)
            .bind(req.event_id.as_uuid())
            .bind(req.qty)
            .bind(event.max_per_user)
            .bind(req.order_id.as_uuid())
            .bind(amount)
            .bind(&req.idempotency_key)
            .bind(ts(req.hold_expires_at)?)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("place order", e))?;
        if placed.is_none() {
            return self
                .refuse(tx, HoldRejection::OverUserLimit)
                .await
                .map(Attempt::Done);
        }
        let created = created(req, event.name.clone(), amount);

        let candidates: Vec<i16> = get(&snap, "candidates")?;
        if !decisive && !candidates.is_empty() {
            // First any free shard with room; if all are busy, wait for one of them.
            for wait in ["SKIP LOCKED", ""] {
                let r = sqlx::query(&TAKE_STOCK_SQL.replace("{wait}", wait))
                    .bind(req.event_id.as_uuid())
                    .bind(req.qty)
                    .bind(&candidates)
                    .bind(req.order_id.as_uuid())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| db("take stock", e))?;
                if get::<Option<i16>>(&r, "took")?.is_some() {
                    tx.commit().await.map_err(|e| db("commit", e))?;
                    return Ok(Attempt::Done(created));
                }
                if get::<Option<i16>>(&r, "picked")?.is_some() {
                    break;
                }
            }
            // Holding a shard lock, this transaction must not wait for others (only
            // transactions holding none may lock several); start again instead.
            tx.rollback().await.map_err(|e| db("rollback", e))?;
            return Ok(Attempt::Raced);
        }

        let shards = lock_shards(&mut tx, req.event_id).await?;
        let verdict = if shards.is_empty() {
            Err(HoldRejection::EventNotFound)
        } else if shards.iter().any(|s| !s.on_sale) {
            Err(HoldRejection::NotOnSale)
        } else {
            gather(&shards, req.qty).ok_or(HoldRejection::SoldOut)
        };
        match verdict {
            Ok((target, moves)) => {
                let mut deltas: BTreeMap<i16, (i64, i64)> = BTreeMap::new();
                for (shard, d) in moves {
                    deltas.entry(shard).or_default().0 += d;
                }
                deltas.entry(target).or_default().1 += req.qty;
                let (ids, rest): (Vec<i16>, Vec<(i64, i64)>) = deltas.into_iter().unzip();
                let (totals, held): (Vec<i64>, Vec<i64>) = rest.into_iter().unzip();
                sqlx::query(
                    "WITH mark AS (UPDATE orders SET stock_shard = $5 WHERE id = $6) \
                     UPDATE event_stock s \
                     SET total_qty = s.total_qty + d.total, held_qty = s.held_qty + d.held \
                     FROM unnest($2::smallint[], $3::bigint[], $4::bigint[]) \
                         AS d(shard, total, held) \
                     WHERE s.event_id = $1 AND s.shard = d.shard",
                )
                .bind(req.event_id.as_uuid())
                .bind(&ids)
                .bind(&totals)
                .bind(&held)
                .bind(target)
                .bind(req.order_id.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(|e| db("gather stock", e))?;
                tx.commit().await.map_err(|e| db("commit", e))?;
                Ok(Attempt::Done(created))
            }
            Err(r) => self.refuse(tx, r).await.map(Attempt::Done),
        }
    }
}

#[async_trait]
impl OrderStore for PgShop {
    async fn place_hold(&self, req: HoldRequest) -> StoreResult<HoldOutcome> {
        req.check_validated()?;
        match &self.holds {
            Some(holds) => holds.call(self, req).await,
            None => self.place_one(&req).await,
        }
    }

    async fn keyed(
        &self,
        user: UserId,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let query = sqlx::query(RECORD_SQL)
            .bind(user.as_uuid())
            .bind(key)
            .bind(ts(now)?);
        row::fetch_optional(query, self.pool(), "read idempotency record", record).await
    }

    async fn get(&self, id: OrderId) -> StoreResult<Option<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN events e ON e.id = o.event_id \
             WHERE o.id = $1"
        );
        let query = sqlx::query(&sql).bind(id.as_uuid());
        row::fetch_optional(query, self.pool(), "get order", row::order).await
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN events e ON e.id = o.event_id \
             WHERE o.user_id = $1 ORDER BY o.created_at DESC, o.id DESC"
        );
        let query = sqlx::query(&sql).bind(user.as_uuid());
        row::fetch_all(query, self.pool(), "list orders", row::order).await
    }

    async fn expire_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<Order>> {
        let at = ts(now)?;
        let mut tx = self.begin("expire holds").await?;
        // SKIP LOCKED: concurrent sweepers take disjoint orders, and an order whose payment is
        // being opened or settled right now is left for the next sweep. The predicate is all on
        // the order row, so a row changed since the snapshot is re-checked as it is now.
        let due = sqlx::query(
            "SELECT id FROM orders \
             WHERE status IN ('HOLD', 'FAIL') AND NOT payment_in_flight AND hold_expires_at <= $1 \
             ORDER BY hold_expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(at)
        .bind(limit_param(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| db("find expired holds", e))?;
        if due.is_empty() {
            tx.commit().await.map_err(|e| db("commit", e))?;
            return Ok(Vec::new());
        }
        let ids = due
            .iter()
            .map(|r| get::<Uuid>(r, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        let sql = format!(
            "UPDATE orders o SET status = 'EXPIRED', updated_at = $2 FROM events e \
             WHERE o.id = ANY($1) AND e.id = o.event_id RETURNING {ORDER_COLUMNS}, o.stock_shard"
        );
        let rows = sqlx::query(&sql)
            .bind(&ids)
            .bind(at)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db("expire holds", e))?;

        // Both HOLD and FAIL hold stock and count for the limit, so every expired order gives
        // back its quantity on both. Rows are locked sorted (per-user rows, then shards) so two
        // sweepers sharing a user or an event cannot deadlock.
        let mut per_user: BTreeMap<(Uuid, Uuid), i64> = BTreeMap::new();
        let mut per_shard: BTreeMap<(Uuid, i16), i64> = BTreeMap::new();
        let mut expired = Vec::with_capacity(rows.len());
        for r in &rows {
            let o = row::order(r)?;
            let shard: Option<i16> = get(r, "stock_shard")?;
            let shard = shard.ok_or_else(|| {
                StoreError::Internal(format!("order {} has no stock shard", o.id))
            })?;
            *per_user
                .entry((o.user.as_uuid(), o.event_id.as_uuid()))
                .or_default() += o.qty;
            *per_shard.entry((o.event_id.as_uuid(), shard)).or_default() += o.qty;
            expired.push(o);
        }
        expired.sort_by_key(|o| (o.hold_expires_at, o.id));
        give_back(&mut tx, &per_user, &QUOTA_GIVE_BACK).await?;
        give_back(&mut tx, &per_shard, &STOCK_GIVE_BACK).await?;
        tx.commit().await.map_err(|e| db("commit", e))?;
        Ok(expired)
    }
}

/// How expiry gives a quantity back to one table whose rows are keyed by two columns: the rows
/// are locked in key order first, so two sweepers sharing a row cannot deadlock. The result
/// batches lock stock rows with the same `lock_sql`.
pub(super) struct GiveBack {
    table: &'static str,
    /// The two key columns and their SQL types, bound as arrays `$1` and `$2`.
    keys: [(&'static str, &'static str); 2],
    /// The column `$3` is subtracted from.
    column: &'static str,
    /// What is given back, in error contexts.
    what: &'static str,
}

impl GiveBack {
    /// Locks the rows named by `$1` and `$2`, in key order.
    pub(super) fn lock_sql(&self) -> String {
        let [(k1, t1), (k2, t2)] = self.keys;
        format!(
            "SELECT 1 FROM {table} t JOIN unnest($1::{t1}[], $2::{t2}[]) AS d({k1}, {k2}) \
               ON t.{k1} = d.{k1} AND t.{k2} = d.{k2} ORDER BY t.{k1}, t.{k2} FOR UPDATE OF t",
            table = self.table
        )
    }

    /// Subtracts `$3` from the rows named by `$1` and `$2`.
    fn release_sql(&self) -> String {
        let [(k1, t1), (k2, t2)] = self.keys;
        format!(
            "UPDATE {table} t SET {column} = t.{column} - d.qty \
             FROM unnest($1::{t1}[], $2::{t2}[], $3::bigint[]) AS d({k1}, {k2}, qty) \
             WHERE t.{k1} = d.{k1} AND t.{k2} = d.{k2}",
            table = self.table,
            column = self.column
        )
    }
}

const QUOTA_GIVE_BACK: GiveBack = GiveBack {
    table: "order_quotas",
    keys: [("user_id", "uuid"), ("event_id", "uuid")],
    column: "committed_qty",
    what: "per-user quantity",
};

pub(super) const STOCK_GIVE_BACK: GiveBack = GiveBack {
    table: "event_stock",
    keys: [("event_id", "uuid"), ("shard", "smallint")],
    column: "held_qty",
    what: "stock",
};

/// Gives back each key's quantity on `table` (keys sorted by the map, hence locked in order).
async fn give_back<K>(
    tx: &mut Tx,
    amounts: &BTreeMap<(Uuid, K), i64>,
    table: &GiveBack,
) -> StoreResult<()>
where
    K: Copy + Send + Sync + sqlx::Type<Postgres> + sqlx::postgres::PgHasArrayType,
    for<'q> K: sqlx::Encode<'q, Postgres>,
{
    let (firsts, seconds, qty) = unzip3(
        amounts
            .iter()
            .map(|(&(a, b), &q)| (a, b, q))
            .collect::<Vec<_>>(),
    );
    sqlx::query(&table.lock_sql())
        .bind(&firsts)
        .bind(&seconds)
        .execute(&mut **tx)
        .await
        .map_err(|e| db(&format!("lock {}", table.what), e))?;
    sqlx::query(&table.release_sql())
        .bind(&firsts)
        .bind(&seconds)
        .bind(&qty)
        .execute(&mut **tx)
        .await
        .map_err(|e| db(&format!("release {}", table.what), e))?;
    Ok(())
}

fn unzip3<A, B, C>(v: Vec<(A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let mut out = (
        Vec::with_capacity(v.len()),
        Vec::with_capacity(v.len()),
        Vec::with_capacity(v.len()),
    );
    for (a, b, c) in v {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
    }
    out
}
