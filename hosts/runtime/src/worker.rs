//! The bus side of a host: a consumer loop that feeds deliveries to a [`MessageHandler`] and
//! settles them with its [`Disposition`], and the outbox relay step.
//!
//! Both are transport-neutral: they see only the `flash-core` ports, so the same loop runs over
//! the in-process bus, RabbitMQ or SQS.

use crate::backoff::Backoff;
use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Acker, Bus, BusConsumer, Clock, Delivery, Disposition, Outbox};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// First and longest wait after the consumer fails to receive (broker down, channel lost).
const RECEIVE_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const RECEIVE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Retry delay of a message whose handler panicked. A panic is a bug, likely deterministic:
/// retrying lets the attempt limit dead-letter it instead of losing or spinning on it.
const AFTER_PANIC: Duration = Duration::from_secs(1);

/// Business logic for one queue's messages.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// Decides what becomes of one delivery. `attempt` is 1 for the first delivery. Business
    /// refusals are [`Disposition::Ack`]; transient failures `Retry`; malformed input
    /// `DeadLetter`. Called concurrently for different deliveries.
    async fn handle(&self, envelope: &Envelope, attempt: u32) -> Disposition;
}

/// Consumes `consumer` until `shutdown` is cancelled or the consumer closes, with up to
/// `concurrency` deliveries in flight.
///
/// A slot is taken *before* receiving, so no more than `concurrency` messages are ever held
/// unsettled (the broker's prefetch can then match it). On shutdown no new delivery is taken and
/// the in-flight ones are handled and settled before this returns. A failing receive is retried
/// with jittered exponential back-off; this loop never gives up on its own.
///
/// When shutdown interrupts a pending [`BusConsumer::next`], that future is dropped: consumers
/// must be cancel-safe, i.e. a delivery not yet returned stays with the broker for redelivery.
pub async fn run_consumer(
    name: &str,
    consumer: Arc<dyn BusConsumer>,
    handler: Arc<dyn MessageHandler>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let name: Arc<str> = Arc::from(name);
    // tokio's semaphore refuses more permits than MAX_PERMITS; no broker prefetch comes close.
    let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    let mut backoff = Backoff::new(RECEIVE_BACKOFF_INITIAL, RECEIVE_BACKOFF_MAX);
    info!(consumer = %name, concurrency, "consumer started");

    loop {
        while let Some(joined) = in_flight.try_join_next() {
            log_join(&name, joined);
        }
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed; if it were, nothing more could run.
                Err(_closed) => break,
            },
        };
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            received = consumer.next() => received,
        };
        match received {
            Ok(Some(delivery)) => {
                backoff.reset();
                in_flight.spawn(process(name.clone(), handler.clone(), delivery, slot));
            }
            Ok(None) => {
                info!(consumer = %name, "consumer closed by the bus");
                break;
            }
            Err(e) => {
                drop(slot);
                let delay = backoff.next_delay();
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                match &e {
                    StoreError::Unavailable(_) => {
                        warn!(consumer = %name, error = %e, delay_ms, "cannot receive; retrying");
                    }
                    StoreError::Conflict(_) | StoreError::Internal(_) => {
                        error!(consumer = %name, error = %e, delay_ms, "receive failed; retrying");
                    }
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    if !in_flight.is_empty() {
        info!(consumer = %name, in_flight = in_flight.len(), "finishing in-flight deliveries");
    }
    while let Some(joined) = in_flight.join_next().await {
        log_join(&name, joined);
    }
    info!(consumer = %name, "consumer stopped");
}

/// Handles and settles one delivery, holding its concurrency slot until settled.
async fn process(
    consumer: Arc<str>,
    handler: Arc<dyn MessageHandler>,
    delivery: Delivery,
    slot: OwnedSemaphorePermit,
) {
    let Delivery {
        envelope,
        attempt,
        acker,
    } = delivery;
    let span = info_span!(
        "message",
        consumer = %consumer,
        message_id = %envelope.message_id,
        correlation_id = %envelope.correlation_id,
        attempt
    );
    async move {
        let disposition = match AssertUnwindSafe(handler.handle(&envelope, attempt))
            .catch_unwind()
            .await
        {
            Ok(d) => d,
            Err(_panic) => {
                error!("message handler panicked; retrying the delivery");
                Disposition::Retry { after: AFTER_PANIC }
            }
        };
        log_disposition(&disposition);
        settle(acker.as_ref(), disposition).await;
        drop(slot);
    }
    .instrument(span)
    .await;
}

fn log_disposition(d: &Disposition) {
    match d {
        Disposition::Ack => debug!("message handled"),
        Disposition::Retry { after } => {
            let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            warn!(after_ms, "message will be retried");
        }
        Disposition::DeadLetter { reason } => warn!(reason = %reason, "message dead-lettered"),
    }
}

async fn settle(acker: &dyn Acker, disposition: Disposition) {
    if let Err(e) = acker.settle(disposition).await {
        // Unsettled deliveries come back from the broker; handlers are idempotent per message.
        warn!(error = %e, "could not settle the delivery; the bus will redeliver it");
    }
}

fn log_join(consumer: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        // Panics are caught inside `process`; this is a panic in settling or an abort.
        error!(consumer, error = %e, "delivery task failed");
    }
}

/// Publishes one batch of the outbox: claims up to `batch` messages for `lease`, publishes them
/// concurrently (each confirmed by the broker), and marks the confirmed ones sent in one call.
///
/// Returns how many were sent. Messages whose publish failed stay leased and are claimed again
/// when the lease ends. When every publish of a non-empty batch fails, the first error is
/// returned so the caller's failure logging sees the outage; a partial failure is logged here.
/// A message published but not marked (crash, `mark_sent` failure) is published again later:
/// consumers are idempotent per payment.
pub async fn relay_outbox_once(
    outbox: &dyn Outbox,
    bus: &dyn Bus,
    clock: &dyn Clock,
    batch: usize,
    lease: Duration,
) -> Result<usize, StoreError> {
    let claimed = outbox.claim(batch, clock.now(), lease).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    // One batch per queue (the outbox holds one queue today, but a row names its own).
    let mut by_queue: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, m) in claimed.iter().enumerate() {
        match by_queue.iter_mut().find(|(q, _)| *q == m.queue) {
            Some((_, indexes)) => indexes.push(i),
            None => by_queue.push((&m.queue, vec![i])),
        }
    }
    let mut results: Vec<Option<Result<(), StoreError>>> = vec![None; claimed.len()];
    let batches = by_queue.iter().map(|(queue, indexes)| {
        let envelopes = indexes
            .iter()
            .map(|&i| claimed[i].envelope.clone())
            .collect();
        bus.publish_batch(queue, envelopes)
    });
    for ((_, indexes), outcomes) in by_queue
        .iter()
        .zip(futures::future::join_all(batches).await)
    {
        for (&i, outcome) in indexes.iter().zip(outcomes) {
            results[i] = Some(outcome);
        }
    }
    let results = results.into_iter().map(|r| {
        r.unwrap_or_else(|| {
            Err(StoreError::Internal(
                "the bus gave no result for a message".into(),
            ))
        })
    });

    let mut sent = Vec::with_capacity(claimed.len());
    let mut first_error = None;
    let mut failed = 0usize;
    for (message, result) in claimed.iter().zip(results) {
        match result {
            Ok(()) => sent.push(message.id),
            Err(e) => {
                failed += 1;
                debug!(outbox_id = %message.id, error = %e, "outbox publish failed");
                first_error.get_or_insert(e);
            }
        }
    }

    if !sent.is_empty() {
        outbox.mark_sent(&sent, clock.now()).await?;
    }
    match first_error {
        Some(e) if sent.is_empty() => Err(e),
        Some(e) => {
            warn!(
                sent = sent.len(),
                failed,
                error = %e,
                "some outbox messages were not published; they will be retried after their lease"
            );
            Ok(sent.len())
        }
        None => {
            debug!(sent = sent.len(), "outbox batch relayed");
            Ok(sent.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_core::OutboxId;
    use flash_core::Timestamp;
    use flash_core::ports::{OutboxMessage, StoreResult};
    use std::collections::{HashSet, VecDeque};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    type Settled = Arc<Mutex<Vec<(String, Disposition)>>>;

    struct FakeAcker {
        message_id: String,
        settled: Settled,
    }

    #[async_trait]
    impl Acker for FakeAcker {
        async fn settle(&self, disposition: Disposition) -> StoreResult<()> {
            self.settled
                .lock()
                .unwrap()
                .push((self.message_id.clone(), disposition));
            Ok(())
        }
    }

    /// Hands out scripted receive results, then either closes or waits forever.
    struct FakeConsumer {
        script: Mutex<VecDeque<StoreResult<Delivery>>>,
        close_when_empty: bool,
        taken: AtomicUsize,
    }

    impl FakeConsumer {
        fn new(script: Vec<StoreResult<Delivery>>, close_when_empty: bool) -> Arc<Self> {
            Arc::new(FakeConsumer {
                script: Mutex::new(script.into()),
                close_when_empty,
                taken: AtomicUsize::new(0),
            })
        }

        fn remaining(&self) -> usize {
            self.script.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl BusConsumer for FakeConsumer {
        async fn next(&self) -> StoreResult<Option<Delivery>> {
            let item = self.script.lock().unwrap().pop_front();
            match item {
                Some(Ok(d)) => {
                    self.taken.fetch_add(1, Ordering::SeqCst);
                    Ok(Some(d))
                }
                Some(Err(e)) => Err(e),
                None if self.close_when_empty => Ok(None),
                None => std::future::pending().await,
            }
        }
    }

    fn delivery(id: &str, attempt: u32, settled: &Settled) -> StoreResult<Delivery> {
        Ok(Delivery {
            envelope: Envelope {
                message_id: id.into(),
                correlation_id: id.into(),
                body: b"{}".to_vec(),
            },
            attempt,
            acker: Box::new(FakeAcker {
                message_id: id.into(),
                settled: settled.clone(),
            }),
        })
    }

    /// Decides by message id, and waits for a permit of `gate` first so tests can hold
    /// deliveries in flight.
    struct GatedHandler {
        gate: Semaphore,
        started: AtomicUsize,
        running: AtomicUsize,
        max_running: AtomicUsize,
        last_attempt: AtomicU32,
    }

    impl GatedHandler {
        fn new(open_permits: usize) -> Arc<Self> {
            Arc::new(GatedHandler {
                gate: Semaphore::new(open_permits),
                started: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
                last_attempt: AtomicU32::new(0),
            })
        }
    }

    #[async_trait]
    impl MessageHandler for GatedHandler {
        async fn handle(&self, envelope: &Envelope, attempt: u32) -> Disposition {
            self.started.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            self.last_attempt.store(attempt, Ordering::SeqCst);
            if let Ok(p) = self.gate.acquire().await {
                p.forget();
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            let id = envelope.message_id.as_str();
            if id.starts_with("retry") {
                Disposition::Retry {
                    after: Duration::from_millis(250),
                }
            } else if id.starts_with("dead") {
                Disposition::DeadLetter {
                    reason: format!("{id} is malformed"),
                }
            } else if id.starts_with("panic") {
                panic!("handler bug on {id}")
            } else {
                Disposition::Ack
            }
        }
    }

    /// Polls `cond` until it holds, failing the test after a generous deadline.
    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_deliveries_in_flight_than_the_concurrency() {
        let settled = Settled::default();
        let script = (0..10)
            .map(|i| delivery(&format!("m{i}"), 1, &settled))
            .collect();
        let consumer = FakeConsumer::new(script, true);
        let handler = GatedHandler::new(0);
        let run = tokio::spawn({
            let (c, h) = (consumer.clone(), handler.clone());
            async move { run_consumer("test", c, h, 3, CancellationToken::new()).await }
        });

        eventually("3 deliveries in flight", || {
            handler.started.load(Ordering::SeqCst) == 3
        })
        .await;
        assert_eq!(
            consumer.taken.load(Ordering::SeqCst),
            3,
            "no delivery is received without a free slot"
        );
        handler.gate.add_permits(10);
        run.await.unwrap();

        assert_eq!(handler.max_running.load(Ordering::SeqCst), 3);
        let settled = settled.lock().unwrap();
        assert_eq!(settled.len(), 10);
        assert!(settled.iter().all(|(_, d)| *d == Disposition::Ack));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dispositions_and_attempts_pass_through_and_panics_retry() {
        let settled = Settled::default();
        let consumer = FakeConsumer::new(
            vec![
                delivery("ack-1", 1, &settled),
                delivery("retry-2", 2, &settled),
                delivery("dead-3", 3, &settled),
                delivery("panic-4", 4, &settled),
            ],
            true,
        );
        let handler = GatedHandler::new(100);
        run_consumer(
            "test",
            consumer,
            handler.clone(),
            1,
            CancellationToken::new(),
        )
        .await;

        let mut settled = settled.lock().unwrap().clone();
        settled.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            settled,
            [
                ("ack-1".to_string(), Disposition::Ack),
                (
                    "dead-3".to_string(),
                    Disposition::DeadLetter {
                        reason: "dead-3 is malformed".into()
                    }
                ),
                (
                    "panic-4".to_string(),
                    Disposition::Retry { after: AFTER_PANIC }
                ),
                (
                    "retry-2".to_string(),
                    Disposition::Retry {
                        after: Duration::from_millis(250)
                    }
                ),
            ]
        );
        // Concurrency 1 handles in order, so the last attempt seen is the last delivery's.
        assert_eq!(handler.last_attempt.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn shutdown_takes_nothing_new_and_drains_what_is_in_flight() {
        let settled = Settled::default();
        let script = (0..5)
            .map(|i| delivery(&format!("m{i}"), 1, &settled))
            .collect();
        let consumer = FakeConsumer::new(script, false);
        let handler = GatedHandler::new(0);
        let token = CancellationToken::new();
        let mut run = tokio::spawn({
            let (c, h, t) = (consumer.clone(), handler.clone(), token.clone());
            async move { run_consumer("test", c, h, 2, t).await }
        });

        eventually("2 deliveries in flight", || {
            handler.started.load(Ordering::SeqCst) == 2
        })
        .await;
        token.cancel();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut run)
                .await
                .is_err(),
            "the consumer must wait for its in-flight deliveries"
        );
        assert!(settled.lock().unwrap().is_empty());

        handler.gate.add_permits(2);
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("drained after the handlers finish")
            .unwrap();
        assert_eq!(settled.lock().unwrap().len(), 2, "both in-flight settled");
        assert_eq!(handler.started.load(Ordering::SeqCst), 2);
        assert_eq!(consumer.remaining(), 3, "nothing new taken after shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_bus_is_retried_with_back_off() {
        let settled = Settled::default();
        let consumer = FakeConsumer::new(
            vec![
                Err(StoreError::Unavailable("broker down".into())),
                Err(StoreError::Unavailable("broker down".into())),
                Err(StoreError::Internal("channel error".into())),
                delivery("m1", 1, &settled),
            ],
            true,
        );
        let started = tokio::time::Instant::now();
        run_consumer(
            "test",
            consumer,
            GatedHandler::new(100),
            4,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(
            *settled.lock().unwrap(),
            [("m1".to_string(), Disposition::Ack)]
        );
        // Three waits of at least 50, 100 and 200 ms (half of each doubling base).
        assert!(started.elapsed() >= Duration::from_millis(350));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_the_back_off() {
        let script = (0..20)
            .map(|_| Err(StoreError::Unavailable("broker down".into())))
            .collect();
        let consumer = FakeConsumer::new(script, false);
        let token = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let run = tokio::spawn({
            let (c, t) = (consumer.clone(), token.clone());
            async move { run_consumer("test", c, GatedHandler::new(1), 1, t).await }
        });
        // Yielding lets the consumer run without letting the paused clock advance.
        while consumer.remaining() == 20 {
            tokio::task::yield_now().await;
        }
        token.cancel();
        run.await.unwrap();
        assert_eq!(consumer.remaining(), 19, "no receive after shutdown");
        assert!(
            started.elapsed() < RECEIVE_BACKOFF_INITIAL / 2,
            "the back-off wait was cut short"
        );
    }

    struct FixedClock(Timestamp);

    #[async_trait]
    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            self.0
        }
        async fn sleep(&self, _d: Duration) {}
    }

    struct FakeOutbox {
        messages: Vec<OutboxMessage>,
        claims: Mutex<Vec<(usize, Timestamp, Duration)>>,
        marked: Mutex<Vec<Vec<OutboxId>>>,
    }

    impl FakeOutbox {
        fn with(ids: &[&str]) -> Self {
            FakeOutbox {
                messages: ids
                    .iter()
                    .map(|id| OutboxMessage {
                        id: OutboxId(uuid::Uuid::new_v4()),
                        queue: "payments_request".into(),
                        envelope: Envelope {
                            message_id: (*id).into(),
                            correlation_id: (*id).into(),
                            body: b"{}".to_vec(),
                        },
                        attempts: 0,
                    })
                    .collect(),
                claims: Mutex::default(),
                marked: Mutex::default(),
            }
        }

        fn id_of(&self, message_id: &str) -> OutboxId {
            self.messages
                .iter()
                .find(|m| m.envelope.message_id == message_id)
                .map(|m| m.id)
                .unwrap()
        }
    }

    #[async_trait]
    impl Outbox for FakeOutbox {
        async fn claim(
            &self,
            limit: usize,
            now: Timestamp,
            lease: Duration,
        ) -> StoreResult<Vec<OutboxMessage>> {
            self.claims.lock().unwrap().push((limit, now, lease));
            Ok(self.messages.iter().take(limit).cloned().collect())
        }
        async fn mark_sent(&self, ids: &[OutboxId], _now: Timestamp) -> StoreResult<()> {
            self.marked.lock().unwrap().push(ids.to_vec());
            Ok(())
        }
        async fn backlog(&self) -> StoreResult<u64> {
            Ok(self.messages.len() as u64)
        }
    }

    /// Confirms every publish except those of the listed message ids.
    struct FakeBus {
        refuse: HashSet<String>,
        published: Mutex<Vec<(String, String)>>,
    }

    impl FakeBus {
        fn refusing(ids: &[&str]) -> Self {
            FakeBus {
                refuse: ids.iter().map(|s| (*s).to_string()).collect(),
                published: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Bus for FakeBus {
        async fn publish(&self, queue: &str, envelope: Envelope) -> StoreResult<()> {
            if self.refuse.contains(&envelope.message_id) {
                return Err(StoreError::Unavailable("no confirm".into()));
            }
            self.published
                .lock()
                .unwrap()
                .push((queue.to_string(), envelope.message_id));
            Ok(())
        }
    }

    const NOW: FixedClock = FixedClock(Timestamp(1_762_149_814_000));

    #[tokio::test]
    async fn relay_marks_exactly_the_confirmed_messages_in_one_call() {
        let outbox = FakeOutbox::with(&["a", "b", "c"]);
        let bus = FakeBus::refusing(&["b"]);
        let sent = relay_outbox_once(&outbox, &bus, &NOW, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(sent, 2);
        assert_eq!(
            *outbox.claims.lock().unwrap(),
            [(10, NOW.0, Duration::from_secs(30))]
        );
        assert_eq!(
            *outbox.marked.lock().unwrap(),
            [vec![outbox.id_of("a"), outbox.id_of("c")]]
        );
        let mut published = bus.published.lock().unwrap().clone();
        published.sort();
        assert_eq!(
            published,
            [
                ("payments_request".to_string(), "a".to_string()),
                ("payments_request".to_string(), "c".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn relay_reports_an_outage_and_marks_nothing() {
        let outbox = FakeOutbox::with(&["a", "b"]);
        let bus = FakeBus::refusing(&["a", "b"]);
        let err = relay_outbox_once(&outbox, &bus, &NOW, 10, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::Unavailable("no confirm".into()));
        assert!(outbox.marked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn relay_of_an_empty_outbox_publishes_and_marks_nothing() {
        let outbox = FakeOutbox::with(&[]);
        let bus = FakeBus::refusing(&[]);
        let sent = relay_outbox_once(&outbox, &bus, &NOW, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(sent, 0);
        assert!(outbox.marked.lock().unwrap().is_empty());
        assert!(bus.published.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn relay_claims_at_most_the_batch() {
        let outbox = FakeOutbox::with(&["a", "b", "c"]);
        let bus = FakeBus::refusing(&[]);
        let sent = relay_outbox_once(&outbox, &bus, &NOW, 2, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(sent, 2);
        assert_eq!(outbox.marked.lock().unwrap()[0].len(), 2);
    }
}
