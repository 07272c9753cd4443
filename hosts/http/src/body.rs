//! Extractors that turn every kind of bad input into a legacy 4xx body, never a 500 or axum's
//! plain-text rejections.
//!
//! Bodies are read up to [`BodyLimit`] (set per request by
//! [`crate::layers::apply_common_layers`], default [`DEFAULT_BODY_LIMIT`]) and parsed as JSON
//! whatever the `Content-Type` (legacy clients are not consistent about it).

use crate::error::ApiError;
use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

/// 64 KiB, the documented request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The body limit for this request, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// A JSON object body; an empty body is an empty object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonObject(pub Map<String, Value>);

/// The raw body bytes (for HMAC verification), under the same limit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawBody(pub Bytes);

/// A single path parameter that must be a UUID; the rejection names the parameter
/// (`id must be a UUID`). For routes with several parameters it takes the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathUuid(pub Uuid);

/// The query string deserialized into `T`; a bad query is a legacy 400.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiQuery<T>(pub T);

/// The query string as a JSON object of strings (a repeated key becomes an array), ready for
/// [`crate::validate::Validator`]. Never coerced: `?qty=1` is the string `"1"`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryMap(pub Map<String, Value>);

/// Reads the whole body, refusing more than the request's [`BodyLimit`] with a 413.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large());
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = BytesMut::new();
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::payload_too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(err) => {
                tracing::debug!(error = %err, "failed to read request body");
                return Err(ApiError::bad_request("Failed to read request body")
                    .with_code("body_read_failed"));
            }
        }
    }
}

/// Parses a body as a JSON object: blank → empty map; bad JSON or a non-object → 400.
pub fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")
            .with_code("body_not_object")),
        Err(err) => Err(ApiError::bad_request(format!("Malformed JSON body: {err}"))
            .with_code("malformed_json")),
    }
}

/// `<name> must be a UUID` (400, message array) unless `raw` is a hyphenated UUID.
pub fn parse_path_uuid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    crate::validate::parse_uuid(raw)
        .ok_or_else(|| ApiError::validation(vec![format!("{name} must be a UUID")]))
}

/// Deserializes the query string of `parts` into `T`, or a 400 naming the problem.
pub fn parse_query<T: DeserializeOwned>(parts: &Parts) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .map_err(|rej| {
            ApiError::bad_request(format!("Invalid query string: {}", rej.body_text()))
                .with_code("invalid_query")
        })
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        parse_json_object(&bytes).map(JsonObject)
    }
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_body(req).await.map(RawBody)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathUuid {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Path(params)) => params,
            Err(rej) => return Err(path_rejection(rej)),
        };
        match params.last() {
            Some((name, raw)) => parse_path_uuid(name, raw).map(PathUuid),
            None => {
                tracing::error!("PathUuid on a route without a path parameter");
                Err(ApiError::internal())
            }
        }
    }
}

/// The one mapping of a path rejection: what a client sent (a percent-decoded id that is not
/// UTF-8, say `%ff`) is the 400 any other malformed id gets; only a route wired without a path
/// parameter is a server error.
fn path_rejection(rej: PathRejection) -> ApiError {
    match rej {
        PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
            PathErrorKind::InvalidUtf8InPathParam { key } => {
                ApiError::validation(vec![format!("{key} must be a UUID")])
            }
            kind => ApiError::validation(vec![format!("Invalid URL: {kind}")]),
        },
        other => {
            tracing::error!(rejection = %other.body_text(), "PathUuid on a route without a path parameter");
            ApiError::internal()
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts).map(ApiQuery)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> = parse_query(parts)?;
        let mut map = Map::new();
        for (key, value) in pairs {
            match map.get_mut(&key) {
                Some(Value::Array(values)) => values.push(Value::String(value)),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, Value::String(value)]);
                }
                None => {
                    map.insert(key, Value::String(value));
                }
            }
        }
        Ok(QueryMap(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::{get, post};
    use serde::Deserialize;
    use serde_json::json;
    use tower::ServiceExt;

    #[derive(Deserialize)]
    struct Page {
        limit: u32,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/json",
                post(|JsonObject(m): JsonObject| async move { axum::Json(Value::Object(m)) }),
            )
            .route(
                "/raw",
                post(|RawBody(b): RawBody| async move { b.len().to_string() }),
            )
            .route(
                "/events/{id}",
                get(|PathUuid(id): PathUuid| async move { id.to_string() }),
            )
            .route(
                "/page",
                get(|ApiQuery(p): ApiQuery<Page>| async move { p.limit.to_string() }),
            )
            .route(
                "/query",
                get(|QueryMap(m): QueryMap| async move { axum::Json(Value::Object(m)) }),
            )
    }

    async fn send(req: HttpRequest<Body>) -> (StatusCode, Value, String) {
        let response = app().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let bytes = crate::body_bytes(response).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        )
    }

    fn post_body(uri: &str, body: impl Into<Body>) -> HttpRequest<Body> {
        HttpRequest::post(uri)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap_or_default()
    }

    fn get_req(uri: &str) -> HttpRequest<Body> {
        HttpRequest::get(uri)
            .body(Body::empty())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn json_object_accepts_objects_and_empty_bodies() {
        let (status, body, _) = send(post_body("/json", r#"{"qty":1}"#)).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"qty": 1})));
        let (status, body, _) = send(post_body("/json", "  \n")).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }

    #[tokio::test]
    async fn malformed_and_non_object_bodies_are_400() {
        let (status, body, _) = send(post_body("/json", r#"{"qty":"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "Bad Request");
        assert_eq!(body["code"], "malformed_json");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Malformed JSON body: "), "{message}");

        let (status, body, _) = send(post_body("/json", "[1,2]")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "Request body must be a JSON object");
    }

    #[tokio::test]
    async fn oversized_bodies_are_413_json_with_or_without_content_length() {
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(DEFAULT_BODY_LIMIT));
        let (status, body, _) = send(post_body("/json", big.clone())).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["statusCode"], 413);
        assert_eq!(body["code"], "payload_too_large");

        // Chunked: no Content-Length, the limit applies while streaming.
        let chunks: Vec<Result<Bytes, std::io::Error>> = big
            .as_bytes()
            .chunks(4096)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = Body::from_stream(futures::stream::iter(chunks));
        let (status, body, _) = send(post_body("/raw", stream)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["statusCode"], 413);

        let exact = "a".repeat(DEFAULT_BODY_LIMIT);
        let (status, _, text) = send(post_body("/raw", exact)).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "65536"));
    }

    #[tokio::test]
    async fn a_smaller_limit_from_the_extension_applies() {
        let mut req = post_body("/raw", "0123456789");
        req.extensions_mut().insert(BodyLimit(4));
        let (status, _, _) = send(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn path_uuid_names_the_parameter() {
        let id = "3f2b7e0c-1d4a-4c8e-9f10-2a3b4c5d6e7f";
        let (status, _, text) = send(get_req(&format!("/events/{id}"))).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, id));
        let (status, body, _) = send(get_req("/events/not-a-uuid")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], json!(["id must be a UUID"]));
    }

    #[tokio::test]
    async fn a_path_id_that_is_not_utf8_is_400_not_500() {
        for raw in ["%ff", "%C3%28", "abc%80def"] {
            let (status, body, _) = send(get_req(&format!("/events/{raw}"))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}");
            assert_eq!(body["message"], json!(["id must be a UUID"]), "{raw}");
        }
    }

    #[tokio::test]
    async fn bad_query_is_400_json() {
        let (status, _, text) = send(get_req("/page?limit=5")).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "5"));
        let (status, body, _) = send(get_req("/page?limit=many")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_query");
    }

    #[tokio::test]
    async fn query_map_keeps_strings_and_collects_repeats() {
        let (_, body, _) = send(get_req("/query?ticketId=abc&n=1&n=2")).await;
        assert_eq!(body, json!({"ticketId": "abc", "n": ["1", "2"]}));
    }

    #[test]
    fn parse_helpers() {
        assert_eq!(
            parse_path_uuid("orderId", "123").map_err(|e| e.body()["message"].clone()),
            Err(json!(["orderId must be a UUID"]))
        );
        assert!(parse_json_object(b"").is_ok_and(|m| m.is_empty()));
        assert!(parse_json_object(b"null").is_err());
    }
}
