//! The HTTP function: API Gateway (REST v1, HTTP API v2) and ALB events through the pods' axum
//! router, with the work the pods do in the background done inline.

use crate::function::Function;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flash_core::domain::RateDecision;
use flash_core::limits::{Door, RateKey};
use flash_http::error::ApiError;
use flash_http::state::Services;
use flash_runtime::config::ConfigError;
use flash_runtime::jobs::{promote_once, relay_outbox};
use flash_wiring::Secrets;
use futures::FutureExt;
use http::Uri;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt, aws_lambda_events::encodings::Body as LambdaBody};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tower::ServiceExt;

/// The HTTP function's handler; cheap to clone.
#[derive(Clone)]
pub struct HttpFunction {
    function: Arc<Function>,
    router: Router,
}

impl HttpFunction {
    /// The function's router over the site's handlers; the only function that signs and
    /// verifies tokens, so both secrets are required.
    pub fn new(function: Arc<Function>) -> Result<Self, ConfigError> {
        let site = function.app.site(Secrets::Required { refresh: true })?;
        // Lambda receives whole bodies from the ALB; the read timeout bounds nothing slower here.
        let state = function.app.state(site, Services::ALL);
        let layers = function.config.app.layers("lambda");
        Ok(HttpFunction {
            router: flash_http::app(state, &layers),
            function,
        })
    }

    /// The router the function serves, built exactly as the pods build theirs.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Answers one event, as the pods' router would answer the same request.
    pub async fn handle(&self, request: lambda_http::Request) -> Result<Response, Infallible> {
        let request = into_axum(request);
        // Per-instance counters mean nothing behind Lambda, and the pods' ingress keeps
        // /metrics private: the public API does not serve it.
        if request.uri().path() == "/metrics" {
            return Ok(
                ApiError::route_not_found(request.method(), request.uri().path()).into_response(),
            );
        }
        let status_read =
            request.method() == http::Method::GET && request.uri().path() == "/queue/status";
        if status_read {
            // Admit before answering, so that a poll can already see READY.
            self.promote_throttled().await;
        }
        let response = self.router.clone().oneshot(request).await?;
        let h = &self.function.app.work;
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
        let queue = &f.config.app.settings.payments.request_queue;
        if let Err(e) = relay_outbox(
            &*f.app.outbox,
            &*f.app.ports.bus,
            &*f.app.ports.clock,
            &f.app.metrics,
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
        let window = f.config.app.settings.queue.promotion_interval;
        let decision = f
            .app
            .ports
            .limiter
            .hit(
                // One hit per interval across every instance of the function: promotion runs
                // at most once per interval.
                &RateKey::global(Door::Promotion),
                1,
                window,
                f.app.work.now(),
            )
            .await;
        match decision {
            Ok(RateDecision::Allowed) => {
                if let Err(e) = promote_once(&f.app.work, &f.app.metrics).await {
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

/// The path the router must see. lambda_http puts an API Gateway stage in front of the path;
/// the event's own path does not have it for REST APIs (v1) and ALBs, and has it for HTTP APIs
/// (v2) on a named stage, whose `rawPath` is `/{stage}/…` (`$default` has no prefix).
fn route_path(request: &lambda_http::Request) -> Option<String> {
    let raw = request.raw_http_path();
    if raw.is_empty() {
        return None;
    }
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone().filter(|s| s != "$default"),
        _ => None,
    };
    Some(match stage {
        Some(stage) => strip_stage(raw, &stage).to_owned(),
        None => raw.to_owned(),
    })
}

/// `/prod/events` → `/events`, `/prod` → `/`; anything else unchanged.
fn strip_stage<'a>(path: &'a str, stage: &str) -> &'a str {
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The client's address as API Gateway saw it (the `X-Forwarded-For` header's first entry is
/// the client's to write, so it must not decide rate limits): the event's `sourceIp`, or for an
/// ALB the last `X-Forwarded-For` hop, which the load balancer appends.
fn source_ip(request: &lambda_http::Request) -> Option<IpAddr> {
    let ip = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        RequestContext::Alb(_) => return flash_http::layers::forwarded_for(request.headers()),
        _ => None,
    }?;
    ip.parse().ok()
}

/// The Lambda request as the router's request: the path without the stage, the client address
/// as connection info, the body as bytes.
pub fn into_axum(request: lambda_http::Request) -> http::Request<Body> {
    let path = route_path(&request);
    let ip = source_ip(&request);
    let (mut parts, body) = request.into_parts();
    if let Some(path) = path {
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut uri = parts.uri.clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            uri.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(uri) {
                parts.uri = uri;
            }
        }
    }
    if let Some(ip) = ip {
        parts.extensions.insert(ConnectInfo(SocketAddr::new(ip, 0)));
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
        assert_eq!(strip_stage("/prod/events", "prod"), "/events");
        assert_eq!(strip_stage("/prod", "prod"), "/");
        assert_eq!(
            strip_stage("/production/events", "prod"),
            "/production/events"
        );
        assert_eq!(strip_stage("/events", "prod"), "/events");
        assert_eq!(strip_stage("/prod/prod/x", "prod"), "/prod/x");
    }

    fn fixture(name: &str, spoofed: &str) -> lambda_http::Request {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // What a client can write itself goes first; the real address is what AWS saw.
        let forwarded = format!("{spoofed}, 203.0.113.9");
        for key in ["X-Forwarded-For", "x-forwarded-for"] {
            if event["headers"].get(key).is_some() {
                event["headers"][key] = serde_json::json!(forwarded);
            }
            if event["multiValueHeaders"].get(key).is_some() {
                event["multiValueHeaders"][key] = serde_json::json!([forwarded]);
            }
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn connect_ip(request: &http::Request<Body>) -> Option<IpAddr> {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    }

    #[test]
    fn the_client_address_is_the_one_aws_saw_not_a_forwarded_for_header() {
        let spoofed = "198.51.100.66";
        let v1 = into_axum(fixture("apigw_v1.json", spoofed));
        assert_eq!(connect_ip(&v1), "203.0.113.7".parse().ok());
        let v2 = into_axum(fixture("apigw_v2.json", spoofed));
        assert_eq!(connect_ip(&v2), "203.0.113.8".parse().ok());
        let alb = into_axum(fixture("alb.json", spoofed));
        assert_eq!(connect_ip(&alb), "203.0.113.9".parse().ok());
        let parts = v1.into_parts().0;
        assert_eq!(
            flash_http::layers::client_ip(&parts),
            "203.0.113.7".parse().ok()
        );
    }
}
