//! `Outbox`: leased by relays with `FOR UPDATE SKIP LOCKED`, so several can run at once.

use super::{PgShop, limit_param};
use crate::error::db;
use crate::row::{get, ts};
use async_trait::async_trait;
use flash_core::messages::Envelope;
use flash_core::ports::{Outbox, OutboxMessage, StoreResult};
use flash_core::{OutboxId, StoreError, Timestamp};
use std::time::Duration;
use uuid::Uuid;

#[async_trait]
impl Outbox for PgShop {
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<Vec<OutboxMessage>> {
        // A row leased by a relay that is still inside this statement is skipped; one whose
        // lease was just written by a committed relay is re-checked and skipped too.
        let rows = sqlx::query(
            "WITH c AS ( \
                 SELECT id FROM outbox \
                 WHERE sent_at IS NULL AND (lease_until IS NULL OR lease_until <= $1) \
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox o SET lease_until = $3, attempts = o.attempts + 1 FROM c \
             WHERE o.id = c.id \
             RETURNING o.id, o.seq, o.queue, o.message_id, o.correlation_id, \
                       o.payload::text AS payload, o.attempts",
        )
        .bind(ts(now)?)
        .bind(limit_param(limit))
        .bind(ts(now.plus(lease))?)
        .fetch_all(self.pool())
        .await
        .map_err(|e| db("claim outbox", e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let attempts: i32 = get(row, "attempts")?;
            claimed.push((
                get::<i64>(row, "seq")?,
                OutboxMessage {
                    id: OutboxId(get(row, "id")?),
                    queue: get(row, "queue")?,
                    envelope: Envelope {
                        message_id: get(row, "message_id")?,
                        correlation_id: get(row, "correlation_id")?,
                        body: get::<String>(row, "payload")?.into_bytes(),
                    },
                    attempts: u32::try_from(attempts)
                        .map_err(|_| StoreError::Internal(format!("outbox attempts {attempts}")))?,
                },
            ));
        }
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, m)| m).collect())
    }

    async fn mark_sent(&self, ids: &[OutboxId], now: Timestamp) -> StoreResult<()> {
        let ids: Vec<Uuid> = ids.iter().map(OutboxId::as_uuid).collect();
        // Sent rows stay for `PgShop::purge` to remove later: they are the record of what was
        // published and when.
        sqlx::query(
            "UPDATE outbox SET sent_at = $2, lease_until = NULL \
             WHERE id = ANY($1) AND sent_at IS NULL",
        )
        .bind(&ids)
        .bind(ts(now)?)
        .execute(self.pool())
        .await
        .map_err(|e| db("mark outbox sent", e))?;
        Ok(())
    }

    /// An index-only count over the partial index of unsent rows.
    async fn backlog(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(self.pool())
            .await
            .map_err(|e| db("outbox backlog", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
