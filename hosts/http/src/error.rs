//! The one place where errors become HTTP responses.
//!
//! Every handler error is classified once ([`Classify`]); this module maps the [`ErrorKind`] to a
//! status code and renders the legacy NestJS body
//! `{"statusCode":N,"message":"…" | ["…"],"error":"<reason phrase>","code":"<snake_case>"}`.
//! `code` is our addition; legacy clients ignore it. Internal error text never reaches a client.
#![warn(clippy::wildcard_enum_match_arm)]

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flash_core::{Classify, ErrorKind};
use serde::Serialize;
use std::fmt;

/// The legacy `message` field: one text, or the class-validator list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Message {
    Text(String),
    List(Vec<String>),
}

/// An error on its way to the client, already mapped to a status and a public message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: Message,
    code: &'static str,
    /// Nest omits `error` for the bare guard 401 and for unhandled 500s.
    with_reason: bool,
    retry_after_secs: Option<u64>,
}

/// Legacy NestJS error body plus `code`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    #[schema(example = 400)]
    status_code: u16,
    /// A text, or the list of validation messages (class-validator wording).
    #[schema(value_type = Message)]
    message: &'a Message,
    /// HTTP reason phrase; absent on the bare 401 and on 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Bad Request")]
    error: Option<&'a str>,
    /// Stable snake_case error code.
    #[schema(example = "validation_failed")]
    code: &'a str,
}

impl ApiError {
    /// A text error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: Message::Text(message.into()),
            code,
            with_reason: true,
            retry_after_secs: None,
        }
    }

    /// Maps a classified handler error. Internal errors are logged here (once) with their real
    /// text and rendered as the generic 500; unavailability is logged as a warning.
    pub fn from_classified<E: Classify + fmt::Display + ?Sized>(err: &E) -> Self {
        let code = err.code();
        let status = match err.kind() {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict if err.unprocessable() => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::SoldOut => StatusCode::BAD_REQUEST,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => {
                tracing::warn!(code, error = %err, "dependency unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::Internal => {
                tracing::error!(code, error = %err, "internal error");
                return ApiError::internal().with_code(code);
            }
        };
        let message = match err.field_messages() {
            Some(list) if !list.is_empty() => Message::List(list),
            Some(_) | None => Message::Text(err.public_message()),
        };
        let retry_after_secs = (status == StatusCode::TOO_MANY_REQUESTS).then(|| {
            err.retry_after_ms()
                .map_or(1, |ms| ms.div_ceil(1000).max(1))
        });
        ApiError {
            status,
            message,
            code,
            with_reason: true,
            retry_after_secs,
        }
    }

    /// 400 with the class-validator message list.
    pub fn validation(messages: Vec<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: Message::List(messages),
            code: "validation_failed",
            with_reason: true,
            retry_after_secs: None,
        }
    }

    /// 400 with one text message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The JWT guard's 401: `{"message":"Unauthorized","statusCode":401}` (no `error` field).
    pub fn unauthorized() -> Self {
        ApiError {
            with_reason: false,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
        }
    }

    /// The roles guard's 403.
    pub fn forbidden_resource() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden resource")
    }

    /// 404 `Cannot GET /x` for a route that does not exist.
    pub fn route_not_found(method: &Method, path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("Cannot {method} {path}"),
        )
    }

    /// 413 for a body over the configured limit.
    pub fn payload_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body is too large",
        )
    }

    /// 503 with the given message (e.g. `Service temporarily unavailable`).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 429 with a `Retry-After` of at least one second.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// The Nest 500 body `{"statusCode":500,"message":"Internal server error"}`. The caller logs
    /// the cause; nothing of it is rendered.
    pub fn internal() -> Self {
        ApiError {
            with_reason: false,
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            )
        }
    }

    /// Replaces the snake_case `code`.
    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &Message {
        &self.message
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The JSON body exactly as rendered.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.wire()).unwrap_or(serde_json::Value::Null)
    }

    fn wire(&self) -> ErrorBody<'_> {
        ErrorBody {
            status_code: self.status.as_u16(),
            message: &self.message,
            error: if self.with_reason {
                self.status.canonical_reason()
            } else {
                None
            },
            code: self.code,
        }
    }
}

impl<E: Classify + fmt::Display> From<E> for ApiError {
    fn from(err: E) -> Self {
        ApiError::from_classified(&err)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(t) => f.write_str(t),
            Message::List(l) => f.write_str(&l.join("; ")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match serde_json::to_vec(&self.wire()) {
            Ok(body) => body,
            Err(_) => br#"{"statusCode":500,"message":"Internal server error"}"#.to_vec(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Router fallback (and method-not-allowed fallback): Nest's `Cannot <METHOD> <url>` 404.
#[allow(clippy::unused_async, reason = "an axum handler")]
pub async fn route_fallback(method: Method, uri: Uri) -> ApiError {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    ApiError::route_not_found(&method, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug)]
    struct Fake {
        kind: ErrorKind,
        fields: Option<Vec<String>>,
        retry_ms: Option<u64>,
        unprocessable: bool,
    }

    impl Fake {
        fn of(kind: ErrorKind) -> Self {
            Fake {
                kind,
                fields: None,
                retry_ms: None,
                unprocessable: false,
            }
        }
    }

    impl fmt::Display for Fake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("secret database detail")
        }
    }

    impl Classify for Fake {
        fn kind(&self) -> ErrorKind {
            self.kind
        }
        fn code(&self) -> &'static str {
            "fake_code"
        }
        fn public_message(&self) -> String {
            "Public text".into()
        }
        fn field_messages(&self) -> Option<Vec<String>> {
            self.fields.clone()
        }
        fn retry_after_ms(&self) -> Option<u64> {
            self.retry_ms
        }
        fn unprocessable(&self) -> bool {
            self.unprocessable
        }
    }

    async fn render(err: ApiError) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = crate::body_bytes(response).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, body)
    }

    #[test]
    fn every_kind_maps_to_its_legacy_status() {
        let cases = [
            (ErrorKind::Invalid, 400, "Bad Request"),
            (ErrorKind::Unauthorized, 401, "Unauthorized"),
            (ErrorKind::Forbidden, 403, "Forbidden"),
            (ErrorKind::NotFound, 404, "Not Found"),
            (ErrorKind::Conflict, 409, "Conflict"),
            (ErrorKind::SoldOut, 400, "Bad Request"),
            (ErrorKind::RateLimited, 429, "Too Many Requests"),
            (ErrorKind::Unavailable, 503, "Service Unavailable"),
        ];
        for (kind, status, reason) in cases {
            let err = ApiError::from_classified(&Fake::of(kind));
            assert_eq!(err.status().as_u16(), status, "{kind:?}");
            assert_eq!(
                err.body(),
                json!({"statusCode": status, "message": "Public text", "error": reason, "code": "fake_code"}),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn unprocessable_conflict_is_422() {
        let err = ApiError::from_classified(&Fake {
            unprocessable: true,
            ..Fake::of(ErrorKind::Conflict)
        });
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.body()["error"], "Unprocessable Entity");
    }

    #[test]
    fn internal_never_leaks_its_text() {
        let err = ApiError::from(Fake::of(ErrorKind::Internal));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            err.body(),
            json!({"statusCode": 500, "message": "Internal server error", "code": "fake_code"})
        );
        assert!(!err.body().to_string().contains("secret"));
    }

    #[test]
    fn field_messages_render_as_an_array() {
        let err = ApiError::from_classified(&Fake {
            fields: Some(vec!["qty must be a positive number".into()]),
            ..Fake::of(ErrorKind::Invalid)
        });
        assert_eq!(
            err.body()["message"],
            json!(["qty must be a positive number"])
        );
        let empty = ApiError::from_classified(&Fake {
            fields: Some(vec![]),
            ..Fake::of(ErrorKind::Invalid)
        });
        assert_eq!(empty.body()["message"], "Public text");
    }

    #[tokio::test]
    async fn rate_limited_sets_retry_after_in_whole_seconds() {
        let err = ApiError::from_classified(&Fake {
            retry_ms: Some(1500),
            ..Fake::of(ErrorKind::RateLimited)
        });
        let (status, headers, _) = render(err).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "2");

        let (_, headers, _) =
            render(ApiError::from_classified(&Fake::of(ErrorKind::RateLimited))).await;
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let (_, headers, _) = render(ApiError::rate_limited("slow down", 0)).await;
        assert_eq!(headers[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn transport_errors_have_the_legacy_shapes() {
        let (status, headers, body) = render(ApiError::unauthorized()).await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        assert_eq!(
            body,
            json!({"message": "Unauthorized", "statusCode": 401, "code": "unauthorized"})
        );

        let (_, _, body) = render(ApiError::forbidden_resource()).await;
        assert_eq!(
            body,
            json!({"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403, "code": "forbidden"})
        );

        let (_, _, body) =
            render(ApiError::validation(vec!["eventId must be a UUID".into()])).await;
        assert_eq!(
            body,
            json!({"message": ["eventId must be a UUID"], "error": "Bad Request", "statusCode": 400, "code": "validation_failed"})
        );

        let (status, _, body) = render(ApiError::payload_too_large()).await;
        assert_eq!(status, 413);
        assert_eq!(body["error"], "Payload Too Large");

        let (status, _, body) =
            render(ApiError::unavailable("Service temporarily unavailable")).await;
        assert_eq!(status, 503);
        assert_eq!(body["message"], "Service temporarily unavailable");

        let (status, _, body) = render(ApiError::bad_request(
            "ticketId query parameter is required",
        ))
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "ticketId query parameter is required");
    }

    #[tokio::test]
    async fn fallback_names_method_and_url() {
        let err = route_fallback(Method::GET, Uri::from_static("/x?y=1")).await;
        assert_eq!(
            err.body(),
            json!({"message": "Cannot GET /x?y=1", "error": "Not Found", "statusCode": 404, "code": "route_not_found"})
        );
        let err = route_fallback(Method::DELETE, Uri::from_static("/auth/login")).await;
        assert_eq!(err.body()["message"], "Cannot DELETE /auth/login");
    }
}
