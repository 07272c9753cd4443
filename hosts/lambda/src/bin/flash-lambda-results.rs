//! The SQS-triggered payment-results consumer on `payments_result`.

use flash_lambda::{BoxError, Function, Kind, batch};
use flash_runtime::consumers::PaymentResults;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Results).await?);
    let handler = Arc::new(PaymentResults {
        handlers: function.app.handlers.clone(),
        metrics: function.app.metrics.clone(),
        queue: function.config.app.settings.payments.result_queue.clone(),
    });
    batch::run(function, handler).await
}
