//! The HTTP function (API Gateway HTTP API / REST API / ALB): every gateway and api route.

use flash_lambda::http::HttpFunction;
use flash_lambda::{BoxError, Function, Kind};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let function = Arc::new(Function::init(Kind::Http).await?);
    let app = HttpFunction::new(function.clone())?;
    function.log_ready();
    lambda_http::run(lambda_http::service_fn(move |request| {
        let app = app.clone();
        async move { app.handle(request).await }
    }))
    .await
}
