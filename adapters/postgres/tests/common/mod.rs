//! A fresh, migrated database per test on the PostgreSQL of `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), as zero-to-production does.

#![allow(dead_code, reason = "each test binary uses part of these helpers")]

use flash_adapter_postgres::{PgPool, PgShop, PoolSettings, lazy_pool, migrate};
use flash_testkit::ShopPorts;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test databases are named `fpt_<unix seconds>_<random>`. A test cannot drop its own (the
/// contract macros own the test function), so later runs drop those older than this: far longer
/// than a test binary runs (seconds), short enough that a busy machine does not fill its disk.
const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("DATABASE_URL has no database name");
    format!("{}/{name}{query}", &base[..cut])
}

/// Creates and migrates a database of its own and returns a pool on it.
pub async fn fresh_pool(max_connections: u32) -> PgPool {
    pool_on(&fresh_database().await, max_connections)
}

/// A pool on the database at `url`.
pub fn pool_on(url: &str, max_connections: u32) -> PgPool {
    let settings = PoolSettings {
        max_connections,
        acquire_timeout: Duration::from_secs(30),
        application_name: "flash-postgres-tests".to_owned(),
        ..PoolSettings::default()
    };
    lazy_pool(url, &settings).expect("pool")
}

/// Creates and migrates a database of its own and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs();
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname ~ '^fpt_[0-9]+_' \
         AND split_part(datname, '_', 2)::bigint < $1",
    )
    .bind(i64::try_from(now.saturating_sub(STALE_AFTER.as_secs())).unwrap_or(0))
    .fetch_all(&mut conn)
    .await
    .expect("list test databases");
    for name in stale {
        // Another test binary may be dropping it too.
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
    let name = format!("fpt_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    let url = with_database(&admin, &name);
    let pool = pool_on(&url, 1);
    migrate(&pool).await.expect("migrate");
    pool.close().await;
    url
}

/// The four shop ports on a fresh database, with the tamper hook the refund contract needs.
pub async fn fresh_shop() -> ShopPorts {
    shop_ports(PgShop::with_default_queue(fresh_pool(12).await))
}

/// [`fresh_shop`] with HOLDs and payment results written in batches, as the hosts wire it.
pub async fn fresh_batching_shop() -> ShopPorts {
    let shop = PgShop::with_default_queue(fresh_pool(12).await)
        .with_hold_batching(3)
        .with_result_batching(2);
    shop_ports(shop)
}

fn shop_ports(shop: PgShop) -> ShopPorts {
    let shop = Arc::new(shop);
    let backdoor = Arc::clone(&shop);
    ShopPorts::from_one(shop).with_tamper(Arc::new(move |id, status| {
        let shop = Arc::clone(&backdoor);
        Box::pin(async move {
            let found = shop
                .force_order_status(id, status, flash_testkit::T0)
                .await
                .expect("force order status");
            assert!(found, "tampered with a missing order");
        })
    }))
}
