//! The `flash-testkit` bus contracts and the RabbitMQ-specific guarantees, against the real
//! broker at `RABBITMQ_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`; start one with
//! `rabbitmq-server -detached`). Every test uses queues of its own and deletes them at the end.
//! Outages are simulated with a TCP proxy in front of the broker, so a test never disturbs the
//! broker other tests (and other developers) are using.

use flash_adapter_rabbitmq::*;
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Bus, BusConsumer, Delivery, Disposition, StoreResult};
use flash_testkit::BusPorts;
use flash_testkit::fixtures::{
    PATIENCE, QUIET, next_delivery as next, nothing_more, retry, unique,
};
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

fn url() -> String {
    std::env::var("RABBITMQ_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn config() -> AmqpConfig {
    AmqpConfig::new(url())
}

fn envelope(id: &str) -> Envelope {
    Envelope {
        message_id: id.to_owned(),
        correlation_id: format!("corr-{id}"),
        body: format!("{{\"requestId\":\"{id}\"}}").into_bytes(),
    }
}

/// Deletes a test's queues (main, dead-letter, retry) when dropped, on a thread and runtime of its
/// own: it may run while the test's runtime is shutting down or a failed test is unwinding.
struct Cleanup {
    queue: String,
}

impl Cleanup {
    fn new(queue: &str) -> Self {
        Cleanup {
            queue: queue.to_owned(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let queue = self.queue.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let bus = AmqpBus::new(config());
                let deleted = bus.delete_topology(&queue).await.map_err(|e| e.to_string());
                bus.close().await;
                deleted
            })
        })
        .join();
        if let Ok(Err(e)) = deleted {
            eprintln!("could not delete the test queues of {}: {e}", self.queue);
        }
    }
}

/// A queue name of the test's own (`prefix` and a random part), and what deletes its queues.
fn test_queue(prefix: &str) -> (String, Cleanup) {
    let queue = unique(prefix);
    let cleanup = Cleanup::new(&queue);
    (queue, cleanup)
}

/// A bus with `config` and a consumer of `queue` on it.
fn bus_and_consumer(queue: &str, config: AmqpConfig) -> (AmqpBus, AmqpConsumer) {
    let bus = AmqpBus::new(config);
    let consumer = bus.consumer(queue);
    (bus, consumer)
}

/// A consumer that deletes the test's queues once it and its sibling are gone.
struct Tidy {
    consumer: AmqpConsumer,
    _cleanup: Arc<Cleanup>,
}

#[async_trait::async_trait]
impl BusConsumer for Tidy {
    async fn next(&self) -> StoreResult<Option<Delivery>> {
        self.consumer.next().await
    }
}

fn bus() -> BusPorts {
    let queue = unique("flash-test-contract-");
    let bus = AmqpBus::new(config().with_max_attempts(3));
    let cleanup = Arc::new(Cleanup::new(&queue));
    BusPorts {
        consumer: Arc::new(Tidy {
            consumer: bus.consumer(&queue),
            _cleanup: Arc::clone(&cleanup),
        }),
        dead_letters: Arc::new(Tidy {
            consumer: bus.consumer(&dlq_name(&queue)),
            _cleanup: cleanup,
        }),
        max_attempts: bus.config().max_attempts,
        queue,
        bus: Arc::new(bus),
    }
}

flash_testkit::bus_contracts!(bus());

/// Like a host's consumer loop: receive errors (a lost connection) are retried until `deadline`.
async fn next_surviving_errors(
    consumer: &dyn BusConsumer,
    what: &str,
    limit: Duration,
) -> Delivery {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Ok(Some(d))) => return d,
            Ok(Ok(None)) => panic!("{what}: consumer shut down"),
            Ok(Err(_lost)) => {}
            Err(_) => panic!("{what}: nothing within {limit:?}"),
        }
    }
}

/// A raw connection for looking at what the adapter hides (headers in a dead-letter queue).
async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    let handle = tokio::runtime::Handle::current();
    let properties = lapin::ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::default().with_handle(handle.clone()))
        .with_reactor(tokio_reactor_trait::Tokio::default().with_handle(handle));
    let connection = lapin::Connection::connect(&url(), properties)
        .await
        .expect("raw connection to RabbitMQ");
    let channel = connection.create_channel().await.expect("raw channel");
    (connection, channel)
}

/// The message in `queue`'s dead-letter queue, checked for the reason and attempt count the
/// adapter stamps on it, and the raw connection it was read on.
async fn dead_letter(
    queue: &str,
    reason: &str,
    attempts: u32,
) -> (lapin::Connection, lapin::message::BasicGetMessage) {
    let (connection, channel) = raw_channel().await;
    let dead = channel
        .basic_get(&dlq_name(queue), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no message in the dead-letter queue of {queue}"));
    assert_eq!(text(header(&dead, DEAD_LETTER_REASON_HEADER)), reason);
    assert_eq!(
        header(&dead, DEAD_LETTER_ATTEMPTS_HEADER),
        Some(&AMQPValue::LongUInt(attempts))
    );
    (connection, dead)
}

fn header<'a>(message: &'a lapin::message::BasicGetMessage, name: &str) -> Option<&'a AMQPValue> {
    message
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

fn text(value: Option<&AMQPValue>) -> String {
    match value {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected a text header, got {other:?}"),
    }
}

/// A TCP proxy in front of the broker whose connections a test can cut, and which can refuse new
/// ones: a broker outage as the client sees it, without touching the shared broker.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start() -> Proxy {
        let uri = lapin::uri::AMQPUri::from_str(&url()).expect("RABBITMQ_URL");
        let upstream: SocketAddr =
            tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
                .await
                .expect("broker address")
                .next()
                .expect("broker address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, links) = (Arc::clone(&up), Arc::clone(&links));
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Refused: closed before the AMQP handshake.
                        drop(client);
                        continue;
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        })
        .abort_handle();
        Proxy {
            port,
            up,
            links,
            accept,
        }
    }

    /// The broker's URL through this proxy.
    fn url(&self) -> String {
        let uri = lapin::uri::AMQPUri::from_str(&url()).expect("RABBITMQ_URL");
        let user = &uri.authority.userinfo;
        format!(
            "amqp://{}:{}@127.0.0.1:{}/{}",
            user.username,
            user.password,
            self.port,
            uri.vhost.replace('%', "%25").replace('/', "%2f")
        )
    }

    /// Closes every proxied connection, as a broker restart or a network failure would.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut();
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_confirmed_publishes_are_each_consumed_exactly_once() {
    let (queue, _cleanup) = test_queue("flash-test-load-");
    let bus = AmqpBus::new(config().with_prefetch(100));
    bus.connect().await.unwrap();
    // The first publish declares the topology; keep it out of the measurement.
    bus.publish(&queue, envelope("warm-up")).await.unwrap();

    let serial = 50;
    let started = Instant::now();
    for i in 0..serial {
        bus.publish(&queue, envelope(&format!("serial-{i}")))
            .await
            .unwrap();
    }
    let serial_rate = f64::from(serial) / started.elapsed().as_secs_f64();

    let n = 1000u32;
    let ids: Vec<String> = (0..n).map(|i| format!("m-{i}")).collect();
    let started = Instant::now();
    let results =
        futures::future::join_all(ids.iter().map(|id| bus.publish(&queue, envelope(id)))).await;
    let elapsed = started.elapsed();
    for r in &results {
        r.as_ref().expect("every publish confirmed");
    }
    let pipelined_rate = f64::from(n) / elapsed.as_secs_f64();
    eprintln!(
        "{n} pipelined publishes with confirms in {elapsed:?}: {pipelined_rate:.0} msg/s \
         (one at a time: {serial_rate:.0} msg/s)"
    );
    assert!(
        pipelined_rate > serial_rate,
        "publishes are not pipelined: {pipelined_rate:.0} msg/s concurrently vs {serial_rate:.0} msg/s one at a time"
    );
    let total = u64::from(n + serial + 1);
    assert_eq!(bus.counters().confirmed, total);

    let consumer = bus.consumer(&queue);
    let mut seen = HashSet::new();
    while seen.len() < usize::try_from(total).unwrap() {
        let d = next(&consumer, "a published message").await;
        assert_eq!(d.attempt, 1);
        assert!(
            seen.insert(d.envelope.message_id.clone()),
            "{} delivered twice",
            d.envelope.message_id
        );
        d.acker.settle(Disposition::Ack).await.unwrap();
    }
    assert!(ids.iter().all(|id| seen.contains(id)));
    nothing_more(&consumer, "after every message was acked").await;
    assert_eq!(bus.queue_len(&queue).await.unwrap(), 0);
    let counters = bus.counters();
    assert_eq!((counters.consumed, counters.acked), (total, total));
    assert_eq!(counters.publish_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_many_frames_long_arrives_whole() {
    // The adapter asks for 8 KiB frames (DEFAULT_FRAME_MAX): a larger body is split on the way
    // and joined again on delivery.
    let (queue, _cleanup) = test_queue("flash-test-frames-");
    let (bus, consumer) = bus_and_consumer(&queue, config());
    let frames = 12;
    let body: Vec<u8> = (0..DEFAULT_FRAME_MAX as usize * frames)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut big = envelope("big");
    big.body = body.clone();
    bus.publish(&queue, big).await.unwrap();
    let d = next(&consumer, "the many-frame message").await;
    assert_eq!(d.envelope.message_id, "big");
    assert_eq!(d.envelope.body.len(), body.len());
    assert!(d.envelope.body == body, "the body came back changed");
    d.acker.settle(Disposition::Ack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_keep_flowing() {
    let (queue, _cleanup) = test_queue("flash-test-poison-");
    let (bus, consumer) = bus_and_consumer(&queue, config());

    bus.publish(&queue, envelope("poison")).await.unwrap();
    for i in 0..20 {
        bus.publish(&queue, envelope(&format!("good-{i}")))
            .await
            .unwrap();
    }
    let mut acked = HashSet::new();
    while acked.len() < 20 {
        let d = next(&consumer, "the next message").await;
        if d.envelope.message_id == "poison" {
            d.acker
                .settle(Disposition::DeadLetter {
                    reason: "malformed JSON at byte 0".into(),
                })
                .await
                .unwrap();
            assert!(
                d.acker.settle(Disposition::Ack).await.is_err(),
                "a delivery is settled once"
            );
        } else {
            d.acker.settle(Disposition::Ack).await.unwrap();
            acked.insert(d.envelope.message_id);
        }
    }
    nothing_more(&consumer, "the poison message is not redelivered").await;
    assert_eq!(bus.dlq_len(&queue).await.unwrap(), 1);
    let c = bus.counters();
    assert_eq!((c.acked, c.dead_lettered, c.retried), (20, 1, 0));

    let (connection, dead) = dead_letter(&queue, "malformed JSON at byte 0", 1).await;
    let props = &dead.delivery.properties;
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("poison")
    );
    assert_eq!(
        props.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr-poison")
    );
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        *props.delivery_mode(),
        Some(2),
        "dead letters stay persistent"
    );
    assert_eq!(dead.delivery.data, envelope("poison").body);
    let _ = connection.close(200, "done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_message_comes_back_with_the_next_attempt_and_is_dead_lettered_after_the_last() {
    let (queue, _cleanup) = test_queue("flash-test-retry-");
    let (bus, consumer) = bus_and_consumer(&queue, config().with_max_attempts(3));
    let back_off = Duration::from_millis(150);

    bus.publish(&queue, envelope("flaky")).await.unwrap();
    let mut settled_at = None;
    for attempt in 1..=3 {
        let d = next(&consumer, "a delivery of the retried message").await;
        if let Some(at) = settled_at {
            let waited = Instant::now().duration_since(at);
            assert!(
                waited >= back_off,
                "redelivered after {waited:?}, back-off {back_off:?}"
            );
        }
        assert_eq!(d.envelope, envelope("flaky"), "the message is unchanged");
        assert_eq!(d.attempt, attempt);
        retry(&d, back_off).await;
        settled_at = Some(Instant::now());
    }
    nothing_more(&consumer, "no fourth attempt").await;
    let c = bus.counters();
    assert_eq!((c.retried, c.dead_lettered), (2, 1));

    let (connection, dead) = dead_letter(&queue, "still failing after 3 attempts", 3).await;
    assert_eq!(
        header(&dead, ATTEMPT_HEADER),
        None,
        "a re-driven dead letter starts again"
    );
    assert_eq!(
        header(&dead, "x-death"),
        None,
        "broker bookkeeping is not copied"
    );
    assert_eq!(dead.delivery.data, envelope("flaky").body);
    // Only the retry bucket of the back-off was used, and it is empty again.
    let bucket = retry_bucket(back_off).unwrap();
    assert_eq!(bucket, 256);
    assert_eq!(
        bus.queue_len(&retry_queue_name(&queue, bucket))
            .await
            .unwrap(),
        0
    );
    let _ = connection.close(200, "done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_of_different_delays_do_not_wait_for_each_other() {
    let (queue, _cleanup) = test_queue("flash-test-buckets-");
    let (bus, consumer) = bus_and_consumer(&queue, config());
    bus.publish(&queue, envelope("slow")).await.unwrap();
    bus.publish(&queue, envelope("fast")).await.unwrap();

    let first = next(&consumer, "slow").await;
    let second = next(&consumer, "fast").await;
    assert_eq!(first.envelope.message_id, "slow");
    let started = Instant::now();
    retry(&first, Duration::from_secs(20)).await;
    retry(&second, Duration::from_millis(50)).await;
    let again = next(&consumer, "the short retry").await;
    assert_eq!(again.envelope.message_id, "fast");
    assert_eq!(again.attempt, 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held behind the long retry"
    );
    again.acker.settle(Disposition::Ack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_whose_connection_is_cut_resumes_by_itself_and_gets_its_unacked_message_back() {
    let (queue, _cleanup) = test_queue("flash-test-cut-");
    let proxy = Proxy::start().await;
    let bus = AmqpBus::new(config());
    let consumer = AmqpConsumer::new(AmqpConfig::new(proxy.url()), &queue);

    bus.publish(&queue, envelope("in-flight")).await.unwrap();
    let held = next(&consumer, "the first delivery").await;
    assert_eq!(held.envelope.message_id, "in-flight");

    proxy.cut();
    // Settling on the dead connection cannot succeed; the broker got no ack either way.
    let _ = held.acker.settle(Disposition::Ack).await;

    let again = next_surviving_errors(&consumer, "the redelivery", Duration::from_secs(20)).await;
    assert_eq!(
        again.envelope.message_id, "in-flight",
        "unacked work comes back"
    );
    again.acker.settle(Disposition::Ack).await.unwrap();

    bus.publish(&queue, envelope("after")).await.unwrap();
    let after = next_surviving_errors(&consumer, "a later message", Duration::from_secs(20)).await;
    assert_eq!(after.envelope.message_id, "after");
    after.acker.settle(Disposition::Ack).await.unwrap();
    assert!(
        consumer.counters().connections >= 2,
        "{:?}",
        consumer.counters()
    );
    nothing_more(&consumer, "after both were acked").await;
}

/// The broker itself closes the consumer's connection (`rabbitmqctl close_connection`, aimed at
/// this test's connection only), as an operator or a node shutdown would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_resumes_after_the_broker_force_closes_its_connection() {
    let local = lapin::uri::AMQPUri::from_str(&url())
        .map(|u| matches!(u.authority.host.as_str(), "127.0.0.1" | "localhost"))
        .unwrap_or(false);
    let rabbitmqctl = std::process::Command::new("rabbitmqctl")
        .arg("--help")
        .output()
        .is_ok();
    if !local || !rabbitmqctl {
        eprintln!("skipped: needs rabbitmqctl for the local broker (the proxy test covers a cut)");
        return;
    }
    let (queue, _cleanup) = test_queue("flash-test-forced-");
    let (bus, consumer) = bus_and_consumer(&queue, config());
    bus.publish(&queue, envelope("before")).await.unwrap();
    let before = next(&consumer, "the first delivery").await;
    before.acker.settle(Disposition::Ack).await.unwrap();

    let connection_name = format!("flash-consumer {queue}");
    let closed = tokio::task::spawn_blocking(move || {
        let listing = std::process::Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "client_properties",
            ])
            .output()
            .expect("rabbitmqctl list_connections");
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        let Some(pid) = listing
            .lines()
            .find(|line| line.contains(&connection_name))
            .and_then(|line| line.split('\t').next())
        else {
            return Err(format!(
                "no connection named {connection_name:?} in:\n{listing}"
            ));
        };
        let out = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "forced by a test"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "close_connection {pid:?}: {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
    .await
    .unwrap();
    closed.unwrap();

    bus.publish(&queue, envelope("after")).await.unwrap();
    let after = next_surviving_errors(
        &consumer,
        "a message after the close",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(after.envelope.message_id, "after");
    after.acker.settle(Disposition::Ack).await.unwrap();
    assert!(
        bus.counters().connections >= 3,
        "publisher + two consumer connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_during_an_outage_fails_within_its_timeout_and_the_next_after_recovery_succeeds()
{
    let (queue, _cleanup) = test_queue("flash-test-outage-");
    let proxy = Proxy::start().await;
    let timeout = Duration::from_secs(3);
    let bus = AmqpBus::new(AmqpConfig::new(proxy.url()).with_publish_timeout(timeout));
    bus.publish(&queue, envelope("before")).await.unwrap();
    assert!(bus.is_connected());

    proxy.down();
    let started = Instant::now();
    let failed = bus.publish(&queue, envelope("during")).await;
    let waited = started.elapsed();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(
        waited <= timeout + Duration::from_secs(1),
        "waited {waited:?}"
    );
    assert!(!bus.is_connected());
    let health = bus.health();
    assert!(flash_core::ports::HealthCheck::ping(&health).await.is_err());

    proxy.up();
    bus.publish(&queue, envelope("after")).await.unwrap();
    flash_core::ports::HealthCheck::ping(&health).await.unwrap();
    let c = bus.counters();
    assert_eq!((c.confirmed, c.publish_failed), (2, 1));
    assert!(c.connections >= 2);

    let direct = AmqpBus::new(config());
    assert_eq!(direct.queue_len(&queue).await.unwrap(), 2);
    let consumer = direct.consumer(&queue);
    for id in ["before", "after"] {
        let d = next(&consumer, id).await;
        assert_eq!(d.envelope.message_id, id);
        d.acker.settle(Disposition::Ack).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_next_or_a_dropped_delivery_loses_nothing() {
    let (queue, _cleanup) = test_queue("flash-test-cancel-");
    let (bus, consumer) = bus_and_consumer(&queue, config());

    // Cancelled while waiting (a host shutting down drops a pending `next`).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), consumer.next())
            .await
            .is_err()
    );
    bus.publish(&queue, envelope("m")).await.unwrap();
    let d = next(&consumer, "the message after a cancelled wait").await;
    assert_eq!(d.envelope.message_id, "m");

    // Dropped unsettled (a handler task aborted): handed back to the broker at once.
    drop(d);
    let again = next(&consumer, "the dropped delivery").await;
    assert_eq!(again.envelope.message_id, "m");
    again.acker.settle(Disposition::Ack).await.unwrap();
    nothing_more(&consumer, "after the ack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_a_pending_next() {
    let (queue, _cleanup) = test_queue("flash-test-idle-");
    let consumer = AmqpConsumer::new(config(), &queue);
    let waiting = tokio::spawn({
        let consumer = consumer.clone();
        async move { consumer.next().await.map(|d| d.is_some()) }
    });
    tokio::time::sleep(QUIET).await;
    assert!(
        !waiting.is_finished(),
        "an empty queue has nothing to deliver"
    );
    consumer.shutdown().await;
    let ended = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Ok(false), "next returns None after shutdown");
    assert!(matches!(consumer.next().await, Ok(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_shutdown_in_flight_deliveries_settle_and_buffered_ones_go_back() {
    let (queue, _cleanup) = test_queue("flash-test-shutdown-");
    let bus = AmqpBus::new(config().with_prefetch(10));
    for i in 0..5 {
        bus.publish(&queue, envelope(&format!("m-{i}")))
            .await
            .unwrap();
    }
    let consumer = bus.consumer(&queue);
    let held = next(&consumer, "the first message").await;
    // The prefetch lets the broker push the four others into the client's buffer.
    tokio::time::sleep(QUIET).await;
    consumer.shutdown().await;
    assert!(
        matches!(consumer.next().await, Ok(None)),
        "nothing handed out after shutdown"
    );

    held.acker.settle(Disposition::Ack).await.unwrap();
    let held_id = held.envelope.message_id.clone();
    drop(held);
    let fresh = bus.consumer(&queue);
    let mut back = HashSet::new();
    while back.len() < 4 {
        let d = next(&fresh, "a message handed back").await;
        assert_ne!(
            d.envelope.message_id, held_id,
            "the acknowledged one is gone"
        );
        back.insert(d.envelope.message_id.clone());
        d.acker.settle(Disposition::Ack).await.unwrap();
    }
    nothing_more(&fresh, "after all five").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_health_check_is_named_bus_and_answers() {
    let bus = AmqpBus::new(config());
    flash_testkit::basics::health_ping_answers_under_a_short_name(
        Arc::new(bus.health()),
        flash_testkit::T0,
    )
    .await;
    assert!(bus.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_legacy_queue_is_used_as_it_is() {
    // Declared the way the legacy services did (durable, no arguments), and holding a message.
    let (queue, _cleanup) = test_queue("flash-test-legacy-");
    let (connection, channel) = raw_channel().await;
    channel
        .queue_declare(
            &queue,
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_publish(
            "",
            &queue,
            Default::default(),
            br#"{"requestId":"legacy"}"#,
            lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id("legacy".into())
                .with_correlation_id("legacy".into()),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "done").await;

    let bus = AmqpBus::new(config());
    bus.publish(&queue, envelope("new")).await.unwrap();
    let consumer = bus.consumer(&queue);
    for id in ["legacy", "new"] {
        let d = next(&consumer, id).await;
        assert_eq!(d.envelope.message_id, id);
        assert_eq!(
            d.attempt, 1,
            "a message without the attempt header is a first attempt"
        );
        d.acker.settle(Disposition::Ack).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_bus_refuses_at_once() {
    let bus = AmqpBus::new(config());
    bus.connect().await.unwrap();
    bus.close().await;
    let started = Instant::now();
    let refused = bus
        .publish(&unique("flash-test-closed-"), envelope("m"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(
        flash_core::ports::HealthCheck::ping(&bus.health())
            .await
            .is_err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting for a bus that is gone"
    );
}
