//! The SQS-triggered payment-results consumer on `payments_result`.

use flash_lambda::{BoxError, Function, Kind, batch};
use flash_runtime::consumers::Consumer;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Results).await?);
    let handler = Arc::new(Consumer::payment_results(
        &function.app.handlers,
        function.app.metrics.clone(),
    ));
    batch::run(function, handler).await
}
