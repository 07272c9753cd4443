//! The web page buyers and admins use, served by `flash up` on the same origin as the API.
//!
//! The page has no build step: `web/index.html`, plain ES modules under `web/app/`, the
//! vendored Socket.IO client and uPlot (the monitoring charts) under `web/vendor/`, all
//! embedded into the binary here, so `cargo run --release` serves it on a machine without Node.
//!
//! What is served, and what never is:
//! - `GET /` and any page address of the single-page app (`/login`, `/shop/<id>`, …): the page.
//!   A page address is a `GET`/`HEAD` that accepts `text/html` and whose first path segment is
//!   not an API one. The API segments come from the OpenAPI document (plus `socket.io`), so an
//!   API path — including its 404s, whatever the `Accept` header says — always reaches the API.
//! - `GET /assets/<version>/<file>`: the embedded files. `<version>` is a digest of every file,
//!   so the files are cached for a year (`immutable`) and a new binary changes every address;
//!   the page itself is `no-cache` and revalidated with its `ETag`.
//!
//! The web responses go through the same layers as the API (request id, log line, metrics,
//! security headers) and add a `Content-Security-Policy` that allows only this origin.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flash_http::layers::{HttpLayersConfig, apply_common_layers};
use flash_http::metrics::Metrics;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// One embedded file of the page, addressed as `/assets/<version>/<path>`.
#[derive(Debug)]
pub struct Asset {
    /// Path under `web/`, e.g. `app/main.js`.
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const HTML: &str = "text/html; charset=utf-8";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)),
            content_type: $content_type,
        }
    };
}

/// Every file the page loads. A unit test checks this list against the files in `web/`.
pub const ASSETS: &[Asset] = &[
    asset!("app/app.css", CSS),
    asset!("app/icon.svg", SVG),
    asset!("app/main.js", JS),
    asset!("app/dom.js", JS),
    asset!("app/format.js", JS),
    asset!("app/api.js", JS),
    asset!("app/session.js", JS),
    asset!("app/queue.js", JS),
    asset!("app/charts.js", JS),
    asset!("app/pages/auth.js", JS),
    asset!("app/pages/buyer.js", JS),
    asset!("app/pages/admin.js", JS),
    asset!("vendor/socket.io.esm.min.js", JS),
    // Loaded by the monitoring page only (app/charts.js), never by the buyer pages.
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
];

/// The page shell; its `/assets/` references get the version inserted when served.
const INDEX_HTML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html"));

/// Only this origin: scripts, styles, images and connections (fetch and the Socket.IO
/// WebSocket, which `'self'` covers). No inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// First path segments that belong to the API even when no route of the OpenAPI document is
/// parsed (the document adds any later ones).
const API_SEGMENTS: &[&str] = &[
    "auth",
    "queue",
    "events",
    "orders",
    "payments",
    "live",
    "ready",
    "health",
    "metrics",
    "openapi.json",
    "socket.io",
];

/// FNV-1a, 64 bits: a stable digest for versions and `ETag`s (not a security property).
fn fnv1a(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for b in *chunk {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separates the chunks so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The digest of every embedded file: the `<version>` segment of asset addresses.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut chunks: Vec<&[u8]> = Vec::with_capacity(ASSETS.len() * 2 + 1);
        for a in ASSETS {
            chunks.push(a.path.as_bytes());
            chunks.push(a.bytes);
        }
        chunks.push(INDEX_HTML.as_bytes());
        format!("{:012x}", fnv1a(&chunks) & 0xffff_ffff_ffff)
    })
}

/// The page as served: asset addresses carry the version.
fn index_html() -> &'static (String, String) {
    static INDEX: OnceLock<(String, String)> = OnceLock::new();
    INDEX.get_or_init(|| {
        let html = INDEX_HTML.replace("/assets/", &format!("/assets/{}/", version()));
        let etag = format!("\"{:016x}\"", fnv1a(&[html.as_bytes()]));
        (html, etag)
    })
}

/// The first path segments of the API: never answered with the page.
pub fn api_segments() -> &'static BTreeSet<String> {
    static SEGMENTS: OnceLock<BTreeSet<String>> = OnceLock::new();
    SEGMENTS.get_or_init(|| {
        let mut set: BTreeSet<String> = API_SEGMENTS.iter().map(|s| (*s).to_owned()).collect();
        if let Some(paths) = flash_http::openapi::document()
            .get("paths")
            .and_then(|p| p.as_object())
        {
            for path in paths.keys() {
                if let Some(first) = first_segment(path) {
                    set.insert(first.to_owned());
                }
            }
        }
        set
    })
}

fn first_segment(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
}

/// `Accept` lists `text/html` (browsers navigating to a page do; `fetch`, curl and API clients
/// by default do not).
fn accepts_html(headers: &HeaderMap) -> bool {
    list_items(headers, header::ACCEPT).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("text/html") && !refused
    })
}

/// Whether the page (rather than the API) answers this request.
pub fn is_web_request(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if path == "/" || path.starts_with("/assets/") {
        return true;
    }
    match first_segment(path) {
        Some(first) if api_segments().contains(first) => false,
        _ => accepts_html(headers),
    }
}

/// The page's own routes. They only ever see requests [`is_web_request`] accepted.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/{*page}", get(index))
}

/// Puts the page in front of `api`: web requests go to [`routes`] (wrapped in the common
/// layers), everything else to `api` untouched.
///
/// The dispatcher is the one fallback of an otherwise empty router, not a layer on `api`: a
/// layer is applied to every route and cloned with it on every request (an API request then
/// paid for a second middleware stack); this costs two pointer copies.
pub fn mount(api: Router, layers: &HttpLayersConfig, metrics: &Metrics) -> Router {
    let web = apply_common_layers(routes(), layers, metrics);
    Router::new().fallback_service(Dispatch { web, api })
}

#[derive(Clone)]
struct Dispatch {
    web: Router,
    api: Router,
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<Request>>::Future;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Routers are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if is_web_request(req.method(), req.uri().path(), req.headers()) {
            self.web.call(req)
        } else {
            self.api.call(req)
        }
    }
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    list_items(headers, header::IF_NONE_MATCH).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// The comma-separated items of every `name` header (unreadable values skipped).
fn list_items(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

fn respond(
    headers: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    cache: &'static str,
    etag: &str,
) -> Response {
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, etag_value),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

#[allow(clippy::unused_async, reason = "an axum handler")]
async fn index(headers: HeaderMap) -> Response {
    let (html, etag) = index_html();
    respond(&headers, html.as_bytes(), HTML, REVALIDATE, etag)
}

/// `ETag`s of the assets, computed once.
fn asset_etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", fnv1a(&[a.bytes])))
            .collect()
    })
}

#[allow(clippy::unused_async, reason = "an axum handler")]
async fn asset(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let rest = uri.path().strip_prefix("/assets/").unwrap_or_default();
    let found = rest.split_once('/').and_then(|(ver, file)| {
        ASSETS
            .iter()
            .position(|a| a.path == file)
            .map(|i| (ver == version(), i))
    });
    match found {
        // Any version serves the current file (a page of an older binary still loads), but
        // only the current one may be cached for good.
        Some((current, i)) => {
            let a = &ASSETS[i];
            let cache = if current { IMMUTABLE } else { REVALIDATE };
            respond(&headers, a.bytes, a.content_type, cache, &asset_etags()[i])
        }
        None => flash_http::error::route_fallback(method, uri)
            .await
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use std::path::{Path, PathBuf};
    use tower::ServiceExt;

    fn web_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
    }

    fn html_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        h
    }

    fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            if path.is_dir() {
                files_under(&path, base, out);
            } else if let Ok(rel) = path.strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_page_is_embedded_and_nothing_else() {
        let base = web_dir();
        let mut on_disk = Vec::new();
        files_under(&base.join("app"), &base, &mut on_disk);
        on_disk.push("vendor/socket.io.esm.min.js".to_owned());
        on_disk.push("vendor/uPlot.iife.min.js".to_owned());
        on_disk.push("vendor/uPlot.min.css".to_owned());
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "web/app/ and ASSETS in web.rs must list the same files"
        );
    }

    /// Every `import … from './x.js'` of the page names an embedded file, so a typo fails here
    /// rather than in a buyer's browser.
    #[test]
    fn every_module_import_resolves_to_an_embedded_file() {
        let names: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
        for a in ASSETS.iter().filter(|a| a.path.starts_with("app/")) {
            let text = std::str::from_utf8(a.bytes).unwrap_or_default();
            let dir = Path::new(a.path).parent().unwrap_or(Path::new(""));
            for quote in ['\'', '"'] {
                let needle = format!("from {quote}");
                for (at, _) in text.match_indices(&needle) {
                    let rest = &text[at + needle.len()..];
                    let spec = rest.split(quote).next().unwrap_or_default();
                    assert!(spec.starts_with('.'), "{}: bare import {spec}", a.path);
                    let mut parts: Vec<&str> = dir
                        .to_str()
                        .unwrap_or_default()
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .collect();
                    for seg in spec.split('/') {
                        match seg {
                            "." => {}
                            ".." => {
                                parts.pop();
                            }
                            s => parts.push(s),
                        }
                    }
                    let target = parts.join("/");
                    assert!(
                        names.contains(target.as_str()),
                        "{} imports {spec} ({target}), which is not embedded",
                        a.path
                    );
                }
            }
        }
    }

    #[test]
    fn the_page_references_only_embedded_assets() {
        let (html, _) = index_html();
        let prefix = format!("/assets/{}/", version());
        let mut count = 0;
        for (at, _) in html.match_indices(&prefix) {
            let rest = &html[at + prefix.len()..];
            let file = rest.split('"').next().unwrap_or_default();
            assert!(ASSETS.iter().any(|a| a.path == file), "{file} not embedded");
            count += 1;
        }
        assert!(count >= 3, "the page loads its style, icon and script");
        assert!(!html.contains("<script>"), "no inline script (CSP)");
        assert!(!html.contains("style=\""), "no inline style (CSP)");
    }

    #[test]
    fn no_api_path_is_ever_answered_with_the_page() {
        let headers = html_headers();
        let doc = flash_http::openapi::document();
        let paths = doc
            .get("paths")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        assert!(paths.len() > 10, "the OpenAPI document lists the API");
        for template in paths {
            let path = template.replace("{id}", "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
            for extra in ["", "/", "/nope"] {
                let p = format!("{path}{extra}");
                assert!(
                    !is_web_request(&Method::GET, &p, &headers),
                    "{p} must reach the API"
                );
            }
        }
        for p in ["/socket.io/", "/events", "/orders/x", "/metrics", "/health"] {
            assert!(!is_web_request(&Method::GET, p, &headers), "{p}");
        }
    }

    #[test]
    fn page_addresses_are_the_page_only_for_browsers() {
        let html = html_headers();
        let json = {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            h
        };
        for p in ["/", "/login", "/shop/abc", "/admin/edit/1", "/my-orders"] {
            assert!(is_web_request(&Method::GET, p, &html), "{p}");
            assert!(is_web_request(&Method::HEAD, p, &html), "{p}");
            assert!(!is_web_request(&Method::POST, p, &html), "{p}");
        }
        assert!(is_web_request(&Method::GET, "/", &json));
        assert!(is_web_request(&Method::GET, "/assets/x/app/main.js", &json));
        assert!(!is_web_request(&Method::GET, "/login", &json));
        assert!(!is_web_request(&Method::GET, "/login", &HeaderMap::new()));
        let mut refused = HeaderMap::new();
        refused.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html;q=0, application/json"),
        );
        assert!(!is_web_request(&Method::GET, "/login", &refused));
    }

    async fn fetch(router: &Router, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::empty()).unwrap_or_default();
        match router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    fn mounted() -> Router {
        let api = Router::new()
            .route("/events", get(|| async { "api events" }))
            .fallback(flash_http::error::route_fallback);
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        mount(api, &HttpLayersConfig::new("flash"), &metrics)
    }

    #[tokio::test]
    async fn serves_the_page_assets_and_leaves_the_api_alone() {
        let app = mounted();
        let accept_html = ("accept", "text/html");

        let page = fetch(&app, "/", &[]).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(page.headers()[header::CACHE_CONTROL], REVALIDATE);
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(page.headers().contains_key("x-request-id"), "common layers");
        let etag = page.headers()[header::ETAG]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let again = fetch(&app, "/", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let deep = fetch(&app, "/checkout/123", &[accept_html]).await;
        assert_eq!(deep.status(), StatusCode::OK);
        assert_eq!(deep.headers()[header::CONTENT_TYPE], HTML);

        let js = fetch(&app, &format!("/assets/{}/app/main.js", version()), &[]).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(js.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let old = fetch(&app, "/assets/000000000000/app/app.css", &[]).await;
        assert_eq!(old.status(), StatusCode::OK);
        assert_eq!(old.headers()[header::CONTENT_TYPE], CSS);
        assert_eq!(old.headers()[header::CACHE_CONTROL], REVALIDATE);
        let missing = fetch(&app, "/assets/x/app/nope.js", &[]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let api = fetch(&app, "/events", &[accept_html]).await;
        assert_eq!(api.status(), StatusCode::OK);
        let body = to_bytes(api.into_body(), 1 << 20).await.unwrap_or_default();
        assert_eq!(&body[..], b"api events");

        let api_404 = fetch(&app, "/events/nope/deeper", &[accept_html]).await;
        assert_eq!(api_404.status(), StatusCode::NOT_FOUND);
        let body = to_bytes(api_404.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&body).contains("Cannot GET"));

        let not_html = fetch(&app, "/nowhere", &[("accept", "application/json")]).await;
        assert_eq!(not_html.status(), StatusCode::NOT_FOUND);
    }
}
