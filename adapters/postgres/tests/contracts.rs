//! Every `flash-testkit` contract of the ports this crate implements, against the real
//! PostgreSQL, each on a database of its own.

mod common;

use common::{fresh_pool, fresh_shop};
use flash_adapter_postgres::{PgHealth, PgSessionStore, PgUserStore};
use flash_testkit::T0;
use std::sync::Arc;

flash_testkit::user_store_contracts!(Arc::new(PgUserStore::new(fresh_pool(20).await)));
flash_testkit::session_store_contracts!(Arc::new(PgSessionStore::new(fresh_pool(20).await)));
flash_testkit::shop_contracts!(fresh_shop().await);

/// The shop contracts again with group commit of HOLDs, as the hosts run it.
mod batching {
    use super::common::fresh_batching_shop;

    flash_testkit::shop_contracts!(fresh_batching_shop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_ping_answers_under_a_short_name() {
    let health = Arc::new(PgHealth::new(fresh_pool(2).await));
    flash_testkit::basics::health_ping_answers_under_a_short_name(health, T0).await;
}
