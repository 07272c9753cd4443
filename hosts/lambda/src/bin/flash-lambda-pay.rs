//! The SQS-triggered mock payment processor on `payments_request`.

use flash_lambda::{BoxError, Function, Kind, batch};
use flash_runtime::consumers::PaymentRequests;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Pay).await?);
    let handler = Arc::new(PaymentRequests {
        handlers: function.app.handlers.clone(),
        metrics: function.app.metrics.clone(),
        queue: function.config.app.settings.payments.request_queue.clone(),
    });
    batch::run(function, handler).await
}
