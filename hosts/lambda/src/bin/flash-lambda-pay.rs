//! The SQS-triggered mock payment processor on `payments_request`.

use flash_lambda::{BoxError, Function, Kind, batch};
use flash_runtime::consumers::Consumer;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Pay).await?);
    let handler = Arc::new(Consumer::payment_requests(
        &function.app.handlers,
        function.app.metrics.clone(),
    ));
    batch::run(function, handler).await
}
