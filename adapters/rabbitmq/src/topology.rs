//! Queue names, headers and declarations.

use crate::connection::{is_not_found, is_precondition_failed, store_error};
use flash_core::StoreError;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, Queue};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;
use tracing::warn;

/// Delivery attempt of a message (1 when absent), incremented on every retry.
pub const ATTEMPT_HEADER: &str = "x-flash-attempt";
/// Why a message was dead-lettered (the handler's reason, or the attempt limit).
pub const DEAD_LETTER_REASON_HEADER: &str = "x-flash-dead-letter-reason";
/// The attempt at which a message was dead-lettered. The attempt header itself is dropped so a
/// message moved back from the dead-letter queue starts again at attempt 1.
pub const DEAD_LETTER_ATTEMPTS_HEADER: &str = "x-flash-dead-letter-attempts";

const DLQ_SUFFIX: &str = ".dlq";

/// The largest retry bucket, 2^31 ms (about 24.8 days); longer delays are shortened to it.
const MAX_BUCKET_MS: u32 = 1 << 31;

/// The dead-letter queue of `queue`: `<queue>.dlq`. A dead-letter queue is its own (a dead letter
/// of a dead letter goes back to the end of the same queue rather than to `.dlq.dlq`).
pub fn dlq_name(queue: &str) -> String {
    if is_dead_letter_queue(queue) {
        queue.to_owned()
    } else {
        format!("{queue}{DLQ_SUFFIX}")
    }
}

pub(crate) fn is_dead_letter_queue(queue: &str) -> bool {
    queue.ends_with(DLQ_SUFFIX)
}

/// The delay bucket, in milliseconds, of a retry after `after`: the next power of two, so the
/// delay is never shorter than asked and at most twice as long. `None` for a zero delay, which is
/// redelivered straight away through the main queue.
pub fn retry_bucket(after: Duration) -> Option<u32> {
    if after.is_zero() {
        return None;
    }
    // Rounded up: a sub-millisecond remainder must not make the retry early.
    let ms = after.as_nanos().div_ceil(1_000_000);
    let bucket = match u32::try_from(ms) {
        Ok(ms) if ms <= MAX_BUCKET_MS => ms.next_power_of_two(),
        Ok(_) | Err(_) => MAX_BUCKET_MS,
    };
    Some(bucket)
}

/// Every bucket [`retry_bucket`] can return, shortest first.
pub(crate) fn all_retry_buckets() -> impl Iterator<Item = u32> {
    (0..=MAX_BUCKET_MS.trailing_zeros()).map(|shift| 1u32 << shift)
}

/// The retry queue of `queue` for one delay bucket: `<queue>.retry.<ms>`.
pub fn retry_queue_name(queue: &str, bucket_ms: u32) -> String {
    format!("{queue}.retry.{bucket_ms}")
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares `queue` (durable, no arguments, exactly as the legacy services did) and its
/// dead-letter queue [`dlq_name`] (durable, no arguments). Idempotent. For a dead-letter queue only
/// the queue itself is declared.
///
/// Fails with `PRECONDITION_FAILED` (which closes `channel`) when a queue exists with other
/// arguments; the dead-letter queue is declared first so it exists even then.
pub async fn declare_topology(channel: &Channel, queue: &str) -> lapin::Result<()> {
    if !is_dead_letter_queue(queue) {
        channel
            .queue_declare(&dlq_name(queue), durable(), FieldTable::default())
            .await?;
    }
    channel
        .queue_declare(queue, durable(), FieldTable::default())
        .await?;
    Ok(())
}

/// Declares the retry queue of `queue` for `bucket_ms` (see [`retry_bucket`]): durable, with a
/// queue-level TTL of `bucket_ms` and dead-lettering to the default exchange with routing key
/// `queue`, so each message goes back to `queue` when its delay is over. Returns its name.
pub async fn declare_retry_queue(
    channel: &Channel,
    queue: &str,
    bucket_ms: u32,
) -> lapin::Result<String> {
    let name = retry_queue_name(queue, bucket_ms);
    let arguments: BTreeMap<ShortString, AMQPValue> = [
        ("x-message-ttl", AMQPValue::LongUInt(bucket_ms)),
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(LongString::from("")),
        ),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(LongString::from(queue)),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (ShortString::from(k), v))
    .collect();
    channel
        .queue_declare(&name, durable(), FieldTable::from(arguments))
        .await?;
    Ok(name)
}

/// Checks that `queue` exists without touching its arguments; returns its ready message count.
pub(crate) async fn declare_passive(channel: &Channel, queue: &str) -> lapin::Result<Queue> {
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// What one connection has declared, so that each queue costs one round trip per connection and
/// concurrent first uses wait for a single declaration instead of racing to make their own.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    cells: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
}

impl Declared {
    /// Runs `declare` unless `name` was declared on this connection; a failure is not remembered.
    pub(crate) async fn ensure<F, Fut>(&self, name: &str, declare: F) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let cell = Arc::clone(
            self.cells
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(name.to_owned())
                .or_default(),
        );
        cell.get_or_try_init(declare).await.map(|&()| ())
    }

    /// Forgets `name` (it turned out to be missing: deleted behind our back).
    pub(crate) fn forget(&self, name: &str) {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

async fn channel(connection: &Connection) -> Result<Channel, StoreError> {
    connection
        .create_channel()
        .await
        .map_err(|e| store_error("cannot open a channel", &e))
}

/// Closes a channel used for one declaration. A failure only means it was closed already (an
/// error closes a channel), which is the aim anyway.
async fn close(channel: Channel) {
    if channel.status().connected() {
        let _closed = channel.close(200, "done").await;
    }
}

/// [`declare_topology`] on a channel of its own (a failed declaration closes its channel, which
/// must not be one carrying publishes or deliveries). When a queue exists with other arguments
/// (declared by an operator or an older deployment), it is checked to exist and used as it is.
pub(crate) async fn ensure_topology(
    connection: &Connection,
    queue: &str,
) -> Result<(), StoreError> {
    let ch = channel(connection).await?;
    let declared = declare_topology(&ch, queue).await;
    close(ch).await;
    match declared {
        Ok(()) => Ok(()),
        Err(e) if is_precondition_failed(&e) => {
            let mut names = vec![queue.to_owned()];
            if !is_dead_letter_queue(queue) {
                names.insert(0, dlq_name(queue));
            }
            for name in names {
                let ch = channel(connection).await?;
                let result = ch
                    .queue_declare(&name, durable(), FieldTable::default())
                    .await;
                close(ch).await;
                match result {
                    Ok(_) => {}
                    Err(e) if is_precondition_failed(&e) => {
                        let ch = channel(connection).await?;
                        let exists = declare_passive(&ch, &name).await;
                        close(ch).await;
                        exists.map_err(|e| store_error(&format!("queue {name}"), &e))?;
                        warn!(
                            queue = %name,
                            "queue exists with other arguments than this service declares; using it as it is"
                        );
                    }
                    Err(e) => return Err(store_error(&format!("cannot declare {name}"), &e)),
                }
            }
            Ok(())
        }
        Err(e) => Err(store_error(&format!("cannot declare {queue}"), &e)),
    }
}

/// [`declare_retry_queue`] on a channel of its own.
pub(crate) async fn ensure_retry_queue(
    connection: &Connection,
    queue: &str,
    bucket_ms: u32,
) -> Result<(), StoreError> {
    let ch = channel(connection).await?;
    let declared = declare_retry_queue(&ch, queue, bucket_ms).await;
    close(ch).await;
    declared
        .map(|_name| ())
        .map_err(|e| store_error(&format!("cannot declare the retry queue of {queue}"), &e))
}

/// Ready messages in `queue` (0 when it does not exist); deliveries awaiting an ack not included.
pub(crate) async fn message_count(connection: &Connection, queue: &str) -> Result<u32, StoreError> {
    let ch = channel(connection).await?;
    let result = declare_passive(&ch, queue).await;
    close(ch).await;
    match result {
        Ok(q) => Ok(q.message_count()),
        Err(e) if is_not_found(&e) => Ok(0),
        Err(e) => Err(store_error(&format!("cannot inspect {queue}"), &e)),
    }
}

/// Deletes `queue`, its dead-letter queue and every retry queue of both; returns the number of
/// messages deleted with them. Missing queues are skipped.
pub(crate) async fn delete_topology(
    connection: &Connection,
    queue: &str,
) -> Result<u32, StoreError> {
    let dlq = dlq_name(queue);
    let mut names = vec![queue.to_owned()];
    if dlq != queue {
        names.push(dlq.clone());
    }
    let bases = names.clone();
    for base in &bases {
        names.extend(all_retry_buckets().map(|b| retry_queue_name(base, b)));
    }
    let mut deleted = 0u32;
    let mut ch = channel(connection).await?;
    for name in &names {
        match ch.queue_delete(name, QueueDeleteOptions::default()).await {
            Ok(n) => deleted = deleted.saturating_add(n),
            // Older brokers refuse to delete what does not exist, closing the channel.
            Err(e) if is_not_found(&e) => ch = channel(connection).await?,
            Err(e) => return Err(store_error(&format!("cannot delete {name}"), &e)),
        }
    }
    close(ch).await;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_queue_names() {
        assert_eq!(dlq_name("payments_request"), "payments_request.dlq");
        assert_eq!(dlq_name("payments_request.dlq"), "payments_request.dlq");
        assert_eq!(
            retry_queue_name("payments_result", 256),
            "payments_result.retry.256"
        );
    }

    #[test]
    fn retry_buckets_round_up_to_a_power_of_two_milliseconds() {
        let ms = Duration::from_millis;
        assert_eq!(retry_bucket(Duration::ZERO), None);
        assert_eq!(retry_bucket(Duration::from_nanos(1)), Some(1));
        assert_eq!(retry_bucket(ms(1)), Some(1));
        assert_eq!(retry_bucket(Duration::from_micros(1_001)), Some(2));
        assert_eq!(retry_bucket(ms(5)), Some(8));
        assert_eq!(retry_bucket(ms(200)), Some(256));
        assert_eq!(retry_bucket(ms(256)), Some(256));
        assert_eq!(retry_bucket(ms(257)), Some(512));
        assert_eq!(retry_bucket(ms(30_000)), Some(32_768));
        assert_eq!(
            retry_bucket(Duration::from_secs(86_400 * 365)),
            Some(1 << 31)
        );
        assert_eq!(retry_bucket(Duration::MAX), Some(1 << 31));
    }

    #[test]
    fn a_bucket_is_never_shorter_and_at_most_twice_the_delay() {
        for ms in 1..5_000u64 {
            let after = Duration::from_millis(ms);
            let bucket = u64::from(retry_bucket(after).unwrap_or(0));
            assert!(
                bucket >= ms && bucket < 2 * ms.max(1) + 1,
                "{ms} -> {bucket}"
            );
        }
    }

    #[test]
    fn every_bucket_is_listed() {
        let all: Vec<u32> = all_retry_buckets().collect();
        assert_eq!(all.len(), 32);
        assert_eq!(all.first(), Some(&1));
        assert_eq!(all.last(), Some(&(1 << 31)));
        for ms in [1u64, 3, 200, 999_999, u64::MAX / 2] {
            let b = retry_bucket(Duration::from_millis(ms)).unwrap_or(0);
            assert!(all.contains(&b), "{ms} -> {b} not listed");
        }
    }
}
