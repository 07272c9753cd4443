//! `EventStore`: admin edits never touch the stock counters, which only orders and payments move.

use super::{PgShop, finish, lock_shards, resize, split};
use crate::error::db;
use crate::row::{self, EVENT_COLUMNS, ts};
use async_trait::async_trait;
use flash_core::domain::{Event, EventPatch, EventStatus};
use flash_core::ports::{EventDeletion, EventListing, EventStore, EventUpdate, StoreResult};
use flash_core::{EventId, Timestamp};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

#[async_trait]
impl EventStore for PgShop {
    async fn create(&self, e: Event) -> StoreResult<()> {
        // The stock goes to the shards, split evenly; counters given with the event (demo data
        // and migrations of legacy events) land on shard 0.
        let shards: Vec<i16> = (0..self.stock_shards).collect();
        let insert = sqlx::query(
            "WITH ev AS ( \
                 INSERT INTO events (id, name, starts_at, ends_at, total_qty, max_per_user, price, \
                     status, created_at, updated_at, prequeue_starts_at, queue_mode) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::event_status, $9, $10, $15, $16) \
                 RETURNING id) \
             INSERT INTO event_stock (event_id, shard, total_qty, sold_qty, held_qty, on_sale) \
             SELECT ev.id, d.shard, d.total + CASE WHEN d.shard = 0 THEN $13 + $14 ELSE 0 END, \
                    CASE WHEN d.shard = 0 THEN $13 ELSE 0 END, \
                    CASE WHEN d.shard = 0 THEN $14 ELSE 0 END, $8 = 'ONSALE' \
             FROM ev CROSS JOIN unnest($11::smallint[], $12::bigint[]) AS d(shard, total)",
        );
        bind_details(insert.bind(e.id.as_uuid()), &e)?
            .bind(ts(e.created_at)?)
            .bind(ts(e.updated_at)?)
            .bind(&shards)
            .bind(split(
                e.total_qty - e.sold_qty - e.held_qty,
                self.stock_shards,
            ))
            .bind(e.sold_qty)
            .bind(e.held_qty)
            .bind(e.prequeue_starts_at.map(ts).transpose()?)
            .bind(e.queue_mode.as_str())
            .execute(self.pool())
            .await
            .map_err(|err| db("create event", err))?;
        Ok(())
    }

    async fn get(&self, id: EventId) -> StoreResult<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events_with_stock e WHERE e.id = $1");
        let query = sqlx::query(&sql).bind(id.as_uuid());
        row::fetch_optional(query, self.pool(), "get event", row::event).await
    }

    async fn list(&self, listing: EventListing) -> StoreResult<Vec<Event>> {
        let sql = match listing {
            EventListing::Public => format!(
                "SELECT {EVENT_COLUMNS} FROM events_with_stock e WHERE e.status <> 'DRAFT' \
                 ORDER BY e.starts_at, e.created_at, e.id"
            ),
            EventListing::Admin => format!(
                "SELECT {EVENT_COLUMNS} FROM events_with_stock e ORDER BY e.created_at DESC, e.id"
            ),
        };
        let query = sqlx::query(&sql);
        row::fetch_all(query, self.pool(), "list events", row::event).await
    }

    async fn update(
        &self,
        id: EventId,
        patch: EventPatch,
        now: Timestamp,
    ) -> StoreResult<EventUpdate> {
        let mut tx = self.begin("update event").await?;
        // The event row, then every shard in order (the order sweepers use too): while they are
        // locked no stock moves, so the patch sees the counters it checks `total_qty` against.
        // FOR NO KEY UPDATE does not block the foreign-key locks of concurrent order inserts.
        let found = sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("lock event", e))?;
        if found.is_none() {
            return finish(tx, EventUpdate::NotFound).await;
        }
        let shards = lock_shards(&mut tx, id).await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events_with_stock e WHERE e.id = $1");
        let current = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db("read event", e))?;
        let current = row::event(&current)?;
        let next = match current.patched(&patch, now) {
            Ok(next) => next,
            Err(r) => return finish(tx, EventUpdate::Rejected(r)).await,
        };
        let update = sqlx::query(
            "UPDATE events SET name = $2, starts_at = $3, ends_at = $4, total_qty = $5, \
                 max_per_user = $6, price = $7, status = $8::text::event_status, updated_at = $9, \
                 prequeue_starts_at = $10, queue_mode = $11 \
             WHERE id = $1",
        );
        bind_details(update.bind(id.as_uuid()), &next)?
            .bind(ts(next.updated_at)?)
            .bind(next.prequeue_starts_at.map(ts).transpose()?)
            .bind(next.queue_mode.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("update event", e))?;
        // Only the shards' capacity and sale flag change; their sold and held counters are
        // never written from here.
        let capacity = resize(&shards, next.total_qty - current.total_qty);
        let (ids, deltas): (Vec<i16>, Vec<i64>) = capacity.into_iter().unzip();
        sqlx::query(
            "UPDATE event_stock s SET total_qty = s.total_qty + d.delta, on_sale = $4 \
             FROM unnest($2::smallint[], $3::bigint[]) AS d(shard, delta) \
             WHERE s.event_id = $1 AND s.shard = d.shard",
        )
        .bind(id.as_uuid())
        .bind(&ids)
        .bind(&deltas)
        .bind(next.status == EventStatus::Onsale)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("resize stock", e))?;
        tx.commit().await.map_err(|e| db("commit", e))?;
        Ok(EventUpdate::Updated(next))
    }

    async fn delete(&self, id: EventId) -> StoreResult<EventDeletion> {
        let deleted = sqlx::query(
            "DELETE FROM events e WHERE e.id = $1 \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.event_id = $1)",
        )
        .bind(id.as_uuid())
        .execute(self.pool())
        .await;
        match deleted {
            Ok(done) if done.rows_affected() == 1 => Ok(EventDeletion::Deleted),
            Ok(_) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)")
                        .bind(id.as_uuid())
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| db("find event", e))?;
                Ok(if exists {
                    EventDeletion::HasOrders
                } else {
                    EventDeletion::NotFound
                })
            }
            // An order committed between the NOT EXISTS check and the delete: the foreign key
            // (ON DELETE RESTRICT) refuses, which is the same answer.
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                Ok(EventDeletion::HasOrders)
            }
            Err(e) => Err(db("delete event", e)),
        }
    }
}

/// Binds what an admin edits of `e` as `$2` to `$8`, the same in the insert and the update:
/// name, starts_at, ends_at, total_qty, max_per_user, price and status.
fn bind_details<'q>(
    query: Query<'q, Postgres, PgArguments>,
    e: &'q Event,
) -> StoreResult<Query<'q, Postgres, PgArguments>> {
    Ok(query
        .bind(&e.name)
        .bind(ts(e.starts_at)?)
        .bind(ts(e.ends_at)?)
        .bind(e.total_qty)
        .bind(e.max_per_user)
        .bind(e.price)
        .bind(e.status.as_str()))
}
