//! SQS-triggered functions: each record of a batch goes through one bus message handler (the same
//! ones the pods' consumers use) and is settled on SQS; the records to deliver again are reported
//! in `batchItemFailures`, so one bad record never re-drives the rest of its batch.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use flash_adapter_sqs::{Received, Settled, SqsBus, queue_name_from_arn};
use flash_handlers::Work;
use flash_http::metrics::Metrics;
use flash_runtime::consumers::{Consumer, Consumes};
use flash_runtime::worker::MessageHandler;
use futures::StreamExt;

/// What became of one record.
enum Outcome {
    /// Handled or dead-lettered: Lambda deletes it.
    Done,
    /// To be delivered again: reported by its message id.
    Failed(String),
    /// No message id to report it by (SQS always sends one): the whole batch must fail.
    Unreportable,
}

fn received(record: &SqsMessage) -> Result<Received, String> {
    let queue = record
        .event_source_arn
        .as_deref()
        .and_then(queue_name_from_arn)
        .ok_or("record without an eventSourceARN naming its queue")?;
    let receipt_handle = record
        .receipt_handle
        .clone()
        .ok_or("record without a receiptHandle")?;
    Ok(Received::from_parts(
        queue,
        record.message_id.as_deref().unwrap_or_default(),
        receipt_handle,
        record.body.as_deref().unwrap_or_default(),
        |name| {
            record
                .message_attributes
                .get(name)
                .and_then(|a| a.string_value.clone())
        },
        record
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
    ))
}

async fn one(bus: &SqsBus, handler: &dyn MessageHandler, record: &SqsMessage) -> Outcome {
    let Some(id) = record.message_id.clone() else {
        tracing::error!("SQS record without a messageId: failing the whole batch");
        return Outcome::Unreportable;
    };
    let r = match received(record) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(message_id = %id, error = e, "unusable SQS record");
            return Outcome::Failed(id);
        }
    };
    let disposition = handler.handle(&r.envelope, r.attempt).await;
    match bus.settle(&r, disposition).await {
        Ok(Settled::Done) => Outcome::Done,
        Ok(Settled::Redeliver) => Outcome::Failed(id),
        Err(e) => {
            // Could not dead-letter or delay it: SQS delivers it again after its visibility
            // timeout, and the redrive policy bounds how often.
            tracing::warn!(message_id = %id, error = %e, "could not settle an SQS record");
            Outcome::Failed(id)
        }
    }
}

/// Handles a batch, `concurrency` records at a time, and reports the records to deliver again.
/// A record that cannot be reported (no `messageId`) fails the whole invocation instead, so that
/// Lambda delivers the batch again rather than deleting a record nobody handled.
pub async fn handle_batch(
    bus: &SqsBus,
    handler: &dyn MessageHandler,
    event: &SqsEvent,
    concurrency: usize,
) -> Result<SqsBatchResponse, String> {
    let outcomes: Vec<Outcome> = futures::stream::iter(&event.records)
        .map(|record| one(bus, handler, record))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Failed(id) => {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Outcome::Unreportable => {
                return Err("an SQS record without a messageId cannot be reported".into());
            }
            Outcome::Done => {}
        }
    }
    Ok(response)
}

/// The main of an SQS-triggered function: its configuration and backends for `kind`, then the
/// consumer `consumer` builds from its background work on every batch.
pub async fn serve<H: Consumes>(
    kind: crate::Kind,
    consumer: fn(&Work, Metrics) -> Consumer<H>,
) -> Result<(), crate::BoxError> {
    let function = std::sync::Arc::new(crate::Function::init(kind).await?);
    let handler = consumer(&function.app.work, function.app.metrics.clone());
    run(function, std::sync::Arc::new(handler)).await
}

/// Runs an SQS-triggered function: every batch Lambda hands over goes through `handler`.
pub async fn run(
    function: std::sync::Arc<crate::Function>,
    handler: std::sync::Arc<dyn MessageHandler>,
) -> Result<(), crate::BoxError> {
    function.log_ready();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let (function, handler) = (function.clone(), handler.clone());
            async move {
                let concurrency = function.config.sqs.sqs_batch_concurrency;
                handle_batch(&function.bus, &*handler, &event.payload, concurrency)
                    .await
                    .map_err(crate::BoxError::from)
            }
        },
    ))
    .await
}
