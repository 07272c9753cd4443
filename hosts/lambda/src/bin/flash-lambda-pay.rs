//! The SQS-triggered mock payment processor on `payments_request`.

use flash_lambda::{BoxError, Kind, batch};
use flash_runtime::consumers::Consumer;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    batch::serve(Kind::Pay, Consumer::payment_requests).await
}
