//! Publishing, queue resolution and settling of received messages.

use crate::config::{DLQ_SUFFIX, SqsConfig, dlq_name, validate_queue_name};
use crate::{
    CORRELATION_ID_ATTRIBUTE, ConfigError, DEAD_LETTER_REASON_ATTRIBUTE, MESSAGE_ID_ATTRIBUTE,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Bus, Disposition, HealthCheck, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a `Retry` became a dead letter.
pub const ATTEMPT_LIMIT_REASON: &str = "out of attempts";

/// SQS's cap on a visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 43_200;
/// SQS's cap on the entries of one `SendMessageBatch`.
const BATCH: usize = 10;

/// The bus on SQS. Cheap to clone; clones share the client and the queue-URL cache.
#[derive(Clone)]
pub struct SqsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: SqsConfig,
    /// Queue name → URL.
    urls: Mutex<HashMap<String, String>>,
    /// Queue name → URL of its dead-letter queue.
    dlqs: Mutex<HashMap<String, String>>,
}

/// A message taken from a queue, by a consumer or handed to a Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The queue's name (not its URL).
    pub queue: String,
    pub receipt_handle: String,
    pub envelope: Envelope,
    /// `ApproximateReceiveCount`: 1 for the first delivery.
    pub attempt: u32,
}

impl Received {
    /// Rebuilds the envelope of a received message: the legacy ids come from the message
    /// attributes, falling back to SQS's own `MessageId` for messages sent without them.
    pub fn envelope(
        sqs_message_id: &str,
        body: &str,
        attribute: impl Fn(&str) -> Option<String>,
    ) -> Envelope {
        let message_id =
            attribute(MESSAGE_ID_ATTRIBUTE).unwrap_or_else(|| sqs_message_id.to_owned());
        let correlation_id = attribute(CORRELATION_ID_ATTRIBUTE).unwrap_or(message_id.clone());
        Envelope {
            message_id,
            correlation_id,
            body: body.as_bytes().to_vec(),
        }
    }

    /// A received message from its parts as SQS hands them out (a `ReceiveMessage` answer or a
    /// Lambda event record): `attribute` reads a String message attribute, `receive_count` is
    /// `ApproximateReceiveCount`.
    pub fn from_parts(
        queue: &str,
        sqs_message_id: &str,
        receipt_handle: String,
        body: &str,
        attribute: impl Fn(&str) -> Option<String>,
        receive_count: Option<&str>,
    ) -> Received {
        Received {
            queue: queue.to_owned(),
            receipt_handle,
            envelope: Received::envelope(sqs_message_id, body, attribute),
            attempt: Received::attempt_from(receive_count),
        }
    }

    /// `ApproximateReceiveCount` as an attempt number (1 when missing or unreadable).
    pub fn attempt_from(receive_count: Option<&str>) -> u32 {
        receive_count
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1)
    }
}

/// What remains to do with a settled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Finished (handled, or copied to the dead-letter queue): delete it from its queue. A
    /// Lambda function reports it as a success and Lambda deletes it.
    Done,
    /// Leave it: SQS delivers it again once its visibility timeout, set to the back-off, ends.
    /// A Lambda function reports it in `batchItemFailures`.
    Redeliver,
}

/// Throttling and server faults are worth retrying; a missing queue or a refused request is not.
fn store_error<E>(what: &str) -> impl Fn(SdkError<E>) -> StoreError + '_
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |err| {
        let text = format!("sqs {what}: {}", DisplayErrorContext(&err));
        match &err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or_default();
                if status >= 500 || code.contains("Throttl") || code.contains("RequestThrottled") {
                    StoreError::Unavailable(text)
                } else {
                    StoreError::Internal(text)
                }
            }
            _ => StoreError::Unavailable(text),
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

fn attributes(envelope: &Envelope, reason: Option<&str>) -> HashMap<String, MessageAttributeValue> {
    let mut map = HashMap::from([
        (
            MESSAGE_ID_ATTRIBUTE.to_owned(),
            string_attribute(&envelope.message_id),
        ),
        (
            CORRELATION_ID_ATTRIBUTE.to_owned(),
            string_attribute(&envelope.correlation_id),
        ),
    ]);
    if let Some(reason) = reason {
        // SQS refuses empty attribute values.
        let reason = if reason.is_empty() { "-" } else { reason };
        map.insert(
            DEAD_LETTER_REASON_ATTRIBUTE.to_owned(),
            string_attribute(reason),
        );
    }
    map
}

fn body_text(envelope: &Envelope) -> StoreResult<String> {
    String::from_utf8(envelope.body.clone()).map_err(|_| {
        StoreError::Internal(format!(
            "message {} is not UTF-8 text, which SQS requires",
            envelope.message_id
        ))
    })
}

/// A back-off as a visibility timeout: whole seconds, rounded up (never early).
fn visibility_secs(after: Duration) -> i32 {
    let secs = after.as_millis().div_ceil(1000) as u64;
    secs.min(MAX_VISIBILITY_SECS) as i32
}

fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl SqsBus {
    /// The bus with credentials and region from the AWS environment (the Lambda role,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`…), and the endpoint override of `config`.
    pub async fn from_env(config: SqsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .load()
            .await;
        let mut builder = aws_sdk_sqs::config::Builder::from(&shared);
        if let Some(url) = &config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Ok(Self::with_client(
            Client::from_conf(builder.build()),
            config,
        ))
    }

    /// The bus on a local SQS (moto, ElasticMQ) at `config.endpoint_url`, with fixed test
    /// credentials and region `us-east-1`. Never for AWS.
    pub fn local(config: SqsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let endpoint = config.endpoint_url.clone().ok_or(ConfigError {
            variable: "SQS_ENDPOINT_URL",
            reason: "a local SQS needs an endpoint".into(),
        })?;
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "flash-local"))
            .endpoint_url(endpoint)
            .http_client(https_client())
            .build();
        Ok(Self::with_client(Client::from_conf(conf), config))
    }

    fn with_client(client: Client, config: SqsConfig) -> Self {
        SqsBus {
            inner: Arc::new(Inner {
                client,
                config,
                urls: Mutex::new(HashMap::new()),
                dlqs: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &SqsConfig {
        &self.inner.config
    }

    /// The SDK client (for tools and tests that drive SQS directly, such as an event source
    /// mapping emulator).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A health check that looks `queue` up on every ping.
    pub fn health(&self, queue: impl Into<String>) -> SqsHealth {
        SqsHealth {
            bus: self.clone(),
            queue: queue.into(),
        }
    }

    /// Creates `queue` and `<queue>-dlq` with a redrive policy of `max_attempts` receives, or
    /// brings an existing queue's redrive policy and visibility timeout in line. Idempotent.
    pub async fn declare(&self, queue: &str) -> StoreResult<()> {
        validate_queue_name(queue).map_err(StoreError::Internal)?;
        let client = self.client();
        let dlq_url = self.create_plain(&dlq_name(queue)).await?;
        let dlq_arn = self.queue_arn(&dlq_url).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": self.inner.config.max_attempts.to_string(),
        })
        .to_string();
        let visibility = self.inner.config.visibility_timeout.as_secs().to_string();
        let created = client
            .create_queue()
            .queue_name(queue)
            .attributes(QueueAttributeName::RedrivePolicy, &redrive)
            .attributes(QueueAttributeName::VisibilityTimeout, &visibility)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // It exists with other attributes: update them.
            Err(e) if e.code() == Some("QueueAlreadyExists") => {
                let url = self.lookup(queue).await?;
                client
                    .set_queue_attributes()
                    .queue_url(url)
                    .attributes(QueueAttributeName::RedrivePolicy, redrive)
                    .attributes(QueueAttributeName::VisibilityTimeout, visibility)
                    .send()
                    .await
                    .map_err(store_error("set queue attributes"))?;
            }
            Err(e) => return Err(store_error("create queue")(e)),
        }
        self.inner
            .dlqs
            .lock()
            .expect("dlq cache")
            .insert(queue.to_owned(), dlq_url);
        Ok(())
    }

    /// Creates a queue without a redrive policy (a dead-letter queue), keeping messages for
    /// SQS's maximum of 14 days.
    async fn create_plain(&self, queue: &str) -> StoreResult<String> {
        self.client()
            .create_queue()
            .queue_name(queue)
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(store_error("create dead-letter queue"))?
            .queue_url
            .ok_or_else(|| StoreError::Internal("sqs create queue: no URL".into()))
    }

    async fn queue_arn(&self, url: &str) -> StoreResult<String> {
        let out = self
            .client()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(store_error("get queue ARN"))?;
        out.attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| StoreError::Internal(format!("sqs queue {url} has no ARN")))
    }

    /// `GetQueueUrl`, uncached.
    async fn lookup(&self, queue: &str) -> StoreResult<String> {
        let out = self
            .client()
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("AWS.SimpleQueueService.NonExistentQueue")
                    || e.code() == Some("QueueDoesNotExist")
                {
                    StoreError::Internal(format!("sqs queue '{queue}' does not exist"))
                } else {
                    store_error("get queue URL")(e)
                }
            })?;
        out.queue_url
            .ok_or_else(|| StoreError::Internal(format!("sqs queue '{queue}' has no URL")))
    }

    /// The URL of `queue`, cached; created first when [`SqsConfig::create_queues`] is set.
    pub async fn queue_url(&self, queue: &str) -> StoreResult<String> {
        if let Some(url) = self.inner.urls.lock().expect("url cache").get(queue) {
            return Ok(url.clone());
        }
        validate_queue_name(queue).map_err(StoreError::Internal)?;
        if self.inner.config.create_queues {
            if queue.ends_with(DLQ_SUFFIX) {
                // A dead-letter queue has no dead-letter queue of its own: a redriven message
                // arrives with its receive count spent and would be moved on at once.
                self.create_plain(queue).await?;
            } else {
                self.declare(queue).await?;
            }
        }
        let url = self.lookup(queue).await?;
        self.inner
            .urls
            .lock()
            .expect("url cache")
            .insert(queue.to_owned(), url.clone());
        Ok(url)
    }

    /// The URL of `queue`'s dead-letter queue, from its `RedrivePolicy`.
    pub async fn dead_letter_url(&self, queue: &str) -> StoreResult<String> {
        if let Some(url) = self.inner.dlqs.lock().expect("dlq cache").get(queue) {
            return Ok(url.clone());
        }
        let url = self.queue_url(queue).await?;
        let out = self
            .client()
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(store_error("get redrive policy"))?;
        let policy = out
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
            .ok_or_else(|| {
                StoreError::Internal(format!(
                    "sqs queue '{queue}' has no RedrivePolicy: no dead-letter queue to use"
                ))
            })?;
        let target = serde_json::from_str::<serde_json::Value>(&policy)
            .ok()
            .and_then(|v| v["deadLetterTargetArn"].as_str().map(str::to_owned))
            .and_then(|arn| crate::queue_name_from_arn(&arn).map(str::to_owned))
            .ok_or_else(|| {
                StoreError::Internal(format!("sqs queue '{queue}': unreadable RedrivePolicy"))
            })?;
        let dlq_url = self.lookup(&target).await?;
        self.inner
            .dlqs
            .lock()
            .expect("dlq cache")
            .insert(queue.to_owned(), dlq_url.clone());
        Ok(dlq_url)
    }

    /// Applies a handler's disposition to a received message. `Ack` needs nothing more than
    /// the deletion; `Retry` sets the back-off as its visibility timeout, or dead-letters it once
    /// its attempts are spent; `DeadLetter` copies it to the dead-letter queue.
    pub async fn settle(&self, r: &Received, disposition: Disposition) -> StoreResult<Settled> {
        match disposition {
            Disposition::Ack => Ok(Settled::Done),
            Disposition::Retry { .. } if r.attempt >= self.inner.config.max_attempts => {
                self.dead_letter(r, ATTEMPT_LIMIT_REASON).await?;
                Ok(Settled::Done)
            }
            Disposition::Retry { after } => {
                let url = self.queue_url(&r.queue).await?;
                self.client()
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(&r.receipt_handle)
                    .visibility_timeout(visibility_secs(after))
                    .send()
                    .await
                    .map_err(store_error("change message visibility"))?;
                Ok(Settled::Redeliver)
            }
            Disposition::DeadLetter { reason } => {
                self.dead_letter(r, &reason).await?;
                Ok(Settled::Done)
            }
        }
    }

    async fn dead_letter(&self, r: &Received, reason: &str) -> StoreResult<()> {
        let url = self.dead_letter_url(&r.queue).await?;
        tracing::warn!(queue = %r.queue, message_id = %r.envelope.message_id, attempt = r.attempt, reason, "dead-lettering");
        self.client()
            .send_message()
            .queue_url(url)
            .message_body(body_text(&r.envelope)?)
            .set_message_attributes(Some(attributes(&r.envelope, Some(reason))))
            .send()
            .await
            .map_err(store_error("send to dead-letter queue"))?;
        Ok(())
    }

    /// Deletes a received message (a consumer's acknowledgement).
    pub async fn delete(&self, r: &Received) -> StoreResult<()> {
        let url = self.queue_url(&r.queue).await?;
        self.client()
            .delete_message()
            .queue_url(url)
            .receipt_handle(&r.receipt_handle)
            .send()
            .await
            .map_err(store_error("delete message"))?;
        Ok(())
    }

    async fn send_chunk(&self, url: &str, chunk: &[Envelope]) -> Vec<StoreResult<()>> {
        let mut entries = Vec::with_capacity(chunk.len());
        let mut results: Vec<Option<StoreResult<()>>> = vec![None; chunk.len()];
        for (i, envelope) in chunk.iter().enumerate() {
            match body_text(envelope).and_then(|body| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .set_message_attributes(Some(attributes(envelope, None)))
                    .build()
                    .map_err(|e| StoreError::Internal(format!("sqs batch entry: {e}")))
            }) {
                Ok(entry) => entries.push(entry),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !entries.is_empty() {
            match self
                .client()
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for ok in out.successful() {
                        if let Ok(i) = ok.id().parse::<usize>() {
                            results[i] = Some(Ok(()));
                        }
                    }
                    for failed in out.failed() {
                        if let Ok(i) = failed.id().parse::<usize>() {
                            let text = format!(
                                "sqs send: {} ({})",
                                failed.message().unwrap_or("refused"),
                                failed.code()
                            );
                            results[i] = Some(Err(if failed.sender_fault() {
                                StoreError::Internal(text)
                            } else {
                                StoreError::Unavailable(text)
                            }));
                        }
                    }
                }
                Err(e) => {
                    let e = store_error("send batch")(e);
                    for r in results.iter_mut().filter(|r| r.is_none()) {
                        *r = Some(Err(e.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Unavailable(
                        "sqs send batch: no answer for an entry".into(),
                    ))
                })
            })
            .collect()
    }
}

#[async_trait]
impl Bus for SqsBus {
    async fn publish(&self, queue: &str, envelope: Envelope) -> StoreResult<()> {
        let url = self.queue_url(queue).await?;
        self.client()
            .send_message()
            .queue_url(url)
            .message_body(body_text(&envelope)?)
            .set_message_attributes(Some(attributes(&envelope, None)))
            .send()
            .await
            .map_err(store_error("send"))?;
        Ok(())
    }

    /// `SendMessageBatch` calls of up to ten messages, sent concurrently.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Vec<StoreResult<()>> {
        let url = match self.queue_url(queue).await {
            Ok(url) => url,
            Err(e) => return envelopes.iter().map(|_| Err(e.clone())).collect(),
        };
        let chunks = envelopes.chunks(BATCH).map(|c| self.send_chunk(&url, c));
        futures::future::join_all(chunks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Reachability of SQS: looks the request queue up.
#[derive(Clone)]
pub struct SqsHealth {
    bus: SqsBus,
    queue: String,
}

#[async_trait]
impl HealthCheck for SqsHealth {
    fn name(&self) -> &'static str {
        "bus"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.bus.lookup(&self.queue).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_rounds_up_to_whole_seconds_within_the_cap() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(10)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1000)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1001)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(86_400)), 43_200);
    }

    #[test]
    fn envelope_keeps_the_legacy_ids_from_attributes() {
        let attrs = |name: &str| match name {
            "messageId" => Some("req-1".to_owned()),
            "correlationId" => Some("req-1".to_owned()),
            _ => None,
        };
        let e = Received::envelope("sqs-id", "{}", attrs);
        assert_eq!(e.message_id, "req-1");
        assert_eq!(e.correlation_id, "req-1");
        let bare = Received::envelope("sqs-id", "{}", |_| None);
        assert_eq!(bare.message_id, "sqs-id");
        assert_eq!(bare.correlation_id, "sqs-id");
        assert_eq!(Received::attempt_from(Some("3")), 3);
        assert_eq!(Received::attempt_from(Some("x")), 1);
        assert_eq!(Received::attempt_from(None), 1);
    }
}
