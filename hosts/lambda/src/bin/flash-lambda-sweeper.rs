//! The scheduled function (EventBridge): hold expiry, payment timeouts, outbox relay, promotion.

use flash_lambda::sweep::{SweepReport, sweep_window};
use flash_lambda::{BoxError, Function, Kind};
use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Sweeper).await?);
    function.log_ready();
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let function = function.clone();
        async move {
            let report = sweep_window(&function).await;
            // A failed step is an invocation error, so the errors alarm sees it; the steps that
            // succeeded are kept (each is idempotent and the next tick retries the rest).
            if report.errors.is_empty() {
                Ok::<SweepReport, BoxError>(report)
            } else {
                Err(format!("sweep incomplete: {}", report.errors.join("; ")).into())
            }
        }
    }))
    .await
}
