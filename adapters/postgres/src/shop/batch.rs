//! Group commit: the calls of one process that arrive while its writers are busy are written
//! together, in one transaction, each answered with its own outcome. Nothing waits for a batch
//! to fill: a writer takes whatever is queued when it is free, so a lone call costs what it
//! did and a crowd of them shares commits. Two kinds run so:
//!
//! - HOLDs ([`Holds`]), placed by the `place_holds` function (migration
//!   `20261208000001_place_holds.sql`): one statement, so one round trip and one commit for the
//!   whole batch. What the function cannot settle on its own (a replayed key, or a request that
//!   found no free shard with room) is placed alone, by the transaction of
//!   [`PgShop::place_one`]; so is every request of a batch that failed. Placing again is safe: a
//!   request whose batch did commit finds its key and is answered with its order.
//! - Payment results (`Results`, in `payments.rs`).

use super::PgShop;
use crate::error::db;
use crate::row::{get, ts};
use flash_core::StoreError;
use flash_core::domain::{
    HoldOutcome, HoldRejection, HoldRequest, KeyedOutcome, Order, OrderStatus,
};
use flash_core::ports::{OrderStore, StoreResult};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// At most this many calls in one batch.
pub(super) const MAX_BATCH: usize = 64;

/// At most this many calls of a kind wait for a writer; beyond, a call is refused as
/// unavailable at once (a database this far behind is not helped by a longer line).
pub(super) const MAX_WAITING: usize = 4_096;

/// A kind of call written in batches.
pub(super) trait Batch: Send + Sync + 'static {
    type Request: Send + 'static;
    type Outcome: Send + 'static;
    /// Writes `jobs` (at most [`MAX_BATCH`]) and answers every one of them; `false` if the
    /// batch failed (its calls were then answered with the error or written alone).
    fn run(shop: PgShop, jobs: Vec<Job<Self>>) -> impl Future<Output = bool> + Send;
}

pub(super) struct Job<B: Batch + ?Sized> {
    pub(super) req: B::Request,
    pub(super) reply: oneshot::Sender<StoreResult<B::Outcome>>,
}

/// The queue of one process's calls of a kind and the writers that write them.
pub(super) struct Batcher<B: Batch> {
    writers: usize,
    /// `None` until the first call starts the writers, and again once the runtime that ran
    /// them has ended (each test runs its own).
    queue: Mutex<Option<mpsc::Sender<Job<B>>>>,
    tally: Arc<Tally>,
}

/// What the writers of one kind have done so far (see [`PgShop::hold_batches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchCounts {
    /// Batches written (including the failed ones).
    pub batches: u64,
    /// Calls in them.
    pub calls: u64,
    /// Batches that failed, whose calls were answered with the error or written alone.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Tally {
    batches: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
}

impl<B: Batch> fmt::Debug for Batcher<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("writers", &self.writers)
            .finish_non_exhaustive()
    }
}

impl<B: Batch> Batcher<B> {
    pub(super) fn new(writers: usize) -> Self {
        Batcher {
            writers: writers.max(1),
            queue: Mutex::new(None),
            tally: Arc::default(),
        }
    }

    pub(super) fn counts(&self) -> BatchCounts {
        BatchCounts {
            batches: self.tally.batches.load(Ordering::Relaxed),
            calls: self.tally.calls.load(Ordering::Relaxed),
            failed: self.tally.failed.load(Ordering::Relaxed),
        }
    }

    /// Queues `req` for the writers, starting them on the current runtime if none run, and
    /// waits for its outcome.
    pub(super) async fn call(&self, shop: &PgShop, req: B::Request) -> StoreResult<B::Outcome> {
        let (reply, answer) = oneshot::channel();
        let job = Job { req, reply };
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let unsent = match queue.as_ref() {
                Some(tx) => match tx.try_send(job) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        return Err(StoreError::Unavailable(format!(
                            "{MAX_WAITING} writes already wait for the database"
                        )));
                    }
                    Err(mpsc::error::TrySendError::Closed(job)) => Some(job),
                },
                None => Some(job),
            };
            if let Some(job) = unsent {
                let tx = self.start(shop);
                // Only fails if the runtime is already dropping the writers just spawned; the
                // reply is dropped with the job and answered below.
                let _ = tx.try_send(job);
                *queue = Some(tx);
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the batch writers stopped before answering".to_owned(),
            ))
        })
    }

    fn start(&self, shop: &PgShop) -> mpsc::Sender<Job<B>> {
        let (tx, rx) = mpsc::channel(MAX_WAITING);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let alone = shop.unbatched();
        for _ in 0..self.writers {
            tokio::spawn(write::<B>(
                alone.clone(),
                Arc::clone(&rx),
                Arc::clone(&self.tally),
            ));
        }
        tx
    }
}

/// A writer: takes the first queued call and whatever else is queued behind it (up to
/// [`MAX_BATCH`]), writes them, and starts again. A call whose caller has gone (its request was
/// cancelled while it waited) is dropped unwritten, as its own transaction would have been.
async fn write<B: Batch>(
    shop: PgShop,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job<B>>>>,
    tally: Arc<Tally>,
) {
    loop {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        {
            let mut rx = rx.lock().await;
            while jobs.is_empty() {
                let Some(first) = rx.recv().await else {
                    return;
                };
                if !first.reply.is_closed() {
                    jobs.push(first);
                }
            }
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) if job.reply.is_closed() => {}
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        tally.batches.fetch_add(1, Ordering::Relaxed);
        tally.calls.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        if !B::run(shop.clone(), jobs).await {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What to do with the calls of a batch that failed with `e`: `Some(e)` answers each with it
/// (the database is unreachable or overloaded: writing each alone would double its load, and
/// the callers retry: a HOLD with its key, a result by redelivery); `None` writes each alone (one
/// of them may be the cause).
pub(super) fn batch_failed(what: &str, e: StoreError) -> Option<StoreError> {
    tracing::warn!(error = %e, "a batch of {what} failed");
    matches!(e, StoreError::Unavailable(_)).then_some(e)
}

/// HOLDs, placed by `place_holds`.
pub(super) struct Holds;

impl Batch for Holds {
    type Request = HoldRequest;
    type Outcome = HoldOutcome;

    async fn run(shop: PgShop, jobs: Vec<Job<Self>>) -> bool {
        shop.place_batch(jobs).await
    }
}

impl PgShop {
    /// Places `jobs` in one statement and answers each. The function takes at most one request
    /// per user, sorted by user (its lock order); a user's second request, and a quantity no
    /// `integer` column holds, are placed alone beside it.
    async fn place_batch(&self, mut jobs: Vec<Job<Holds>>) -> bool {
        jobs.sort_by(|a, b| {
            (a.req.user, &a.req.idempotency_key).cmp(&(b.req.user, &b.req.idempotency_key))
        });
        let mut batch: Vec<Job<Holds>> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let repeat = batch.last().is_some_and(|b| b.req.user == job.req.user);
            if repeat || i32::try_from(job.req.qty).is_err() {
                self.alone(job);
            } else {
                batch.push(job);
            }
        }
        let verdicts = match self.run_batch(&batch).await {
            Ok(v) => v,
            Err(e) => {
                match batch_failed("HOLDs", e) {
                    Some(e) => batch.into_iter().for_each(|job| {
                        let _ = job.reply.send(Err(e.clone()));
                    }),
                    None => batch.into_iter().for_each(|job| self.alone(job)),
                }
                return false;
            }
        };
        for (job, verdict) in batch.into_iter().zip(verdicts) {
            let outcome = match verdict {
                Verdict::Created { event_name, amount } => created(&job.req, event_name, amount),
                Verdict::Rejected(r) => HoldOutcome::Rejected(r),
                Verdict::Replay => {
                    self.replay(job);
                    continue;
                }
                Verdict::Raced => {
                    self.alone(job);
                    continue;
                }
            };
            // The caller may have gone (its request was cancelled); the HOLD stands, as it
            // would had the caller's own transaction committed.
            let _ = job.reply.send(Ok(outcome));
        }
        true
    }

    /// Places one request by itself, on its own task so the writer goes on. Its own order
    /// found under its key is its batch's work (the batch committed, its answer was lost): it
    /// is answered as created.
    fn alone(&self, job: Job<Holds>) {
        let shop = self.clone();
        tokio::spawn(async move {
            let outcome = match shop.place_one(&job.req).await {
                Ok(HoldOutcome::Replayed(KeyedOutcome::Order(o))) if o.id == job.req.order_id => {
                    Ok(HoldOutcome::Created(o))
                }
                other => other,
            };
            let _ = job.reply.send(outcome);
        });
    }

    /// Answers a request whose key the batch found taken by a committed record: with that
    /// record, read once (or, if it expired meanwhile, by placing the request alone).
    fn replay(&self, job: Job<Holds>) {
        let shop = self.clone();
        tokio::spawn(async move {
            let r = &job.req;
            let outcome = match shop.keyed(r.user, &r.idempotency_key, r.now).await {
                Ok(Some(rec)) if rec.fingerprint == r.fingerprint => {
                    Ok(HoldOutcome::Replayed(rec.outcome))
                }
                Ok(Some(_)) => Ok(HoldOutcome::KeyMismatch),
                Ok(None) => shop.place_one(r).await,
                Err(e) => Err(e),
            };
            let _ = job.reply.send(outcome);
        });
    }

    async fn run_batch(&self, batch: &[Job<Holds>]) -> StoreResult<Vec<Verdict>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut a = Arrays::with_capacity(batch.len());
        for job in batch {
            a.push(&job.req)?;
        }
        let rows = sqlx::query(
            "SELECT verdict, event_name, amount \
             FROM place_holds($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.order)
        .bind(&a.user)
        .bind(&a.event)
        .bind(&a.qty)
        .bind(&a.key)
        .bind(&a.fingerprint)
        .bind(&a.now)
        .bind(&a.key_expires)
        .bind(&a.hold_expires)
        .fetch_all(self.pool())
        .await
        .map_err(|e| db("place holds", e))?;
        if rows.len() != batch.len() {
            return Err(StoreError::Internal(format!(
                "place_holds answered {} of {} requests",
                rows.len(),
                batch.len()
            )));
        }
        rows.iter().map(Verdict::read).collect()
    }
}

/// The function's arguments: one array per column.
struct Arrays {
    order: Vec<uuid::Uuid>,
    user: Vec<uuid::Uuid>,
    event: Vec<uuid::Uuid>,
    qty: Vec<i32>,
    key: Vec<String>,
    fingerprint: Vec<String>,
    now: Vec<time::OffsetDateTime>,
    key_expires: Vec<time::OffsetDateTime>,
    hold_expires: Vec<time::OffsetDateTime>,
}

impl Arrays {
    fn with_capacity(n: usize) -> Self {
        Arrays {
            order: Vec::with_capacity(n),
            user: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            qty: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            fingerprint: Vec::with_capacity(n),
            now: Vec::with_capacity(n),
            key_expires: Vec::with_capacity(n),
            hold_expires: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, r: &HoldRequest) -> StoreResult<()> {
        self.qty.push(
            i32::try_from(r.qty)
                .map_err(|_| StoreError::Internal(format!("hold of {} tickets", r.qty)))?,
        );
        self.order.push(r.order_id.as_uuid());
        self.user.push(r.user.as_uuid());
        self.event.push(r.event_id.as_uuid());
        self.key.push(r.idempotency_key.clone());
        self.fingerprint.push(r.fingerprint.clone());
        self.now.push(ts(r.now)?);
        self.key_expires.push(ts(r.key_expires_at)?);
        self.hold_expires.push(ts(r.hold_expires_at)?);
        Ok(())
    }
}

/// One request's verdict from `place_holds`.
enum Verdict {
    Created {
        event_name: String,
        amount: i64,
    },
    Rejected(HoldRejection),
    /// The key holds a committed record: answered with it.
    Replay,
    /// No free shard had room (or the room was this batch's own): placed alone.
    Raced,
}

impl Verdict {
    fn read(row: &sqlx::postgres::PgRow) -> StoreResult<Verdict> {
        let verdict: String = get(row, "verdict")?;
        Ok(match verdict.as_str() {
            "Created" => Verdict::Created {
                event_name: get(row, "event_name")?,
                amount: get(row, "amount")?,
            },
            "Replay" => Verdict::Replay,
            "Raced" => Verdict::Raced,
            "EventNotFound" => Verdict::Rejected(HoldRejection::EventNotFound),
            "NotOnSale" => Verdict::Rejected(HoldRejection::NotOnSale),
            "OverUserLimit" => Verdict::Rejected(HoldRejection::OverUserLimit),
            "SoldOut" => Verdict::Rejected(HoldRejection::SoldOut),
            other => {
                return Err(StoreError::Internal(format!(
                    "place_holds: unknown verdict {other:?}"
                )));
            }
        })
    }
}

/// The HOLD `req` placed, of `event_name` for `amount`.
pub(super) fn created(req: &HoldRequest, event_name: String, amount: i64) -> HoldOutcome {
    HoldOutcome::Created(Order {
        id: req.order_id,
        user: req.user,
        event_id: req.event_id,
        event_name,
        qty: req.qty,
        amount,
        status: OrderStatus::Hold,
        created_at: req.now,
        updated_at: req.now,
        hold_expires_at: req.hold_expires_at,
    })
}
