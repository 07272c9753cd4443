//! The SQS-triggered payment-results consumer on `payments_result`.

use flash_lambda::{BoxError, Kind, batch};
use flash_runtime::consumers::Consumer;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    batch::serve(Kind::Results, Consumer::payment_results).await
}
