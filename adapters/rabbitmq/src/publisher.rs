//! The publishing side: [`AmqpBus`] and its health check.

use crate::backoff::Backoff;
use crate::config::AmqpConfig;
use crate::connection::{self, Confirmed, publish_confirmed, store_error};
use crate::consumer::AmqpConsumer;
use crate::counters::{AmqpCounters, Counters};
use crate::topology::{self, Declared, dlq_name};
use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Bus, HealthCheck, StoreResult};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_util::sync::DropGuard;
use tracing::{debug, info};

/// Reconnection pacing of the publisher. The cap is short because publishes drive reconnection:
/// once the broker is back, the next publish must not sit out a long back-off past its timeout.
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Pause before publishing again after a nack or a returned message, so a broker refusing
/// everything is not hammered in a tight loop until the deadline.
const REPUBLISH_PAUSE: Duration = Duration::from_millis(20);

/// AMQP short strings (message and correlation ids) hold at most 255 bytes.
const MAX_SHORT_STRING: usize = 255;

const CONNECTION_NAME: &str = "flash-publisher";

/// The [`Bus`] on RabbitMQ: persistent JSON messages to durable queues on the default exchange,
/// each publish confirmed by the broker.
///
/// One connection and one confirm channel carry every publish; callers publishing concurrently
/// all have messages in flight at once, each waiting for its own confirm. The connection opens on
/// first use and reopens after a loss with back-off. Clones share the connection and counters.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: AmqpConfig,
    counters: Arc<Counters>,
    current: Mutex<Option<Arc<Link>>>,
    /// Held while (re)connecting, so concurrent publishes share one attempt instead of each
    /// opening a connection; it guards the back-off state of that attempt.
    reconnect: tokio::sync::Mutex<Backoff>,
    closed: AtomicBool,
}

/// One live connection with its publishing channel.
struct Link {
    connection: Connection,
    channel: Channel,
    declared: Declared,
    _events: DropGuard,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Why one publish try failed, and whether another try may still succeed before the deadline.
enum Failure {
    Transient(StoreError),
    Final(StoreError),
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("config", &self.inner.config)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl AmqpBus {
    /// A bus that connects on first use (a pod starts while the broker is down and `/ready`
    /// reports it). Call [`AmqpBus::connect`] to fail fast instead.
    pub fn new(config: AmqpConfig) -> Self {
        AmqpBus {
            inner: Arc::new(Inner {
                config,
                counters: Arc::new(Counters::default()),
                current: Mutex::new(None),
                reconnect: tokio::sync::Mutex::new(Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX)),
                closed: AtomicBool::new(false),
            }),
        }
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    /// Opens the publishing connection now, waiting at most the publish timeout.
    pub async fn connect(&self) -> StoreResult<()> {
        self.link_within(self.inner.config.publish_timeout)
            .await
            .map(drop)
    }

    /// Whether the publishing connection is up (as of the last I/O; no round trip).
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// A consumer of `queue` with this bus's configuration, counting into its counters. It has its
    /// own connection (see the crate documentation).
    pub fn consumer(&self, queue: &str) -> AmqpConsumer {
        AmqpConsumer::with_counters(
            self.inner.config.clone(),
            queue,
            Arc::clone(&self.inner.counters),
        )
    }

    /// The counters of this bus and of the consumers made by [`AmqpBus::consumer`].
    pub fn counters(&self) -> AmqpCounters {
        self.inner.counters.snapshot()
    }

    /// The health check of this bus's connection.
    pub fn health(&self) -> AmqpHealth {
        AmqpHealth { bus: self.clone() }
    }

    /// Ready messages in `queue` (a passive declare; 0 when the queue does not exist).
    /// Deliveries awaiting an acknowledgement are not counted.
    pub async fn queue_len(&self, queue: &str) -> StoreResult<u32> {
        let link = self.link_within(self.inner.config.publish_timeout).await?;
        topology::message_count(&link.connection, queue).await
    }

    /// Ready messages in the dead-letter queue of `queue`, for tests and a metrics gauge.
    pub async fn dlq_len(&self, queue: &str) -> StoreResult<u32> {
        self.queue_len(&dlq_name(queue)).await
    }

    /// Deletes `queue`, its dead-letter queue and their retry queues with their messages; returns
    /// how many messages went. For tests and operators, never called by the services.
    pub async fn delete_topology(&self, queue: &str) -> StoreResult<u32> {
        let link = self.link_within(self.inner.config.publish_timeout).await?;
        // A later publish must declare them again.
        link.declared.forget(queue);
        link.declared.forget(&dlq_name(queue));
        topology::delete_topology(&link.connection, queue).await
    }

    /// Closes the publishing connection for shutdown; later publishes fail as unavailable.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let link = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(link) = link {
            // Publishes still waiting for confirms fail; the caller stopped publishing first.
            let _closed = link.connection.close(200, "shutting down").await;
        }
    }

    fn current(&self) -> Option<Arc<Link>> {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(link) if link.usable() => Some(Arc::clone(link)),
            Some(_) => {
                // Dropping the last handle closes the dead connection's resources.
                *current = None;
                None
            }
            None => None,
        }
    }

    /// Forgets `link` if it is still the current one (another task may have replaced it already).
    fn discard(&self, link: &Arc<Link>) {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
            *current = None;
        }
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.is_closed() {
            Err(StoreError::Unavailable("the bus is shut down".into()))
        } else {
            Ok(())
        }
    }

    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The live connection, opening one if needed (one attempt, after the back-off).
    async fn link(&self) -> StoreResult<Arc<Link>> {
        self.ensure_open()?;
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let mut backoff = self.inner.reconnect.lock().await;
        if let Some(link) = self.current() {
            return Ok(link);
        }
        self.ensure_open()?;
        tokio::time::sleep(backoff.remaining()).await;
        match self.open_link().await {
            Ok(link) => {
                backoff.reset();
                let link = Arc::new(link);
                *self
                    .inner
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&link));
                Counters::bump(&self.inner.counters.connections);
                info!(connection = CONNECTION_NAME, "connected to RabbitMQ");
                Ok(link)
            }
            Err(e) => {
                let delay = backoff.failed();
                debug!(error = %e, retry_in_ms = delay.as_millis(), "cannot connect to RabbitMQ");
                Err(e)
            }
        }
    }

    /// [`AmqpBus::link`], retried until `limit` has passed.
    async fn link_within(&self, limit: Duration) -> StoreResult<Arc<Link>> {
        let mut last = None;
        let attempts = async {
            loop {
                match self.link().await {
                    Ok(link) => return Ok(link),
                    // Closed is for good: waiting would only spin until the limit.
                    Err(e @ StoreError::Unavailable(_)) if self.is_closed() => return Err(e),
                    Err(e @ StoreError::Unavailable(_)) => last = Some(e),
                    Err(e @ (StoreError::Internal(_) | StoreError::Conflict(_))) => return Err(e),
                }
            }
        };
        let outcome = tokio::time::timeout(limit, attempts).await;
        outcome.unwrap_or_else(|_| Err(timed_out("no connection to RabbitMQ", limit, last)))
    }

    async fn open_link(&self) -> StoreResult<Link> {
        let (connection, events) = connection::open(&self.inner.config, CONNECTION_NAME).await?;
        let channel = connection::confirm_channel(&connection).await?;
        Ok(Link {
            connection,
            channel,
            declared: Declared::default(),
            _events: events,
        })
    }

    /// One try: connection, topology, publish, confirm.
    async fn try_publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), Failure> {
        let link = self.link().await.map_err(classify)?;
        // Declared by the publisher too: a message published before any consumer declared the
        // queue would otherwise be unroutable.
        let declared = link
            .declared
            .ensure(queue, || topology::ensure_topology(&link.connection, queue))
            .await;
        if let Err(e) = declared {
            if matches!(e, StoreError::Unavailable(_)) {
                self.discard(&link);
            }
            return Err(classify(e));
        }
        let counters = &self.inner.counters;
        let sent = || Counters::bump(&counters.published);
        match publish_confirmed(&link.channel, queue, body, properties.clone(), sent).await {
            Ok(Confirmed::Ack) => Ok(()),
            Ok(Confirmed::Returned(reply)) => {
                // The queue was deleted after we declared it: declare it again and republish.
                link.declared.forget(queue);
                tokio::time::sleep(REPUBLISH_PAUSE).await;
                Err(Failure::Transient(StoreError::Unavailable(format!(
                    "RabbitMQ returned the message for {queue}: {reply}"
                ))))
            }
            Ok(Confirmed::Nack) => {
                tokio::time::sleep(REPUBLISH_PAUSE).await;
                Err(Failure::Transient(StoreError::Unavailable(format!(
                    "RabbitMQ refused the message for {queue} (nack)"
                ))))
            }
            Err(e) => {
                self.discard(&link);
                Err(classify(store_error("publish failed", &e)))
            }
        }
    }
}

fn classify(e: StoreError) -> Failure {
    match e {
        StoreError::Unavailable(_) => Failure::Transient(e),
        StoreError::Internal(_) | StoreError::Conflict(_) => Failure::Final(e),
    }
}

fn timed_out(what: &str, limit: Duration, last: Option<StoreError>) -> StoreError {
    match last {
        Some(e) => StoreError::Unavailable(format!("{what} within {limit:?}; last error: {e}")),
        None => StoreError::Unavailable(format!("{what} within {limit:?}")),
    }
}

/// Legacy message properties: persistent, JSON, ids from the envelope, plus the publish time.
fn properties(envelope: &Envelope) -> StoreResult<BasicProperties> {
    let mut properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2);
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        properties = properties.with_timestamp(now.as_secs());
    }
    for (name, value) in [
        ("message id", &envelope.message_id),
        ("correlation id", &envelope.correlation_id),
    ] {
        if value.len() > MAX_SHORT_STRING {
            return Err(StoreError::Internal(format!(
                "{name} longer than {MAX_SHORT_STRING} bytes"
            )));
        }
    }
    if !envelope.message_id.is_empty() {
        properties = properties.with_message_id(ShortString::from(envelope.message_id.as_str()));
    }
    if !envelope.correlation_id.is_empty() {
        properties =
            properties.with_correlation_id(ShortString::from(envelope.correlation_id.as_str()));
    }
    Ok(properties)
}

#[async_trait]
impl Bus for AmqpBus {
    /// Retries on a fresh connection after a loss until the publish timeout: a message whose
    /// confirm was lost with a connection may thus be published twice (consumers are idempotent).
    async fn publish(&self, queue: &str, envelope: Envelope) -> StoreResult<()> {
        let properties = properties(&envelope)?;
        let limit = self.inner.config.publish_timeout;
        let deadline = Instant::now() + limit;
        let mut last = None;
        let tries = async {
            loop {
                match self.try_publish(queue, &envelope.body, &properties).await {
                    Ok(()) => return Ok(()),
                    Err(Failure::Transient(e)) if self.is_closed() => return Err(e),
                    Err(Failure::Transient(e)) => last = Some(e),
                    Err(Failure::Final(e)) => return Err(e),
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline, tries).await;
        let result = outcome.unwrap_or_else(|_| Err(timed_out("no broker confirm", limit, last)));
        let counters = &self.inner.counters;
        Counters::bump(match &result {
            Ok(()) => &counters.confirmed,
            Err(_) => &counters.publish_failed,
        });
        result
    }
}

/// `/ready` and `/health` for the bus: the publishing connection is up, or can be opened now.
#[derive(Debug, Clone)]
pub struct AmqpHealth {
    bus: AmqpBus,
}

/// A probe must answer before the orchestrator's own timeout.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait]
impl HealthCheck for AmqpHealth {
    fn name(&self) -> &'static str {
        "bus"
    }

    async fn ping(&self) -> StoreResult<()> {
        let limit = HEALTH_TIMEOUT.min(self.bus.inner.config.publish_timeout);
        self.bus.link_within(limit).await.map(drop)
    }
}
