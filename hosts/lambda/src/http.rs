//! The HTTP function: API Gateway (REST v1, HTTP API v2) and ALB events through the pods' axum
//! router, with the work the pods do in the background done inline.

use crate::function::Function;
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use flash_core::domain::RateDecision;
use flash_http::layers::HttpLayersConfig;
use flash_http::state::{AppState, Services};
use flash_runtime::jobs::{promote_once, relay_outbox};
use futures::FutureExt;
use http::Uri;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt, aws_lambda_events::encodings::Body as LambdaBody};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

/// The Redis rate-limit key that makes promotion run at most once per interval across every
/// instance of the function.
pub const PROMOTION_LOCK: &str = "lambda:promotion";

/// The HTTP function's handler; cheap to clone.
#[derive(Clone)]
pub struct HttpFunction {
    function: Arc<Function>,
    router: Router,
}

impl HttpFunction {
    pub fn new(function: Arc<Function>) -> Self {
        let state = AppState {
            handlers: function.handlers.clone(),
            metrics: function.metrics.clone(),
            health: Arc::new(function.health.clone()),
            db_stats: function.db_stats.clone(),
            services: Services::ALL,
            health_timeout: flash_wiring::HEALTH_TIMEOUT,
            ws_refresh: function.config.queue.ws_refresh,
            started: Instant::now(),
        };
        let layers = HttpLayersConfig {
            service: "lambda".to_owned(),
            cors_origins: function.config.http.cors_origins.clone(),
            body_limit: flash_http::body::DEFAULT_BODY_LIMIT,
        };
        HttpFunction {
            router: flash_http::app(state, &layers),
            function,
        }
    }

    /// The router the function serves, built exactly as the pods build theirs.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Answers one event, as the pods' router would answer the same request.
    pub async fn handle(&self, request: lambda_http::Request) -> Result<Response, Infallible> {
        let request = into_axum(request);
        let status_read =
            request.method() == http::Method::GET && request.uri().path() == "/queue/status";
        if status_read {
            // Admit before answering, so that a poll can already see READY.
            self.promote_throttled().await;
        }
        let response = self.router.clone().oneshot(request).await?;
        let h = &self.function.handlers;
        if taken(&h.relay_kick) {
            self.relay().await;
        }
        if taken(&h.promotion_kick) {
            // A slot was freed or someone joined.
            self.promote_throttled().await;
        }
        Ok(response)
    }

    /// Publishes what the request wrote to the outbox before the function freezes; what fails
    /// stays in the outbox for the sweeper.
    async fn relay(&self) {
        let f = &self.function;
        let queue = &f.config.payments.request_queue;
        if let Err(e) = relay_outbox(
            &*f.outbox,
            &*f.ports.bus,
            &*f.ports.clock,
            &f.metrics,
            queue,
        )
        .await
        {
            tracing::warn!(error = %e, "outbox relay failed; the sweeper will retry");
        }
    }

    /// Runs promotion unless another instance did within `QUEUE_PROMOTION_INTERVAL_MS`.
    async fn promote_throttled(&self) {
        let f = &self.function;
        let window = f.config.queue.promotion_interval;
        let decision = f
            .ports
            .limiter
            .hit(PROMOTION_LOCK, 1, window, f.handlers.now())
            .await;
        match decision {
            Ok(RateDecision::Allowed) => {
                if let Err(e) = promote_once(&f.handlers, &f.metrics).await {
                    tracing::warn!(error = %e, "promotion failed");
                }
            }
            Ok(RateDecision::Limited { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "promotion lock unavailable"),
        }
    }
}

/// Whether `kick` was signalled since the last look (consumes the signal).
fn taken(kick: &flash_handlers::Kick) -> bool {
    kick.notify().notified().now_or_never().is_some()
}

/// The API Gateway stage of a v1 / v2 event (`$default` has no path prefix).
fn stage(request: &lambda_http::Request) -> Option<String> {
    let stage = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.stage.clone(),
        RequestContext::ApiGatewayV2(c) => c.stage.clone(),
        _ => None,
    }?;
    (stage != "$default" && !stage.is_empty()).then_some(stage)
}

/// `/prod/events?x` → `/events?x` for stage `prod` (lambda_http puts the stage in the path;
/// the router's routes do not have it).
fn strip_stage(uri: &Uri, stage: &str) -> Option<Uri> {
    let path = uri.path();
    let prefix = format!("/{stage}");
    let rest = path.strip_prefix(&prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The Lambda request as the router's request: the stage prefix removed, the body as bytes.
pub fn into_axum(request: lambda_http::Request) -> http::Request<Body> {
    let stage = stage(&request);
    let (mut parts, body) = request.into_parts();
    if let Some(uri) = stage.and_then(|s| strip_stage(&parts.uri, &s)) {
        parts.uri = uri;
    }
    let bytes = match body {
        LambdaBody::Empty => Bytes::new(),
        LambdaBody::Text(text) => Bytes::from(text),
        LambdaBody::Binary(data) => Bytes::from(data),
        // A later variant of the event body: nothing we can read.
        #[allow(unreachable_patterns)]
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_prefix_is_removed_once_and_only_as_a_whole_segment() {
        let uri: Uri = "https://api.example.com/prod/events?limit=5"
            .parse()
            .unwrap();
        assert_eq!(
            strip_stage(&uri, "prod").unwrap().to_string(),
            "https://api.example.com/events?limit=5"
        );
        let root: Uri = "/prod".parse().unwrap();
        assert_eq!(strip_stage(&root, "prod").unwrap().path(), "/");
        let other: Uri = "/production/events".parse().unwrap();
        assert!(strip_stage(&other, "prod").is_none());
        let plain: Uri = "/events".parse().unwrap();
        assert!(strip_stage(&plain, "prod").is_none());
    }
}
