//! The background work of a host: promotion, hold expiry, payment timeouts, the outbox relay and
//! the bus consumers, each as a named task that stops on shutdown.

use crate::consumers::{PaymentRequests, PaymentResults};
use crate::periodic::spawn_periodic;
use crate::shutdown::TaskSet;
use crate::worker::{MessageHandler, relay_outbox_once, run_consumer};
use flash_core::ports::{Bus, BusConsumer, Clock, Outbox};
use flash_core::{Context, StoreError};
use flash_handlers::Handlers;
use flash_metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// How often each sweeper runs.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub promotion: Duration,
    pub sweep: Duration,
    pub relay: Duration,
}

/// One promotion pass: admits what capacity allows and records admissions and waits.
pub async fn promote_once(handlers: &Handlers, metrics: &Metrics) -> Result<usize, StoreError> {
    let promoted = handlers.promote.handle(&Context::new("promotion")).await?;
    for t in &promoted.tickets {
        metrics.queue_admissions_total.inc();
        if let Some(at) = t.admitted_at {
            metrics
                .queue_wait_seconds
                .observe(t.created_at.until(at).as_secs_f64());
        }
    }
    Ok(promoted.tickets.len())
}

/// Admits queued tickets every interval and at once when kicked (a slot freed, someone joined).
pub fn spawn_promoter(
    tasks: &mut TaskSet,
    handlers: Arc<Handlers>,
    metrics: Metrics,
    every: Duration,
) {
    let kick = handlers.promotion_kick.notify();
    let token = tasks.token();
    let h = spawn_periodic("promotion", every, Some(kick), token, move || {
        let handlers = handlers.clone();
        let metrics = metrics.clone();
        async move { promote_once(&handlers, &metrics).await }
    });
    tasks.adopt("promotion", h);
}

/// One hold-expiry pass; kicks the promoter when stock came back.
pub async fn expire_holds_once(handlers: &Handlers) -> Result<usize, StoreError> {
    let expired = handlers
        .expire_holds
        .handle(&Context::new("hold-expiry"))
        .await?;
    if !expired.is_empty() {
        // Released stock may let waiting buyers in.
        handlers.promotion_kick.kick();
    }
    Ok(expired.len())
}

/// One payment-timeout pass.
pub async fn time_out_payments_once(handlers: &Handlers) -> Result<usize, StoreError> {
    handlers
        .time_out_payments
        .handle(&Context::new("payment-timeouts"))
        .await
}

/// Hold expiry and payment timeouts; safe to run in every instance.
pub fn spawn_sweepers(tasks: &mut TaskSet, handlers: Arc<Handlers>, every: Duration) {
    let h = handlers.clone();
    let expiry = spawn_periodic("hold-expiry", every, None, tasks.token(), move || {
        let h = h.clone();
        async move { expire_holds_once(&h).await }
    });
    tasks.adopt("hold-expiry", expiry);
    let timeouts = spawn_periodic("payment-timeouts", every, None, tasks.token(), move || {
        let h = handlers.clone();
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
    handlers: &Handlers,
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    every: Duration,
) {
    let kick = handlers.relay_kick.notify();
    let queue = handlers.settings.payments.request_queue.clone();
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

/// Applies payment results from the bus.
pub fn spawn_result_consumer(
    tasks: &mut TaskSet,
    handlers: Arc<Handlers>,
    metrics: Metrics,
    consumer: Arc<dyn BusConsumer>,
    concurrency: usize,
) {
    let queue = handlers.settings.payments.result_queue.clone();
    let handler = PaymentResults {
        handlers,
        metrics,
        queue,
    };
    spawn_consumer(
        tasks,
        "payment-results",
        consumer,
        Arc::new(handler),
        concurrency,
    );
}

/// Runs the mock payment processor on the request queue.
pub fn spawn_pay_worker(
    tasks: &mut TaskSet,
    handlers: Arc<Handlers>,
    metrics: Metrics,
    consumer: Arc<dyn BusConsumer>,
    concurrency: usize,
) {
    let queue = handlers.settings.payments.request_queue.clone();
    let handler = PaymentRequests {
        handlers,
        metrics,
        queue,
    };
    spawn_consumer(
        tasks,
        "pay-worker",
        consumer,
        Arc::new(handler),
        concurrency,
    );
}

fn spawn_consumer(
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
