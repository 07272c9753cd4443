//! `flash-adapter-postgres`: the PostgreSQL implementations of the Flash Tickets account, session
//! and shop ports, over one `sqlx` pool.
//!
//! - [`PgUserStore`] and [`PgSessionStore`]: accounts and refresh-token rotation.
//! - [`PgShop`]: [`EventStore`], [`OrderStore`], [`PaymentStore`] and [`Outbox`] together, because
//!   a reservation, a payment with its outbox message, and a payment result each change several
//!   tables in one transaction.
//! - [`PgHealth`]: the `database` health check, the legacy `db_*` statistics and pool gauges.
//! - [`MIGRATOR`] / [`migrate`]: the schema in `migrations/` (legacy table and column names plus
//!   what SPEC adds). Migrations never run implicitly: a `migrate` command or Job runs them.
//!
//! Every transaction runs at READ COMMITTED. Atomicity comes from row locks and conditional
//! statements, never from a check followed by a separate write:
//! - placing a HOLD claims the idempotency key first (`INSERT … ON CONFLICT`), so duplicates of
//!   one key serialize on that row and the losers read the winner's outcome; the per-user limit
//!   is a conditional upsert of one per-(user, event) row; the stock is taken by a conditional
//!   `UPDATE` of one of the event's stock rows, as the last statement before `COMMIT`;
//! - an event's stock is split across several rows (`event_stock`, 16 by default), because a
//!   row lock is held until the commit has been flushed: with a single row every order of a hot
//!   event waits for the previous order's WAL flush. Each order takes its whole quantity from
//!   one row (a free one first, `SKIP LOCKED`) and gives it back there; when no single row has
//!   room, every row of the event is locked in order and free capacity is moved, so the event
//!   sells out exactly. `examples/hot_event.rs` measures the difference;
//! - sweepers and outbox relays take rows with `FOR UPDATE SKIP LOCKED`, so every pod can run
//!   them. Whatever locks several rows of a kind locks them sorted, in one global order
//!   (idempotency key → order → payment → per-user row → event → stock rows), and a
//!   transaction holding a stock row never waits for another one, so none can deadlock.
//!
//! Driver errors are translated once, at this boundary: unique violations become
//! `StoreError::Conflict`, an unreachable or overloaded server `StoreError::Unavailable`,
//! anything else `StoreError::Internal`.
//!
//! Depends on `flash-core` and `sqlx` only; it must never depend on handlers, hosts or other
//! adapters.
//!
//! [`EventStore`]: flash_core::ports::EventStore
//! [`OrderStore`]: flash_core::ports::OrderStore
//! [`PaymentStore`]: flash_core::ports::PaymentStore
//! [`Outbox`]: flash_core::ports::Outbox

mod auth;
mod error;
mod health;
mod row;
mod shop;

pub use auth::{PgSessionStore, PgUserStore};
pub use health::{DbStat, PgHealth};
pub use shop::{BatchCounts, DEFAULT_STOCK_SHARDS, PgShop, PurgeReport};

use flash_core::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::PgPool;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Applies every pending migration (what the `migrate` command runs). Safe to run concurrently:
/// sqlx serializes migrators with an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => error::db("migrate", e),
        other => StoreError::Internal(format!("migrate: {other}")),
    })
}

/// Pool sizing and time limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a request waits for a free connection before it gets `Unavailable`.
    pub acquire_timeout: Duration,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(3),
            application_name: "flash-tickets".to_owned(),
        }
    }
}

/// A pool that connects on first use and reconnects by itself, so a process starts (and reports
/// not ready) while the database is down instead of failing. Only a malformed URL is an error.
pub fn lazy_pool(url: &str, settings: &PoolSettings) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("bad database URL: {e}")))?
        .application_name(&settings.application_name);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
}
