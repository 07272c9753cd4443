//! `PaymentStore`: opening a payment with its outbox message, and applying results.

use super::batch::{Batch, Job, batch_failed};
use super::orders::STOCK_GIVE_BACK;
use super::{PgShop, Tx, finish, limit_param, move_stock};
use crate::error::db;
use crate::row::{self, ORDER_COLUMNS, PAYMENT_COLUMNS, get, get_int, order_status, ts};
use async_trait::async_trait;
use flash_core::domain::{
    OrderStatus, Payment, PaymentCommand, PaymentOpened, PaymentRejection, PaymentStatus,
    ResultApplied, ResultCommand, ResultRejection, ShopCounts, StockMove, payable, settle,
};
use flash_core::ports::{PaymentStore, StoreResult};
use flash_core::{EventId, PaymentId, StoreError, Timestamp};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The payment, its outbox message and the order's new state, in one statement. A FAIL order
/// becomes HOLD again; the hold lasts at least until the payment must have settled. Writing
/// `payment_in_flight` keeps the order out of the expiry sweep while the payment is in flight.
const OPEN_SQL: &str = "\
WITH pay AS ( \
    INSERT INTO payments (id, order_id, status, method, amount, request_id, created_at, \
                          updated_at) \
    VALUES ($1, $2, 'REQ', $3, $4, $5, $6, $6)), \
msg AS ( \
    INSERT INTO outbox (id, queue, message_id, correlation_id, payload, created_at) \
    VALUES ($7, $8, $9, $9, $10::text::json, $6)) \
UPDATE orders SET status = 'HOLD', payment_in_flight = true, \
    hold_expires_at = greatest(hold_expires_at, $11), \
    updated_at = CASE WHEN status <> 'HOLD' OR hold_expires_at < $11 THEN $6 ELSE updated_at END \
WHERE id = $2";

/// A payment's new status and, when the order changes or loses its in-flight payment, the
/// order's. `$5` is the order's new status or NULL; `$6` whether the payment was the REQ one.
const SETTLE_SQL: &str = "\
WITH pay AS ( \
    UPDATE payments SET status = $2::text::payments_status_enum, updated_at = $3 WHERE id = $1) \
UPDATE orders SET status = coalesce($5::text::order_status, status), \
    updated_at = CASE WHEN $5::text IS NULL THEN updated_at ELSE $3 END, \
    payment_in_flight = payment_in_flight AND NOT $6 \
WHERE id = $4 AND ($5::text IS NOT NULL OR $6)";

#[async_trait]
impl PaymentStore for PgShop {
    async fn open(
        &self,
        cmd: PaymentCommand,
    ) -> StoreResult<Result<PaymentOpened, PaymentRejection>> {
        let mut tx = self.begin("open payment").await?;
        // The order row lock serializes everything that can open or settle a payment of this
        // order; the partial unique index on REQ payments backs it up.
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN events e ON e.id = o.event_id \
             WHERE o.id = $1 FOR UPDATE OF o"
        );
        let row = sqlx::query(&sql)
            .bind(cmd.order_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("lock order", e))?;
        let Some(row) = row else {
            return finish(tx, Err(PaymentRejection::OrderNotFound)).await;
        };
        let order = row::order(&row)?;
        if order.user != cmd.user {
            return finish(tx, Err(PaymentRejection::NotOwner)).await;
        }
        let existing = |status: &'static str| {
            format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN orders o ON o.id = p.order_id \
                 WHERE p.order_id = $1 AND p.status = '{status}' \
                 ORDER BY p.updated_at DESC, p.id LIMIT 1"
            )
        };
        match payable(order.status) {
            Ok(()) => {}
            // A PAID order answers with its OK payment.
            Err(PaymentRejection::AlreadyPaid) => {
                let ok = sqlx::query(&existing("OK"))
                    .bind(order.id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db("find OK payment", e))?;
                let answer = match ok {
                    Some(p) => Ok(PaymentOpened::Existing(row::payment(&p)?)),
                    None => Err(PaymentRejection::AlreadyPaid),
                };
                return finish(tx, answer).await;
            }
            Err(r) => return finish(tx, Err(r)).await,
        }
        let req = sqlx::query(&existing("REQ"))
            .bind(order.id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("find REQ payment", e))?;
        if let Some(p) = req {
            let existing = row::payment(&p)?;
            return finish(tx, Ok(PaymentOpened::Existing(existing))).await;
        }

        let (payment, envelope) = cmd.open(&order)?;
        let body = String::from_utf8(envelope.body)
            .map_err(|e| StoreError::Internal(format!("payment request message: {e}")))?;
        sqlx::query(OPEN_SQL)
            .bind(payment.id.as_uuid())
            .bind(order.id.as_uuid())
            .bind(&payment.method)
            .bind(payment.amount)
            .bind(cmd.request_id)
            .bind(ts(cmd.now)?)
            .bind(cmd.outbox_id.as_uuid())
            .bind(&self.request_queue)
            .bind(&envelope.message_id)
            .bind(body)
            .bind(ts(cmd.settle_by)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("open payment", e))?;
        tx.commit().await.map_err(|e| db("commit", e))?;
        Ok(Ok(PaymentOpened::Created(payment)))
    }

    async fn apply(
        &self,
        cmd: ResultCommand,
    ) -> StoreResult<Result<ResultApplied, ResultRejection>> {
        match &self.results {
            Some(results) => results.call(self, cmd).await,
            None => self.apply_one(cmd).await,
        }
    }

    async fn get(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.id = $1"
        );
        let query = sqlx::query(&sql).bind(id.as_uuid());
        row::fetch_optional(query, self.pool(), "get payment", row::payment).await
    }

    /// SKIP LOCKED leaves out payments being settled at this moment; the timeout sweepers of
    /// several pods may still list the same payment, which is harmless because `apply` of a
    /// settled payment changes nothing.
    async fn overdue(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Vec<Payment>> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.status = 'REQ' AND p.created_at <= $1 \
             ORDER BY p.created_at, p.id LIMIT $2 FOR UPDATE OF p SKIP LOCKED"
        );
        let query = sqlx::query(&sql).bind(ts(cutoff)?).bind(limit_param(limit));
        row::fetch_all(query, self.pool(), "overdue payments", row::payment).await
    }

    /// Sums of the trigger-maintained counters plus an indexed count of unsent messages.
    async fn counts(&self) -> StoreResult<ShopCounts> {
        self.shop_counts().await
    }

    async fn event_counts(&self, event: EventId) -> StoreResult<ShopCounts> {
        self.event_shop_counts(event).await
    }
}

impl PgShop {
    /// Applies one result in a transaction of its own.
    async fn apply_one(
        &self,
        cmd: ResultCommand,
    ) -> StoreResult<Result<ResultApplied, ResultRejection>> {
        let mut tx = self.begin("apply payment result").await?;
        // Order and payment rows locked together: every other writer of either takes the order
        // row first, and nothing else locks payments.
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS}, o.status::text AS order_status, o.qty AS order_qty, \
                    o.event_id AS order_event, o.stock_shard \
             FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.id = $1 FOR UPDATE OF o, p"
        );
        let row = sqlx::query(&sql)
            .bind(cmd.payment_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("lock payment", e))?;
        let Some(row) = row else {
            return finish(tx, Err(ResultRejection::PaymentNotFound)).await;
        };
        let payment = row::payment(&row)?;
        if payment.order_id != cmd.order_id {
            return finish(tx, Err(ResultRejection::WrongOrder)).await;
        }
        let order = order_status(&row, "order_status")?;
        let Some(settled) = settle(cmd.verdict, payment.status, order) else {
            return finish(tx, Ok(ResultApplied::Unchanged(payment))).await;
        };
        let (to, order_to) = (settled.payment, settled.order);
        sqlx::query(SETTLE_SQL)
            .bind(payment.id.as_uuid())
            .bind(to.as_str())
            .bind(ts(cmd.now)?)
            .bind(payment.order_id.as_uuid())
            .bind(order_to.map(OrderStatus::as_str))
            .bind(payment.status == PaymentStatus::Req)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("settle payment", e))?;
        if let Some(to) = order_to {
            let moved = StockMove::of(order, to, get_int(&row, "order_qty")?);
            // A payment's result moves an order between HOLD, FAIL and PAID, which all count
            // against the buyer's limit: only the stock moves.
            debug_assert_eq!(moved.committed, 0, "{order:?} -> {to:?}");
            let event = get::<Uuid>(&row, "order_event")?;
            move_stock(
                &mut tx,
                payment.order_id,
                event,
                get(&row, "stock_shard")?,
                moved,
            )
            .await?;
        }
        tx.commit().await.map_err(|e| db("commit", e))?;
        Ok(Ok(settled.outcome.applied(Payment {
            status: to,
            updated_at: cmd.now,
            ..payment
        })))
    }
}

/// Payment results, applied in one transaction per batch.
pub(super) struct Results;

impl Batch for Results {
    type Request = ResultCommand;
    type Outcome = Result<ResultApplied, ResultRejection>;

    /// A failed batch wrote nothing (or, if the commit's answer was lost, everything): its
    /// results are answered with the error or applied each on its own ([`batch_failed`]), where
    /// a result already applied changes nothing.
    /// A lone result is applied by its own transaction, which takes fewer round trips.
    async fn run(shop: PgShop, mut jobs: Vec<Job<Self>>) -> bool {
        if jobs.len() == 1 {
            let job = jobs.remove(0);
            let _ = job.reply.send(shop.apply_one(job.req).await);
            return true;
        }
        let cmds: Vec<&ResultCommand> = jobs.iter().map(|j| &j.req).collect();
        match shop.apply_batch(&cmds).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    // A caller that went away leaves the result applied, as its own
                    // transaction would have.
                    let _ = job.reply.send(Ok(outcome));
                }
                true
            }
            Err(e) => match batch_failed("payment results", e) {
                Some(e) => {
                    jobs.into_iter().for_each(|job| {
                        let _ = job.reply.send(Err(e.clone()));
                    });
                    false
                }
                None => {
                    for job in jobs {
                        let shop = shop.clone();
                        tokio::spawn(async move {
                            let _ = job.reply.send(shop.apply_one(job.req).await);
                        });
                    }
                    false
                }
            },
        }
    }
}

/// A payment of a batch, as locked with its order.
struct Locked {
    payment: Payment,
    order_qty: i64,
    event: Uuid,
    shard: Option<i16>,
}

/// What a batch does to one order: its last new status (and when), and whether it loses its
/// in-flight payment.
#[derive(Default)]
struct OrderChange {
    status: Option<(OrderStatus, Timestamp)>,
    settles_in_flight: bool,
}

impl PgShop {
    /// Applies `cmds` in one transaction, as if one after another: every payment and order row
    /// of the batch locked first, in order id order (the order row first, as every writer takes
    /// it); the transitions decided in memory in the commands' order; then one update of the
    /// payments, one of the orders, and the stock rows locked in key order and updated once.
    async fn apply_batch(
        &self,
        cmds: &[&ResultCommand],
    ) -> StoreResult<Vec<Result<ResultApplied, ResultRejection>>> {
        let mut tx = self.begin("apply payment results").await?;
        match self.apply_batch_in(&mut tx, cmds).await {
            Ok(outcomes) => {
                tx.commit().await.map_err(|e| db("commit", e))?;
                Ok(outcomes)
            }
            Err(e) => {
                // Now, not when the connection is next used: the results are applied alone
                // next, and would wait for this transaction's row locks.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn apply_batch_in(
        &self,
        tx: &mut Tx,
        cmds: &[&ResultCommand],
    ) -> StoreResult<Vec<Result<ResultApplied, ResultRejection>>> {
        let ids: Vec<Uuid> = cmds.iter().map(|c| c.payment_id.as_uuid()).collect();
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS}, o.status::text AS order_status, o.qty AS order_qty, \
                    o.event_id AS order_event, o.stock_shard \
             FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.id = ANY($1) ORDER BY o.id, p.id FOR UPDATE OF o, p"
        );
        let rows = sqlx::query(&sql)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| db("lock payments", e))?;
        let mut locked: HashMap<Uuid, Locked> = HashMap::with_capacity(rows.len());
        let mut orders: HashMap<Uuid, OrderStatus> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let payment = row::payment(row)?;
            orders.insert(
                payment.order_id.as_uuid(),
                order_status(row, "order_status")?,
            );
            locked.insert(
                payment.id.as_uuid(),
                Locked {
                    payment,
                    order_qty: get_int(row, "order_qty")?,
                    event: get(row, "order_event")?,
                    shard: get(row, "stock_shard")?,
                },
            );
        }

        let mut outcomes = Vec::with_capacity(cmds.len());
        let mut paid: BTreeMap<Uuid, (PaymentStatus, Timestamp)> = BTreeMap::new();
        let mut changed: BTreeMap<Uuid, OrderChange> = BTreeMap::new();
        let mut stock: BTreeMap<(Uuid, i16), (i64, i64)> = BTreeMap::new();
        for cmd in cmds {
            let Some(l) = locked.get_mut(&cmd.payment_id.as_uuid()) else {
                outcomes.push(Err(ResultRejection::PaymentNotFound));
                continue;
            };
            if l.payment.order_id != cmd.order_id {
                outcomes.push(Err(ResultRejection::WrongOrder));
                continue;
            }
            let order_id = l.payment.order_id.as_uuid();
            let order = orders.get(&order_id).copied().ok_or_else(|| {
                StoreError::Internal(format!("payment {} without its order", l.payment.id))
            })?;
            let Some(settled) = settle(cmd.verdict, l.payment.status, order) else {
                outcomes.push(Ok(ResultApplied::Unchanged(l.payment.clone())));
                continue;
            };
            let change = changed.entry(order_id).or_default();
            change.settles_in_flight |= l.payment.status == PaymentStatus::Req;
            if let Some(to) = settled.order {
                let moved = StockMove::of(order, to, l.order_qty);
                // Between HOLD, FAIL and PAID only the stock moves (see `apply_one`).
                debug_assert_eq!(moved.committed, 0, "{order:?} -> {to:?}");
                if moved.moves_stock() {
                    let shard = l.shard.ok_or_else(|| {
                        StoreError::Internal(format!("order {order_id} has no stock shard"))
                    })?;
                    let s = stock.entry((l.event, shard)).or_default();
                    s.0 += moved.held;
                    s.1 += moved.sold;
                }
                orders.insert(order_id, to);
                change.status = Some((to, cmd.now));
            }
            l.payment.status = settled.payment;
            l.payment.updated_at = cmd.now;
            paid.insert(l.payment.id.as_uuid(), (settled.payment, cmd.now));
            outcomes.push(Ok(settled.outcome.applied(l.payment.clone())));
        }
        self.write_results(tx, &paid, &changed, &stock).await?;
        Ok(outcomes)
    }

    /// The writes of [`PgShop::apply_batch`]: payments, orders, then the stock rows.
    async fn write_results(
        &self,
        tx: &mut Tx,
        paid: &BTreeMap<Uuid, (PaymentStatus, Timestamp)>,
        changed: &BTreeMap<Uuid, OrderChange>,
        stock: &BTreeMap<(Uuid, i16), (i64, i64)>,
    ) -> StoreResult<()> {
        if !paid.is_empty() {
            let ids: Vec<Uuid> = paid.keys().copied().collect();
            let statuses: Vec<&str> = paid.values().map(|(s, _)| s.as_str()).collect();
            let at = paid
                .values()
                .map(|(_, t)| ts(*t))
                .collect::<StoreResult<Vec<_>>>()?;
            sqlx::query(
                "UPDATE payments p SET status = d.status::payments_status_enum, updated_at = d.at \
                 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS d(id, status, at) \
                 WHERE p.id = d.id",
            )
            .bind(&ids)
            .bind(&statuses)
            .bind(&at)
            .execute(&mut **tx)
            .await
            .map_err(|e| db("settle payments", e))?;
        }
        let changed: Vec<(&Uuid, &OrderChange)> = changed
            .iter()
            .filter(|(_, c)| c.status.is_some() || c.settles_in_flight)
            .collect();
        if !changed.is_empty() {
            let ids: Vec<Uuid> = changed.iter().map(|(id, _)| **id).collect();
            let statuses: Vec<Option<&str>> = changed
                .iter()
                .map(|(_, c)| c.status.map(|(s, _)| s.as_str()))
                .collect();
            let at = changed
                .iter()
                .map(|(_, c)| c.status.map(|(_, t)| ts(t)).transpose())
                .collect::<StoreResult<Vec<_>>>()?;
            let settles: Vec<bool> = changed.iter().map(|(_, c)| c.settles_in_flight).collect();
            sqlx::query(
                "UPDATE orders o SET status = coalesce(d.status::order_status, o.status), \
                     updated_at = coalesce(d.at, o.updated_at), \
                     payment_in_flight = o.payment_in_flight AND NOT d.settles \
                 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[]) \
                     AS d(id, status, at, settles) \
                 WHERE o.id = d.id",
            )
            .bind(&ids)
            .bind(&statuses)
            .bind(&at)
            .bind(&settles)
            .execute(&mut **tx)
            .await
            .map_err(|e| db("settle orders", e))?;
        }
        let moves: Vec<_> = stock.iter().filter(|(_, d)| **d != (0, 0)).collect();
        if !moves.is_empty() {
            let events: Vec<Uuid> = moves.iter().map(|((e, _), _)| *e).collect();
            let shards: Vec<i16> = moves.iter().map(|((_, s), _)| *s).collect();
            let held: Vec<i64> = moves.iter().map(|(_, (h, _))| *h).collect();
            let sold: Vec<i64> = moves.iter().map(|(_, (_, s))| *s).collect();
            // Locked in key order first (an UPDATE … FROM locks in its join's order).
            sqlx::query(&STOCK_GIVE_BACK.lock_sql())
                .bind(&events)
                .bind(&shards)
                .execute(&mut **tx)
                .await
                .map_err(|e| db("lock stock", e))?;
            sqlx::query(
                "UPDATE event_stock s \
                 SET held_qty = s.held_qty + d.held, sold_qty = s.sold_qty + d.sold \
                 FROM unnest($1::uuid[], $2::smallint[], $3::bigint[], $4::bigint[]) \
                     AS d(event_id, shard, held, sold) \
                 WHERE s.event_id = d.event_id AND s.shard = d.shard",
            )
            .bind(&events)
            .bind(&shards)
            .bind(&held)
            .bind(&sold)
            .execute(&mut **tx)
            .await
            .map_err(|e| db("move stock", e))?;
        }
        Ok(())
    }
}
