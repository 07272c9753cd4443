//! The background work of a host: promotion, hold expiry, payment timeouts, the outbox relay and
//! the bus consumers, each as a named task that stops on shutdown.

use crate::periodic::spawn_periodic;
use crate::shutdown::TaskSet;
use crate::worker::{MessageHandler, relay_outbox_once, run_consumer};
use flash_core::domain::Notice;
use flash_core::ports::{Bus, BusConsumer, Clock, Outbox, QueueNotifier};
use flash_core::{Context, StoreError, Timestamp};
use flash_handlers::Work;
use flash_handlers::events::{EVENT_CACHE_TTL, EventCache};
use flash_handlers::queue::Promoted;
use flash_metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How often each sweeper runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub promotion: Duration,
    pub sweep: Duration,
    pub relay: Duration,
}

/// One promotion pass: admits what capacity allows and records admissions and waits.
pub async fn promote_once(work: &Work, metrics: &Metrics) -> Result<usize, StoreError> {
    Ok(promote_pass(work, metrics).await?.tickets.len())
}

async fn promote_pass(work: &Work, metrics: &Metrics) -> Result<Promoted, StoreError> {
    let promoted = work.promote.handle(&Context::new("promotion")).await?;
    for t in &promoted.tickets {
        metrics.queue_admissions_total.inc();
        if let Some(at) = t.admitted_at {
            metrics
                .queue_wait_seconds
                .observe(t.created_at.until(at).as_secs_f64());
        }
    }
    Ok(promoted)
}

/// Kicks the promoter at `at` (a pre-queue's start), unless a wake-up at or before it is already
/// armed: one sleeping task per pending start, not one per pass.
fn wake_at(work: &Arc<Work>, armed: &Arc<AtomicI64>, at: Timestamp) {
    let ms = at.millis();
    if armed.fetch_min(ms, Ordering::SeqCst) <= ms {
        return;
    }
    let delay = Duration::from_millis(u64::try_from(ms - work.now().millis()).unwrap_or(0));
    let (work, armed) = (work.clone(), armed.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = armed.compare_exchange(ms, i64::MAX, Ordering::SeqCst, Ordering::SeqCst);
        work.promotion_kick.kick();
    });
}

/// Admits queued tickets every interval, at once when kicked (a slot freed, someone joined), and
/// when a pre-queue's sale starts (its line opens then, not up to an interval later).
pub fn spawn_promoter(tasks: &mut TaskSet, work: Arc<Work>, metrics: Metrics, every: Duration) {
    let kick = work.promotion_kick.notify();
    let token = tasks.token();
    let armed = Arc::new(AtomicI64::new(i64::MAX));
    let h = spawn_periodic("promotion", every, Some(kick), token, move || {
        let (work, metrics, armed) = (work.clone(), metrics.clone(), armed.clone());
        async move {
            let promoted = promote_pass(&work, &metrics).await?;
            if let Some(at) = promoted.opens_at {
                wake_at(&work, &armed, at);
            }
            Ok::<_, StoreError>(promoted.tickets.len())
        }
    });
    tasks.adopt("promotion", h);
}

/// One hold-expiry pass; kicks the promoter when stock came back.
pub async fn expire_holds_once(work: &Work) -> Result<usize, StoreError> {
    let expired = work
        .expire_holds
        .handle(&Context::new("hold-expiry"))
        .await?;
    if !expired.is_empty() {
        // Released stock may let waiting buyers in.
        work.promotion_kick.kick();
    }
    Ok(expired.len())
}

/// One payment-timeout pass.
pub async fn time_out_payments_once(work: &Work) -> Result<usize, StoreError> {
    work.time_out_payments
        .handle(&Context::new("payment-timeouts"))
        .await
}

/// Hold expiry and payment timeouts; safe to run in every instance.
pub fn spawn_sweepers(tasks: &mut TaskSet, work: Arc<Work>, every: Duration) {
    let h = work.clone();
    let expiry = spawn_periodic("hold-expiry", every, None, tasks.token(), move || {
        let h = h.clone();
        async move { expire_holds_once(&h).await }
    });
    tasks.adopt("hold-expiry", expiry);
    let timeouts = spawn_periodic("payment-timeouts", every, None, tasks.token(), move || {
        let h = work.clone();
        async move { time_out_payments_once(&h).await }
    });
    tasks.adopt("payment-timeouts", timeouts);
}

/// Drains the outbox: publishes in batches of 256 while there is a backlog, then records the
/// backlog left.
pub async fn relay_outbox(
    outbox: &dyn Outbox,
    bus: &dyn Bus,
    clock: &dyn Clock,
    metrics: &Metrics,
    queue: &str,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let sent = relay_outbox_once(outbox, bus, clock, 256, Duration::from_secs(30)).await?;
        metrics
            .bus_published_total
            .with_label_values(&[queue])
            .inc_by(sent as u64);
        total += sent;
        if sent < 256 {
            break;
        }
    }
    metrics
        .outbox_backlog
        .set(i64::try_from(outbox.backlog().await?).unwrap_or(i64::MAX));
    Ok(total)
}

/// Publishes outbox messages with confirms; runs every interval and when a payment is written.
pub fn spawn_relay(
    tasks: &mut TaskSet,
    work: &Work,
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    every: Duration,
) {
    let kick = work.relay_kick.notify();
    let queue = work.settings.payments.request_queue.clone();
    let h = spawn_periodic(
        "outbox-relay",
        every,
        Some(kick),
        tasks.token(),
        move || {
            let (outbox, bus, clock, metrics, queue) = (
                outbox.clone(),
                bus.clone(),
                clock.clone(),
                metrics.clone(),
                queue.clone(),
            );
            async move { relay_outbox(&*outbox, &*bus, &*clock, &metrics, &queue).await }
        },
    );
    tasks.adopt("outbox-relay", h);
}

/// Runs a bus consumer (`payment-results`, `pay-worker`) on `consumer`, `concurrency` messages
/// at a time, until shutdown.
pub fn spawn_consumer(
    tasks: &mut TaskSet,
    name: &'static str,
    consumer: Arc<dyn BusConsumer>,
    handler: Arc<dyn MessageHandler>,
    concurrency: usize,
) {
    let token = tasks.token();
    tasks.spawn(name, async move {
        run_consumer(name, consumer, handler, concurrency, token).await;
    });
}

/// Keeps `cache` in step with the event changes every instance announces (see
/// [`EventCache`]): a push loop with nothing in flight, aborted on shutdown.
pub fn spawn_event_follower(
    tasks: &mut TaskSet,
    cache: Arc<EventCache>,
    notifier: Arc<dyn QueueNotifier>,
) {
    tasks.adopt_abortable(tokio::spawn(follow_changes(cache, notifier)));
}

/// Forgets, in `cache`, every event another instance announces as changed, for as long as the
/// host serves (it resubscribes when the notifier drops the subscription, forgetting everything
/// then: announcements may have been missed meanwhile).
async fn follow_changes(cache: Arc<EventCache>, notifier: Arc<dyn QueueNotifier>) {
    loop {
        let mut sub = match notifier.subscribe().await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "event change notices unavailable; retrying");
                tokio::time::sleep(EVENT_CACHE_TTL).await;
                continue;
            }
        };
        cache.forget_all();
        while let Some(notice) = sub.next().await {
            if let Notice::Event(n) = notice {
                cache.forget(n.event_id);
            }
        }
        tokio::time::sleep(EVENT_CACHE_TTL / 5).await;
    }
}
