//! Reachability, the legacy `db_*` statistics and pool gauges.

use crate::error::db;
use crate::row::get;
use async_trait::async_trait;
use flash_core::ports::{HealthCheck, StoreResult};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

/// One statistic: (metric name, help text, `"counter"` or `"gauge"`, value).
pub type DbStat = (&'static str, &'static str, &'static str, f64);

/// The `database` dependency: `SELECT 1` for `/ready`, plus what `/metrics` reports about it.
#[derive(Debug, Clone)]
pub struct PgHealth {
    pool: PgPool,
}

impl PgHealth {
    pub fn new(pool: PgPool) -> Self {
        PgHealth { pool }
    }

    /// Connections the pool holds (busy and idle).
    pub fn pool_size(&self) -> u32 {
        self.pool.size()
    }

    /// Connections idle in the pool.
    pub fn pool_idle(&self) -> usize {
        self.pool.num_idle()
    }

    /// The legacy api's `db_*` metrics (legacy §9.2): `pg_stat_database` of the current
    /// database, and checkpoint statistics from `pg_stat_checkpointer` where it exists
    /// (PostgreSQL 17 and later, where they left `pg_stat_bgwriter` — the legacy query failed
    /// there) or from `pg_stat_bgwriter` before.
    pub async fn db_stats(&self) -> StoreResult<Vec<DbStat>> {
        let row = sqlx::query(DATABASE_SQL)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("pg_stat_database", e))?;
        let mut stats = Vec::with_capacity(DATABASE_STATS.len() + CHECKPOINT_STATS.len());
        collect(&row, DATABASE_STATS, &mut stats)?;
        let modern: bool =
            sqlx::query_scalar("SELECT to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| db("detect pg_stat_checkpointer", e))?;
        let sql = if modern {
            CHECKPOINTER_SQL
        } else {
            BGWRITER_SQL
        };
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("checkpoint statistics", e))?;
        collect(&row, CHECKPOINT_STATS, &mut stats)?;
        Ok(stats)
    }
}

type StatSpec = (&'static str, &'static str, &'static str);

const fn counter(name: &'static str, help: &'static str) -> StatSpec {
    (name, help, "counter")
}

const fn gauge(name: &'static str, help: &'static str) -> StatSpec {
    (name, help, "gauge")
}

fn collect(row: &PgRow, specs: &[StatSpec], out: &mut Vec<DbStat>) -> StoreResult<()> {
    for &(name, help, kind) in specs {
        let v: Option<f64> = get(row, name)?;
        out.push((name, help, kind, v.unwrap_or(0.0)));
    }
    Ok(())
}

// Every column is cast to float8 and named after its metric, so one loop reads them all.
const DATABASE_SQL: &str = "SELECT numbackends::float8 AS db_connections_active, \
    xact_commit::float8 AS db_transactions_committed_total, \
    xact_rollback::float8 AS db_transactions_rolled_back_total, \
    blks_read::float8 AS db_blocks_read_total, blks_hit::float8 AS db_blocks_hit_total, \
    blk_read_time::float8 AS db_block_read_time_ms_total, \
    blk_write_time::float8 AS db_block_write_time_ms_total, \
    tup_returned::float8 AS db_rows_returned_total, tup_fetched::float8 AS db_rows_fetched_total, \
    tup_inserted::float8 AS db_rows_inserted_total, tup_updated::float8 AS db_rows_updated_total, \
    tup_deleted::float8 AS db_rows_deleted_total, conflicts::float8 AS db_conflicts_total, \
    temp_files::float8 AS db_temp_files_total, temp_bytes::float8 AS db_temp_bytes_total \
    FROM pg_stat_database WHERE datname = current_database()";

const DATABASE_STATS: &[StatSpec] = &[
    gauge(
        "db_connections_active",
        "Backends connected to the database",
    ),
    counter("db_transactions_committed_total", "Transactions committed"),
    counter(
        "db_transactions_rolled_back_total",
        "Transactions rolled back",
    ),
    counter("db_blocks_read_total", "Disk blocks read"),
    counter("db_blocks_hit_total", "Buffer cache hits"),
    counter(
        "db_block_read_time_ms_total",
        "Time spent reading blocks, in milliseconds",
    ),
    counter(
        "db_block_write_time_ms_total",
        "Time spent writing blocks, in milliseconds",
    ),
    counter("db_rows_returned_total", "Rows returned by queries"),
    counter("db_rows_fetched_total", "Rows fetched by queries"),
    counter("db_rows_inserted_total", "Rows inserted"),
    counter("db_rows_updated_total", "Rows updated"),
    counter("db_rows_deleted_total", "Rows deleted"),
    counter(
        "db_conflicts_total",
        "Queries cancelled due to recovery conflicts",
    ),
    counter("db_temp_files_total", "Temporary files created"),
    counter("db_temp_bytes_total", "Bytes written to temporary files"),
];

const BGWRITER_SQL: &str = "SELECT checkpoints_timed::float8 AS db_bgwriter_checkpoints_timed_total, \
    checkpoints_req::float8 AS db_bgwriter_checkpoints_requested_total, \
    checkpoint_write_time::float8 AS db_bgwriter_checkpoint_write_time_ms_total, \
    checkpoint_sync_time::float8 AS db_bgwriter_checkpoint_sync_time_ms_total, \
    buffers_checkpoint::float8 AS db_bgwriter_buffers_checkpoint_total, \
    buffers_clean::float8 AS db_bgwriter_buffers_clean_total, \
    maxwritten_clean::float8 AS db_bgwriter_maxwritten_clean_total, \
    buffers_backend::float8 AS db_bgwriter_buffers_backend_total, \
    buffers_backend_fsync::float8 AS db_bgwriter_buffers_backend_fsync_total, \
    buffers_alloc::float8 AS db_bgwriter_buffers_alloc_total \
    FROM pg_stat_bgwriter";

// PostgreSQL 17 moved checkpoint counters to pg_stat_checkpointer and backend writes to
// pg_stat_io; the legacy metric names are kept and fed from there.
const CHECKPOINTER_SQL: &str = "SELECT c.num_timed::float8 AS db_bgwriter_checkpoints_timed_total, \
    c.num_requested::float8 AS db_bgwriter_checkpoints_requested_total, \
    c.write_time::float8 AS db_bgwriter_checkpoint_write_time_ms_total, \
    c.sync_time::float8 AS db_bgwriter_checkpoint_sync_time_ms_total, \
    c.buffers_written::float8 AS db_bgwriter_buffers_checkpoint_total, \
    b.buffers_clean::float8 AS db_bgwriter_buffers_clean_total, \
    b.maxwritten_clean::float8 AS db_bgwriter_maxwritten_clean_total, \
    (SELECT sum(writes) FROM pg_stat_io WHERE backend_type = 'client backend')::float8 \
        AS db_bgwriter_buffers_backend_total, \
    (SELECT sum(fsyncs) FROM pg_stat_io WHERE backend_type = 'client backend')::float8 \
        AS db_bgwriter_buffers_backend_fsync_total, \
    b.buffers_alloc::float8 AS db_bgwriter_buffers_alloc_total \
    FROM pg_stat_checkpointer c CROSS JOIN pg_stat_bgwriter b";

const CHECKPOINT_STATS: &[StatSpec] = &[
    counter(
        "db_bgwriter_checkpoints_timed_total",
        "Scheduled checkpoints",
    ),
    counter(
        "db_bgwriter_checkpoints_requested_total",
        "Requested checkpoints",
    ),
    counter(
        "db_bgwriter_checkpoint_write_time_ms_total",
        "Time spent writing checkpoint files, in milliseconds",
    ),
    counter(
        "db_bgwriter_checkpoint_sync_time_ms_total",
        "Time spent syncing checkpoint files, in milliseconds",
    ),
    counter(
        "db_bgwriter_buffers_checkpoint_total",
        "Buffers written during checkpoints",
    ),
    counter(
        "db_bgwriter_buffers_clean_total",
        "Buffers written by the background writer",
    ),
    counter(
        "db_bgwriter_maxwritten_clean_total",
        "Times the background writer stopped for writing too many buffers",
    ),
    counter(
        "db_bgwriter_buffers_backend_total",
        "Buffers written directly by backends",
    ),
    counter(
        "db_bgwriter_buffers_backend_fsync_total",
        "Times a backend had to execute its own fsync",
    ),
    counter("db_bgwriter_buffers_alloc_total", "Buffers allocated"),
];

#[async_trait]
impl HealthCheck for PgHealth {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| db("ping", e))?;
        Ok(())
    }
}
