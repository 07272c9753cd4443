//! The middleware every service shares: request ids, one log line per request, metrics, security
//! headers, CORS and the body limit.
//!
//! Order, outermost first: request id (sanitised, generated when missing, echoed on the
//! response) → request span + log line → metrics → security headers → CORS → body limit →
//! routes. Everything a request can meet — including a CORS preflight, a 413 or an unknown route
//! — is therefore logged and counted with its request id.

use crate::body::{BodyLimit, DEFAULT_BODY_LIMIT};
use crate::error::ApiError;
use crate::metrics::{Metrics, UNMATCHED_ROUTE};
use crate::server::DEFAULT_READ_TIMEOUT;
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
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
    /// How long a client may take to send a body once its headers arrived (408 past it).
    pub read_timeout: Duration,
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
            read_timeout: DEFAULT_READ_TIMEOUT,
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
        if self.read_timeout.is_zero() {
            return Err("read timeout must be positive".into());
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
///
/// axum clones a route's whole middleware stack for every request, and each `from_fn` layer
/// clones (and boxes) everything beneath it again. So the common work is one hand-written
/// service over one shared [`Common`]: a clone is a pointer copy, whatever the configuration.
/// CORS runs through tower-http's layer only for requests that have an `Origin` header or are
/// `OPTIONS`; every other response gets the constant headers that layer would have added.
pub fn apply_common_layers<S>(
    router: Router<S>,
    cfg: &HttpLayersConfig,
    metrics: &Metrics,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let common = Arc::new(Common {
        service: cfg.service.clone(),
        metrics: metrics.clone(),
        cors: cors_layer(&cfg.cors_origins),
        limit: cfg.body_limit,
        read_timeout: cfg.read_timeout,
    });
    router.layer(
        ServiceBuilder::new()
            .layer(CommonLayer(common))
            .layer(DefaultBodyLimit::max(cfg.body_limit)),
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

/// What the common middleware shares between all requests of one router.
struct Common {
    /// `service` label and log field.
    service: String,
    metrics: Metrics,
    cors: CorsLayer,
    /// Request body limit in bytes.
    limit: usize,
    /// Longest wait for a request body.
    read_timeout: Duration,
}

#[derive(Clone)]
struct CommonLayer(Arc<Common>);

impl<I> Layer<I> for CommonLayer {
    type Service = CommonService<I>;

    fn layer(&self, inner: I) -> CommonService<I> {
        CommonService {
            common: self.0.clone(),
            inner,
        }
    }
}

/// The common middleware, outermost first: request id (sanitised, generated when missing,
/// echoed on the response) → request span + log line → metrics → security headers → CORS →
/// body limit → the route. Everything a request can meet — including a CORS preflight, a 413 or
/// an unknown route — is therefore logged and counted with its request id.
#[derive(Clone)]
struct CommonService<I> {
    common: Arc<Common>,
    inner: I,
}

impl<I> Service<Request> for CommonService<I>
where
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is cloned per call and driven with `oneshot`, which polls it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(req.headers_mut());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        let common = self.common.clone();
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "request",
            service = %common.service,
            request_id = request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            method = %method,
            route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
        );
        Box::pin(
            async move {
                let path =
                    tracing::enabled!(tracing::Level::WARN).then(|| req.uri().path().to_owned());
                let limited = LimitBody {
                    limit: common.limit,
                    read_timeout: common.read_timeout,
                    inner,
                };
                let through_cors =
                    req.method() == Method::OPTIONS || req.headers().contains_key(header::ORIGIN);
                let mut response = if through_cors {
                    common.cors.layer(limited).oneshot(req).await?
                } else {
                    let mut response = limited.oneshot(req).await?;
                    add_no_origin_cors_headers(response.headers_mut());
                    response
                };
                let status = response.status().as_u16();
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
                let seconds = started.elapsed().as_secs_f64();
                common.metrics.observe_http(
                    &common.service,
                    route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
                    &method,
                    status,
                    seconds,
                );
                if let Some(path) = path {
                    let latency_ms = seconds * 1000.0;
                    if status >= 500 {
                        tracing::warn!(status, latency_ms, path = %path, "request finished");
                    } else {
                        tracing::info!(status, latency_ms, path = %path, "request finished");
                    }
                }
                if let Some(id) = request_id {
                    response
                        .headers_mut()
                        .entry(REQUEST_ID_HEADER)
                        .or_insert(id);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The request's id: the client's when it is printable ASCII of a sane length, else a fresh
/// UUID written into the request (so extractors and handlers see it).
fn request_id(headers: &mut HeaderMap) -> Option<HeaderValue> {
    if let Some(v) = headers.get(&REQUEST_ID_HEADER) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(u8::is_ascii_graphic) {
            return Some(v.clone());
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = HeaderValue::from_str(fresh_request_id().hyphenated().encode_lower(&mut buf)).ok()?;
    headers.insert(REQUEST_ID_HEADER, id.clone());
    Some(id)
}

/// A version-4 UUID without a system call per request: a per-process random key mixed with a
/// counter (request ids must be unique, not unpredictable).
fn fresh_request_id() -> uuid::Uuid {
    static KEY: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mix = |mut z: u64| {
        // splitmix64: a bijection, so distinct counters give distinct ids.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let hi = mix(*KEY);
    let lo = mix(n ^ *KEY);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Adds the headers [`cors_layer`] puts on a response to a request without `Origin`
/// (credentials, `Vary`, exposed headers), all constant.
fn add_no_origin_cors_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id,retry-after"),
    );
}

/// Reads the whole request body (up to the limit, within the read timeout) before the route
/// runs, so every answer — a 401 or 404 that never looks at the body included — leaves the
/// connection clean for the next request on it (SPEC §11: no resets behind the load balancer).
/// A body that cannot be used is answered with `Connection: close`: 413 past the limit, 408
/// past the timeout, 400 when the client broke off. A body past the limit is still read (and
/// dropped) up to [`DRAIN_LIMIT`], so the client finishes sending and reads the 413 instead of
/// meeting a closed socket; only a larger one is refused at once. Routes see the buffered body
/// and the [`BodyLimit`].
#[derive(Clone)]
struct LimitBody<I> {
    limit: usize,
    read_timeout: Duration,
    inner: I,
}

impl<I> Service<Request> for LimitBody<I>
where
    I: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        futures::future::Either<BoxFuture<'static, Result<Response, Infallible>>, I::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        use http_body::Body as _;
        req.extensions_mut().insert(BodyLimit(self.limit));
        if req.body().is_end_stream() {
            return futures::future::Either::Right(self.inner.call(req));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (limit, timeout) = (self.limit, self.read_timeout);
        if declared.is_some_and(|n| n > DRAIN_LIMIT.max(limit) as u64) {
            let refused = closing(ApiError::payload_too_large());
            return futures::future::Either::Left(Box::pin(std::future::ready(Ok(refused))));
        }
        // The body is read first, then the route runs: the ready inner service moves into the
        // future and a clone takes its place (tower's pattern for async work before `call`).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        futures::future::Either::Left(Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match tokio::time::timeout(timeout, read_body(body, limit)).await {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => return Ok(closing(ApiError::payload_too_large())),
                Ok(Err(())) => {
                    return Ok(closing(ApiError::bad_request(
                        "Request body could not be read",
                    )));
                }
                Err(_) => {
                    return Ok(closing(ApiError::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "Request body was not received in time",
                    )));
                }
            };
            let req = Request::from_parts(parts, axum::body::Body::from(bytes));
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
            inner.call(req).await
        }))
    }
}

/// How much of a body past the limit is read and dropped before the 413 (see [`LimitBody`]).
const DRAIN_LIMIT: usize = 1024 * 1024;

/// The whole body when it is at most `limit` bytes; `None` when it is larger (read on, and
/// dropped, up to [`DRAIN_LIMIT`]); `Err` when the client broke off.
async fn read_body(mut body: axum::body::Body, limit: usize) -> Result<Option<bytes::Bytes>, ()> {
    use http_body_util::BodyExt;
    // Most bodies arrive as one frame: kept as it is, copied only when a second one comes.
    let mut first: Option<bytes::Bytes> = None;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ())?.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT.max(limit) {
            return Ok(None);
        }
        if seen <= limit {
            match first.take() {
                None if kept.is_empty() => first = Some(data),
                earlier => {
                    if let Some(earlier) = earlier {
                        kept.extend_from_slice(&earlier);
                    }
                    kept.extend_from_slice(&data);
                }
            }
        }
    }
    if seen > limit {
        return Ok(None);
    }
    Ok(Some(first.unwrap_or_else(|| kept.freeze())))
}

/// `err` with `Connection: close`: the rest of the request was not read, so the connection
/// cannot carry another one.
fn closing(err: ApiError) -> Response {
    let mut response = err.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The client's address for rate limiting: the socket peer when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()` (or the Lambda host's event source
/// address), else the last hop of `X-Forwarded-For` (a pod behind the ALB).
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

/// The last address of `X-Forwarded-For`, if it parses: the one the load balancer in front of
/// the pods appended (the ALB's default `append` mode). Earlier entries are whatever the client
/// sent, so they must not decide a per-address rate limit.
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
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
        let bytes = crate::body_bytes(response).await;
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

    /// The fast path for requests without `Origin` answers exactly what tower-http's CORS layer
    /// (still used for browser requests) would have answered.
    #[tokio::test]
    async fn requests_without_origin_get_the_cors_layers_headers() {
        let (fast, _) = send(
            req(Method::GET, "/events/1")
                .body(Body::empty())
                .unwrap_or_default(),
        )
        .await;
        let reference = Router::new()
            .route("/events/{id}", get(|| async { "" }))
            .layer(cors_layer(&HttpLayersConfig::new("api").cors_origins))
            .oneshot(
                req(Method::GET, "/events/1")
                    .body(Body::empty())
                    .unwrap_or_default(),
            )
            .await
            .unwrap_or_else(|e| match e {});
        let cors_headers = |r: &Response| {
            let mut v: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("access-control-") || *k == header::VARY)
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            v.sort();
            v
        };
        assert!(!cors_headers(&reference).is_empty());
        assert_eq!(cors_headers(&fast), cors_headers(&reference));
    }

    #[test]
    fn generated_request_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..10_000).map(|_| fresh_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|u| u.get_version_num() == 4));
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
            // A client-written entry first, the address the load balancer saw last.
            .header("x-forwarded-for", "198.51.100.66, 203.0.113.7")
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
