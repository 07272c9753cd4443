//! Events, orders, payments and the outbox over one pool.

mod batch;
pub use batch::BatchCounts;
mod events;
mod orders;
mod outbox;
mod payments;

use crate::error::db;
use crate::row::{get, get_int, order_status, ts};
use flash_core::domain::{OrderStatus, ShopCounts, StockMove};
use flash_core::messages::DEFAULT_REQUEST_QUEUE;
use flash_core::ports::StoreResult;
use flash_core::{EventId, OrderId, StoreError, Timestamp};
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// [`EventStore`], [`OrderStore`], [`PaymentStore`] and [`Outbox`] over one pool: each
/// reservation, payment opening (payment row + outbox message) and payment result is one
/// transaction.
///
/// [`EventStore`]: flash_core::ports::EventStore
/// [`OrderStore`]: flash_core::ports::OrderStore
/// [`PaymentStore`]: flash_core::ports::PaymentStore
/// [`Outbox`]: flash_core::ports::Outbox
#[derive(Debug, Clone)]
pub struct PgShop {
    pool: PgPool,
    request_queue: String,
    stock_shards: i16,
    /// Group commit of HOLDs (see [`PgShop::with_hold_batching`]); `None`: each HOLD is its
    /// own transaction.
    holds: Option<Arc<batch::Batcher<batch::Holds>>>,
    /// Group commit of payment results (see [`PgShop::with_result_batching`]).
    results: Option<Arc<batch::Batcher<payments::Results>>>,
}

/// Stock rows per event created from now on (see [`PgShop::with_stock_shards`]).
pub const DEFAULT_STOCK_SHARDS: u16 = 16;

/// What one [`PgShop::purge`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    pub idempotency_keys: u64,
    pub sent_messages: u64,
    /// Counter rows of ended connections folded into the totals.
    pub counter_rows: u64,
}

type Tx = Transaction<'static, Postgres>;

impl PgShop {
    /// A shop whose outbox messages go to `request_queue` (`PAYMENT_REQUEST_QUEUE`).
    pub fn new(pool: PgPool, request_queue: impl Into<String>) -> Self {
        PgShop {
            pool,
            request_queue: request_queue.into(),
            stock_shards: DEFAULT_STOCK_SHARDS as i16,
            holds: None,
            results: None,
        }
    }

    /// What the HOLD writers have done (`None` without [`PgShop::with_hold_batching`]).
    pub fn hold_batches(&self) -> Option<BatchCounts> {
        self.holds.as_ref().map(|b| b.counts())
    }

    /// What the result writers have done (`None` without [`PgShop::with_result_batching`]).
    pub fn result_batches(&self) -> Option<BatchCounts> {
        self.results.as_ref().map(|b| b.counts())
    }

    /// This shop without group commit: what the batch writers themselves write through.
    fn unbatched(&self) -> Self {
        PgShop {
            holds: None,
            results: None,
            ..self.clone()
        }
    }

    /// Places concurrent HOLDs together: `writers` tasks, each using one connection of the pool
    /// at a time, place whatever HOLDs are queued when they are free (up to 64) in one
    /// statement and one commit, each answered with its own outcome. A lone HOLD is then one
    /// round trip instead of a transaction of five. Without it, each HOLD is its own
    /// transaction.
    pub fn with_hold_batching(mut self, writers: usize) -> Self {
        self.holds = Some(Arc::new(batch::Batcher::new(writers)));
        self
    }

    /// Applies concurrent payment results together: `writers` tasks each apply whatever
    /// results are queued when they are free (up to 64) in one transaction, rows locked in
    /// order, each answered with its own outcome. Without it, each result is its own
    /// transaction.
    pub fn with_result_batching(mut self, writers: usize) -> Self {
        self.results = Some(Arc::new(batch::Batcher::new(writers)));
        self
    }

    /// How many rows (1–256) the stock of events created from now on is split across. More
    /// rows let more orders of one hot event commit at once; one row serializes them on the
    /// commit latency. Existing events keep theirs.
    pub fn with_stock_shards(mut self, shards: u16) -> Self {
        self.stock_shards = i16::try_from(shards.clamp(1, 256)).unwrap_or(1);
        self
    }

    /// A shop writing payment requests to [`DEFAULT_REQUEST_QUEUE`].
    pub fn with_default_queue(pool: PgPool) -> Self {
        Self::new(pool, DEFAULT_REQUEST_QUEUE)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self, what: &str) -> StoreResult<Tx> {
        self.pool.begin().await.map_err(|e| db(what, e))
    }

    /// Puts an order in `status` outside the normal flow (an operator cancelling an order, or a
    /// test reaching a state the ports only reach through races), keeping stock, the per-user
    /// quantity and the counters consistent. A REQ payment is left as it is. Returns whether
    /// the order exists.
    pub async fn force_order_status(
        &self,
        id: OrderId,
        to: OrderStatus,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self.begin("force order status").await?;
        let row = sqlx::query(
            "SELECT status::text AS status, qty, user_id, event_id, stock_shard FROM orders \
             WHERE id = $1 FOR UPDATE",
        )
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| db("lock order", e))?;
        let Some(row) = row else {
            return finish(tx, false).await;
        };
        let from = order_status(&row, "status")?;
        if from != to {
            let qty = get_int(&row, "qty")?;
            let user: uuid::Uuid = get(&row, "user_id")?;
            let event: uuid::Uuid = get(&row, "event_id")?;
            let d = StockMove::of(from, to, qty);
            sqlx::query(
                "UPDATE orders SET status = $2::text::order_status, updated_at = $3 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .bind(to.as_str())
            .bind(ts(now)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("force order status", e))?;
            if d.committed != 0 {
                // An upsert, because an order may count again after it stopped counting; but
                // only for an increase, as the CHECK applies to the proposed row too.
                let sql = if d.committed > 0 {
                    "INSERT INTO order_quotas (user_id, event_id, committed_qty) \
                     VALUES ($1, $2, $3) ON CONFLICT (user_id, event_id) DO UPDATE \
                     SET committed_qty = order_quotas.committed_qty + EXCLUDED.committed_qty"
                } else {
                    "UPDATE order_quotas SET committed_qty = committed_qty + $3 \
                     WHERE user_id = $1 AND event_id = $2"
                };
                sqlx::query(sql)
                    .bind(user)
                    .bind(event)
                    .bind(d.committed)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db("adjust per-user quantity", e))?;
            }
            move_stock(&mut tx, id, event, get(&row, "stock_shard")?, d).await?;
        }
        tx.commit().await.map_err(|e| db("commit", e))?;
        Ok(true)
    }

    /// Housekeeping, safe to run from every pod: forgets idempotency records that expired at or
    /// before `now` and messages sent more than `keep_sent` ago (at most `limit` of each), and
    /// folds the counter rows of ended connections into the totals.
    pub async fn purge(
        &self,
        now: Timestamp,
        keep_sent: Duration,
        limit: usize,
    ) -> StoreResult<PurgeReport> {
        let limit = limit_param(limit);
        let keys = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (user_id, key) IN ( \
                 SELECT user_id, key FROM idempotency_keys WHERE expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(ts(now)?)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(|e| db("purge idempotency keys", e))?;
        let sent = sqlx::query(
            "DELETE FROM outbox WHERE id IN ( \
                 SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at <= $1 \
                 ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(ts(now.minus(keep_sent))?)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(|e| db("purge sent messages", e))?;
        // A connection adds only to its own counter rows (see the migration), so the rows of
        // ended connections can be folded into backend 0 without racing any writer.
        let folded: i64 = sqlx::query_scalar(
            "WITH gone AS ( \
                 DELETE FROM shop_counters WHERE backend <> 0 \
                   AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) \
                 RETURNING name, event_id, value), \
             kept AS ( \
                 INSERT INTO shop_counters (name, event_id, backend, value) \
                 SELECT name, event_id, 0, sum(value) FROM gone GROUP BY name, event_id \
                 ON CONFLICT (event_id, name, backend) \
                 DO UPDATE SET value = shop_counters.value + EXCLUDED.value) \
             SELECT count(*) FROM gone",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("fold counters", e))?;
        Ok(PurgeReport {
            idempotency_keys: keys.rows_affected(),
            sent_messages: sent.rows_affected(),
            counter_rows: u64::try_from(folded).unwrap_or(0),
        })
    }

    /// Checks the stock and payment invariants of SPEC §8 (1–3) over the whole database and
    /// returns every violation found. Full scans: for tests and audits, never a request path.
    pub async fn audit(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(AUDIT_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("audit", e))?;
        Ok(rows)
    }

    async fn shop_counts(&self) -> StoreResult<ShopCounts> {
        let rows = sqlx::query(
            "SELECT name, sum(value)::bigint AS value FROM shop_counters GROUP BY name \
             UNION ALL \
             SELECT 'outbox_backlog', count(*) FROM outbox WHERE sent_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("counts", e))?;
        counts_of(&rows)
    }

    /// One event's counters: its rows are together at the front of the primary key.
    async fn event_shop_counts(&self, event: EventId) -> StoreResult<ShopCounts> {
        let rows = sqlx::query(
            "SELECT name, sum(value)::bigint AS value FROM shop_counters \
             WHERE event_id = $1 GROUP BY name",
        )
        .bind(event.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("event counts", e))?;
        counts_of(&rows)
    }
}

/// `ShopCounts` from `(name, value)` rows of the counters.
fn counts_of(rows: &[sqlx::postgres::PgRow]) -> StoreResult<ShopCounts> {
    let mut c = ShopCounts::default();
    for row in rows {
        let name: String = get(row, "name")?;
        let value: Option<i64> = get(row, "value")?;
        // A negative sum can only come from hand-edited rows; report zero, not garbage.
        let value = u64::try_from(value.unwrap_or(0)).unwrap_or(0);
        let slot = match name.as_str() {
            "orders_total" => &mut c.orders_total,
            "orders_HOLD" => &mut c.orders_hold,
            "orders_PAID" => &mut c.orders_paid,
            "orders_FAIL" => &mut c.orders_failed,
            "orders_CANCELLED" => &mut c.orders_cancelled,
            "orders_EXPIRED" => &mut c.orders_expired,
            "payments_REQ" => &mut c.payments_pending,
            "payments_OK" => &mut c.payments_ok,
            "payments_FAIL" => &mut c.payments_failed,
            "payments_REFUND_REQUIRED" => &mut c.payments_refund_required,
            "outbox_backlog" => &mut c.outbox_backlog,
            _ => continue,
        };
        *slot = value;
    }
    Ok(c)
}

/// Applies an order's [`StockMove`] to the stock shard it took its tickets from. The shard row
/// is contended, so callers run this last before COMMIT.
async fn move_stock(
    tx: &mut Tx,
    order: OrderId,
    event: uuid::Uuid,
    shard: Option<i16>,
    moved: StockMove,
) -> StoreResult<()> {
    if !moved.moves_stock() {
        return Ok(());
    }
    let shard =
        shard.ok_or_else(|| StoreError::Internal(format!("order {order} has no stock shard")))?;
    sqlx::query(
        "UPDATE event_stock SET held_qty = held_qty + $3, sold_qty = sold_qty + $4 \
         WHERE event_id = $1 AND shard = $2",
    )
    .bind(event)
    .bind(shard)
    .bind(moved.held)
    .bind(moved.sold)
    .execute(&mut **tx)
    .await
    .map_err(|e| db("move stock", e))?;
    Ok(())
}

/// Ends a transaction that took locks and returns `value`. Every early return goes through here:
/// a dropped transaction is rolled back only when its connection is next used, so its row
/// locks would outlive the call.
async fn finish<T>(tx: Tx, value: T) -> StoreResult<T> {
    tx.commit().await.map_err(|e| db("commit", e))?;
    Ok(value)
}

/// A `LIMIT` parameter (PostgreSQL takes a bigint).
fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// One stock row of an event, as locked by [`lock_shards`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shard {
    pub id: i16,
    pub total: i64,
    pub sold: i64,
    pub held: i64,
    pub on_sale: bool,
}

impl Shard {
    pub fn available(&self) -> i64 {
        self.total - self.sold - self.held
    }
}

/// Locks every stock row of `event` in shard order: the one order in which anything locks
/// several shards, so that two such transactions cannot deadlock.
pub(super) async fn lock_shards(tx: &mut Tx, event: EventId) -> StoreResult<Vec<Shard>> {
    let rows = sqlx::query(
        "SELECT shard, total_qty, sold_qty, held_qty, on_sale FROM event_stock \
         WHERE event_id = $1 ORDER BY shard FOR UPDATE",
    )
    .bind(event.as_uuid())
    .fetch_all(&mut **tx)
    .await
    .map_err(|e| db("lock stock", e))?;
    rows.iter()
        .map(|r| {
            Ok(Shard {
                id: get(r, "shard")?,
                total: get_int(r, "total_qty")?,
                sold: get_int(r, "sold_qty")?,
                held: get_int(r, "held_qty")?,
                on_sale: get(r, "on_sale")?,
            })
        })
        .collect()
}

/// `n` split into `parts` near-equal non-negative shares (the first ones get the remainder).
pub(super) fn split(n: i64, parts: i16) -> Vec<i64> {
    let parts_n = i64::from(parts.max(1));
    let (base, rest) = (n.div_euclid(parts_n), n.rem_euclid(parts_n));
    (0..parts_n).map(|i| base + i64::from(i < rest)).collect()
}

/// Capacity changes per shard that change the event's total by `delta`: an increase is spread
/// evenly; a decrease takes unreserved tickets, from the shards with the most first. The caller
/// has checked that enough are unreserved.
pub(super) fn resize(shards: &[Shard], delta: i64) -> Vec<(i16, i64)> {
    if delta >= 0 {
        let parts = i16::try_from(shards.len()).unwrap_or(i16::MAX);
        return shards
            .iter()
            .zip(split(delta, parts))
            .map(|(s, d)| (s.id, d))
            .collect();
    }
    let mut order: Vec<&Shard> = shards.iter().collect();
    order.sort_by_key(|s| (std::cmp::Reverse(s.available()), s.id));
    let mut left = -delta;
    order
        .into_iter()
        .map(|s| {
            let take = left.min(s.available().max(0));
            left -= take;
            (s.id, -take)
        })
        .collect()
}

/// Where a hold of `qty` goes when no single shard had room for it: the shard with the most
/// room, topped up with unreserved capacity moved from the others. `None` when the event as a
/// whole has less than `qty` left. Returns the target and the capacity change per shard.
pub(super) fn gather(shards: &[Shard], qty: i64) -> Option<(i16, Vec<(i16, i64)>)> {
    if shards.iter().map(Shard::available).sum::<i64>() < qty {
        return None;
    }
    let target = shards
        .iter()
        .max_by_key(|s| (s.available(), std::cmp::Reverse(s.id)))?;
    let mut need = qty - target.available();
    let mut moves = Vec::new();
    let mut gained = 0;
    for s in shards.iter().filter(|s| s.id != target.id) {
        if need <= 0 {
            break;
        }
        let take = need.min(s.available().max(0));
        if take > 0 {
            moves.push((s.id, -take));
            gained += take;
            need -= take;
        }
    }
    if gained > 0 {
        moves.push((target.id, gained));
    }
    Some((target.id, moves))
}

const AUDIT_SQL: &str = "\
WITH o AS ( \
    SELECT event_id, stock_shard, \
           coalesce(sum(qty) FILTER (WHERE status = 'PAID'), 0) AS sold, \
           coalesce(sum(qty) FILTER (WHERE status IN ('HOLD', 'FAIL')), 0) AS held \
    FROM orders GROUP BY event_id, stock_shard), \
u AS ( \
    SELECT user_id, event_id, sum(qty) AS qty FROM orders \
    WHERE status IN ('HOLD', 'FAIL', 'PAID') GROUP BY user_id, event_id) \
SELECT format('event %s shard %s oversold: sold %s + held %s > total %s', \
              s.event_id, s.shard, s.sold_qty, s.held_qty, s.total_qty) \
FROM event_stock s WHERE s.sold_qty + s.held_qty > s.total_qty \
UNION ALL \
SELECT format('event %s shard %s: counters sold %s held %s, orders say %s/%s', \
              coalesce(s.event_id, o.event_id), coalesce(s.shard, o.stock_shard), \
              coalesce(s.sold_qty, 0), coalesce(s.held_qty, 0), \
              coalesce(o.sold, 0), coalesce(o.held, 0)) \
FROM event_stock s FULL JOIN o ON o.event_id = s.event_id AND o.stock_shard = s.shard \
WHERE coalesce(s.sold_qty, 0) <> coalesce(o.sold, 0) \
   OR coalesce(s.held_qty, 0) <> coalesce(o.held, 0) \
UNION ALL \
SELECT format('event %s: total %s, shards hold %s', e.id, e.total_qty, \
              (SELECT coalesce(sum(total_qty), 0) FROM event_stock WHERE event_id = e.id)) \
FROM events e \
WHERE e.total_qty <> (SELECT coalesce(sum(total_qty), 0) FROM event_stock WHERE event_id = e.id) \
   OR EXISTS (SELECT 1 FROM event_stock s WHERE s.event_id = e.id \
              AND s.on_sale <> (e.status = 'ONSALE')) \
UNION ALL \
SELECT format('user %s holds %s of event %s (limit %s)', u.user_id, u.qty, u.event_id, \
              e.max_per_user) \
FROM u JOIN events e ON e.id = u.event_id WHERE u.qty > e.max_per_user \
UNION ALL \
SELECT format('user %s, event %s: per-user row says %s, orders say %s', \
              coalesce(q.user_id, u.user_id), coalesce(q.event_id, u.event_id), \
              coalesce(q.committed_qty, 0), coalesce(u.qty, 0)) \
FROM order_quotas q FULL JOIN u ON u.user_id = q.user_id AND u.event_id = q.event_id \
WHERE coalesce(q.committed_qty, 0) <> coalesce(u.qty, 0) \
UNION ALL \
SELECT format('PAID order %s has %s OK payments', o.id, \
              (SELECT count(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'OK')) \
FROM orders o WHERE o.status = 'PAID' \
  AND (SELECT count(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'OK') <> 1 \
UNION ALL \
SELECT format('OK payment %s without a PAID order', p.id) \
FROM payments p JOIN orders o ON o.id = p.order_id \
WHERE p.status = 'OK' AND o.status <> 'PAID' \
UNION ALL \
SELECT format('order %s: payment_in_flight is %s', o.id, o.payment_in_flight) \
FROM orders o \
WHERE o.payment_in_flight <> EXISTS ( \
    SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = 'REQ') \
UNION ALL \
SELECT format('order %s has no stock shard', o.id) FROM orders o WHERE o.stock_shard IS NULL";

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: i16, total: i64, sold: i64, held: i64) -> Shard {
        Shard {
            id,
            total,
            sold,
            held,
            on_sale: true,
        }
    }

    #[test]
    fn split_shares_evenly() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(0, 1), vec![0]);
    }

    #[test]
    fn resize_takes_only_unreserved_tickets() {
        let shards = [shard(0, 5, 2, 2), shard(1, 5, 0, 0), shard(2, 5, 5, 0)];
        assert_eq!(resize(&shards, 3), vec![(0, 1), (1, 1), (2, 1)]);
        let down = resize(&shards, -6);
        assert_eq!(down.iter().map(|d| d.1).sum::<i64>(), -6);
        for (id, d) in down {
            let s = shards.iter().find(|s| s.id == id).unwrap();
            assert!(-d <= s.available(), "took reserved tickets from shard {id}");
        }
    }

    #[test]
    fn gather_moves_room_to_one_shard() {
        let shards = [shard(0, 3, 2, 0), shard(1, 3, 1, 1), shard(2, 2, 2, 0)];
        let (target, moves) = gather(&shards, 2).unwrap();
        assert_eq!(target, 0);
        assert_eq!(moves, vec![(1, -1), (0, 1)]);
        assert_eq!(gather(&shards, 3), None);
        let (target, moves) = gather(&shards, 1).unwrap();
        assert_eq!((target, moves), (0, vec![]));
    }
}
