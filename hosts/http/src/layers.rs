//! The middleware every service shares: request ids, one log line per request, metrics, security
//! headers, CORS and the body limit.
//!
//! Order, outermost first: request id (sanitised, generated when missing, echoed on the
//! response) → request span + log line → metrics → security headers → CORS → body limit →
//! routes. Everything a request can meet — including a CORS preflight, a 413 or an unknown route
//! — is therefore logged and counted with its request id.

use crate::body::{BodyLimit, DEFAULT_BODY_LIMIT};
use crate::error::ApiError;
use crate::metrics::{HttpMetrics, Metrics, UNMATCHED_ROUTE, track_http};
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

/// `x-request-id`.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The legacy CORS list (identical in both legacy apps).
pub const LEGACY_CORS_ORIGINS: &[&str] = &[
    "http://localhost:5173",
    "https://www.highgarden.cloud",
    "https://dev.highgarden.cloud",
];

/// Longest client-supplied request id we keep; longer or non-printable ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What [`apply_common_layers`] needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLayersConfig {
    /// `service` label and log field, e.g. `gateway`, `api`, `flash`.
    pub service: String,
    /// Allowed browser origins, exact (`https://www.example.com`); `*` mirrors any origin.
    pub cors_origins: Vec<String>,
    /// Request body limit in bytes (413 above it).
    pub body_limit: usize,
}

impl HttpLayersConfig {
    /// The legacy CORS list and the 64 KiB body limit.
    pub fn new(service: impl Into<String>) -> Self {
        HttpLayersConfig {
            service: service.into(),
            cors_origins: LEGACY_CORS_ORIGINS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Checks the configuration once at start-up; an error names the offending value.
    pub fn validate(&self) -> Result<(), String> {
        for origin in &self.cors_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(format!(
                    "invalid CORS origin {origin:?}: expected scheme://host[:port]"
                ));
            }
        }
        if self.body_limit == 0 {
            return Err("body limit must be positive".into());
        }
        Ok(())
    }
}

fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' '])
        && HeaderValue::from_str(s).is_ok()
}

/// Wraps every route (and the fallbacks) of `router` in the common middleware. Call it last:
/// routes added afterwards are not wrapped. Set [`crate::error::route_fallback`] as both
/// `fallback` and `method_not_allowed_fallback` first, so unknown routes get the legacy 404.
pub fn apply_common_layers<S>(
    router: Router<S>,
    cfg: &HttpLayersConfig,
    metrics: &Metrics,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let http_metrics = HttpMetrics {
        metrics: metrics.clone(),
        service: cfg.service.clone(),
    };
    let service: ServiceName = ServiceName(cfg.service.clone());
    let limit = cfg.body_limit;
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(sanitize_request_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(middleware::from_fn_with_state(service, trace_request))
            .layer(middleware::from_fn_with_state(http_metrics, track_http))
            .layer(middleware::from_fn(security_headers))
            .layer(cors_layer(&cfg.cors_origins))
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn_with_state(limit, enforce_body_limit)),
    )
}

/// CORS for the configured origins, with credentials. A disallowed origin gets a normal response
/// without `Access-Control-Allow-*` headers (the browser then refuses it); requests without
/// `Origin` are unaffected.
pub fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| match HeaderValue::from_str(o) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::warn!(origin = %o, "ignoring invalid CORS origin");
                    None
                }
            })
            .collect();
        AllowOrigin::list(list)
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([REQUEST_ID_HEADER, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

#[derive(Clone, Debug)]
struct ServiceName(String);

/// Drops a client request id that is too long or not printable ASCII, so a new one is generated
/// (keeps logs clean and bounded).
async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let bad = req.headers().get(&REQUEST_ID_HEADER).is_some_and(|v| {
        let b = v.as_bytes();
        b.is_empty() || b.len() > MAX_REQUEST_ID_LEN || !b.iter().all(|c| c.is_ascii_graphic())
    });
    if bad {
        req.headers_mut().remove(&REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// One span per request (request id, method, route) and one log line when it completes.
async fn trace_request(State(service): State<ServiceName>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        service = %service.0,
        request_id = %request_id,
        method = %method,
        route = %route,
    );
    async move {
        let path = req.uri().path().to_owned();
        let response = next.run(req).await;
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::warn!(status, latency_ms, path = %path, "request finished");
        } else {
            tracing::info!(status, latency_ms, path = %path, "request finished");
        }
        response
    }
    .instrument(span)
    .await
}

/// `nosniff`, `DENY`, `no-referrer` unless a handler set its own.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Refuses a declared `Content-Length` over the limit at once (legacy JSON 413) and tells the
/// body extractors the limit for streamed bodies.
async fn enforce_body_limit(State(limit): State<usize>, mut req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::payload_too_large().into_response();
    }
    req.extensions_mut().insert(BodyLimit(limit));
    next.run(req).await
}

/// The client's address for rate limiting: the socket peer when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()`, else the first hop of
/// `X-Forwarded-For` (API Gateway, or a pod served without connect info behind a load balancer).
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| forwarded_for(&parts.headers))
}

/// [`client_ip`] as text, for `Context::client_addr`.
pub fn client_addr(parts: &Parts) -> Option<String> {
    client_ip(parts).map(|ip| ip.to_string())
}

/// The first address of `X-Forwarded-For`, if it parses.
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let first = headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Extractor for [`client_ip`]; `None` when neither source is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_ip(parts)))
    }
}

/// The request id of this request (set by the layers), for `Context`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            parts
                .headers
                .get(&REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::JsonObject;
    use crate::error::route_fallback;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    fn app(metrics: &Metrics) -> Router {
        let routes = Router::new()
            .route(
                "/events/{id}",
                get(|RequestId(id): RequestId| async move { id }),
            )
            .route(
                "/orders",
                post(|JsonObject(m): JsonObject| async move { m.len().to_string() }),
            )
            .route(
                "/addr",
                get(|ClientAddr(a): ClientAddr| async move { format!("{a:?}") }),
            )
            .fallback(route_fallback)
            .method_not_allowed_fallback(route_fallback);
        apply_common_layers(routes, &HttpLayersConfig::new("api"), metrics)
    }

    async fn send(req: HttpRequest<Body>) -> (Response, Metrics) {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        let response = app(&metrics)
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        (response, metrics)
    }

    async fn text(response: Response) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn req(method: Method, uri: &str) -> axum::http::request::Builder {
        HttpRequest::builder().method(method).uri(uri)
    }

    #[tokio::test]
    async fn request_id_is_echoed_or_generated() {
        let r = req(Method::GET, "/events/1")
            .header("x-request-id", "abc-123")
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_eq!(response.headers()["x-request-id"], "abc-123");
        assert_eq!(text(response).await, "abc-123");

        let (response, _) = send(
            req(Method::GET, "/events/1")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await;
        let generated = response.headers()["x-request-id"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        assert_eq!(text(response).await, generated);

        let long = "x".repeat(500);
        let r = req(Method::GET, "/events/1")
            .header("x-request-id", long.as_str())
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_ne!(response.headers()["x-request-id"], long.as_str());
    }

    #[tokio::test]
    async fn security_headers_and_metrics_on_every_response() {
        let (response, metrics) = send(
            req(Method::GET, "/nowhere")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.contains_key("x-request-id"));
        let body: Value = serde_json::from_str(&text(response).await).unwrap_or_default();
        assert_eq!(body["message"], "Cannot GET /nowhere");
        let counted = metrics
            .http_requests_total
            .with_label_values(&["api", "unmatched", "GET", "404"])
            .get();
        assert_eq!(counted, 1);
    }

    #[tokio::test]
    async fn wrong_method_is_the_legacy_404() {
        let r = req(Method::DELETE, "/orders")
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: Value = serde_json::from_str(&text(response).await).unwrap_or_default();
        assert_eq!(body["message"], "Cannot DELETE /orders");
    }

    #[tokio::test]
    async fn cors_allows_listed_origins_only_and_never_fails() {
        let r = req(Method::GET, "/events/1")
            .header("origin", "https://www.highgarden.cloud")
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://www.highgarden.cloud"
        );
        assert_eq!(
            response.headers()["access-control-allow-credentials"],
            "true"
        );

        let r = req(Method::GET, "/events/1")
            .header("origin", "https://evil.example")
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );

        let r = req(Method::OPTIONS, "/orders")
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert!(response.status().is_success());
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,content-type,idempotency-key"
        );
    }

    #[tokio::test]
    async fn declared_oversized_body_is_413_json() {
        let r = req(Method::POST, "/orders")
            .header("content-type", "application/json")
            .header("content-length", "70000")
            .body(Body::from("{}"))
            .unwrap_or_default();
        let (response, metrics) = send(r).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = serde_json::from_str(&text(response).await).unwrap_or_default();
        assert_eq!(body["statusCode"], 413);
        let counted = metrics
            .http_requests_total
            .with_label_values(&["api", "/orders", "POST", "413"])
            .get();
        assert_eq!(counted, 1);
    }

    #[tokio::test]
    async fn configured_limit_reaches_the_extractor() {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        let cfg = HttpLayersConfig {
            body_limit: 8,
            ..HttpLayersConfig::new("api")
        };
        let routes = Router::new().route(
            "/orders",
            post(|JsonObject(m): JsonObject| async move { m.len().to_string() }),
        );
        let chunks: Vec<Result<&'static str, std::io::Error>> =
            vec![Ok("{\"a\":"), Ok("\"123456\"}")];
        let r = req(Method::POST, "/orders")
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap_or_default();
        let response = apply_common_layers(routes, &cfg, &metrics)
            .oneshot(r)
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn client_addr_prefers_connect_info_then_forwarded_for() {
        let r = req(Method::GET, "/addr")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .body(Body::empty())
            .unwrap_or_default();
        let (response, _) = send(r).await;
        assert_eq!(text(response).await, "Some(203.0.113.7)");

        let mut r = req(Method::GET, "/addr")
            .header("x-forwarded-for", "203.0.113.7")
            .body(Body::empty())
            .unwrap_or_default();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4000))));
        let (response, _) = send(r).await;
        assert_eq!(text(response).await, "Some(192.0.2.1)");

        let (response, _) = send(
            req(Method::GET, "/addr")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await;
        assert_eq!(text(response).await, "None");
    }

    #[test]
    fn config_validation() {
        assert_eq!(HttpLayersConfig::new("api").validate(), Ok(()));
        let bad = HttpLayersConfig {
            cors_origins: vec!["https://ok.example".into(), "not an origin".into()],
            ..HttpLayersConfig::new("api")
        };
        assert!(bad.validate().is_err_and(|e| e.contains("not an origin")));
        let star = HttpLayersConfig {
            cors_origins: vec!["*".into()],
            ..HttpLayersConfig::new("api")
        };
        assert_eq!(star.validate(), Ok(()));
    }
}
