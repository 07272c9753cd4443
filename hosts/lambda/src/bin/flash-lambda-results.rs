//! The SQS-triggered payment-results consumer on `payments_result`.

use aws_lambda_events::sqs::SqsEvent;
use flash_lambda::batch::handle_batch;
use flash_lambda::{BoxError, Function, Kind};
use flash_runtime::consumers::PaymentResults;
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Results).await?);
    let handler = Arc::new(PaymentResults {
        handlers: function.handlers.clone(),
        metrics: function.metrics.clone(),
        queue: function.config.payments.result_queue.clone(),
    });
    function.log_ready();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (function, handler) = (function.clone(), handler.clone());
        async move {
            let concurrency = function.config.sqs.batch_concurrency;
            handle_batch(&function.bus, &*handler, &event.payload, concurrency)
                .await
                .map_err(BoxError::from)
        }
    }))
    .await
}
