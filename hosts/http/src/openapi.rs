//! The OpenAPI document served at `GET /openapi.json`, generated (utoipa) from the typed bodies
//! of [`crate::dto`] and the `#[utoipa::path]` of each route.
//!
//! One document describes both services; each operation's `x-service` says which one serves it
//! (`gateway`, `api`, or `common` for every service) and [`document_for`] cuts the per-service
//! view. [`paths`] lets a router test check that every route is documented and vice versa.

use crate::dto;
use crate::error::{ErrorBody, Message};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The error responses, each a legacy [`ErrorBody`]: a component under its name
/// ([`ToResponse`]) that an operation lists by its status ([`IntoResponses`]).
macro_rules! error_responses {
    ($($name:ident($status:literal): $description:literal),+ $(,)?) => {
        $(
            #[doc = $description]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build();
                    let response = ResponseBuilder::new()
                        .description($description)
                        .content("application/json", content)
                        .build();
                    (stringify!($name), response.into())
                }
            }

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    let reference = Ref::from_response_name(stringify!($name));
                    BTreeMap::from([($status.to_string(), reference.into())])
                }
            }
        )+
    };
}

error_responses! {
    BadRequest(400): "Invalid input: validation messages, malformed JSON, non-UUID id, or a business rule.",
    Unauthorized(401): "Missing, invalid or expired credentials.",
    Forbidden(403): "Authenticated but not allowed (`Forbidden resource`).",
    NotFound(404): "Not found.",
    Conflict(409): "Conflicts with the current state.",
    PayloadTooLarge(413): "Body over 64 KiB.",
    TooManyRequests(429): "Rate limited; retry after `Retry-After` seconds.",
    Unavailable(503): "A dependency is down; retry later.",
}

/// The responses of `A` and of `B` together, for an operation to list as one.
pub struct Both<A, B>(PhantomData<(A, B)>);

impl<A: IntoResponses, B: IntoResponses> IntoResponses for Both<A, B> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = A::responses();
        all.extend(B::responses());
        all
    }
}

/// What every API operation may answer: rate limited, or a dependency down.
pub type Refusals = Both<TooManyRequests, Unavailable>;

/// What an operation with a JSON body may answer about the body: invalid, or over the limit.
pub type BadBody = Both<BadRequest, PayloadTooLarge>;

/// The bearer scheme the guarded operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flash Tickets",
        version = "1.0.0",
        description = "Flash-sale ticketing back end, wire-compatible with the legacy NestJS API. `x-service` tells which service serves an operation (gateway :3000, api :4000, common = every service). Errors use the legacy body (see `Error`); a request id is echoed in `x-request-id`.",
    ),
    paths(
        crate::routes::register, crate::routes::register_admin, crate::routes::login,
        crate::routes::refresh, crate::routes::logout,
        crate::routes::enqueue, crate::routes::queue_status, crate::routes::enter,
        crate::routes::leave, crate::routes::queue_healthz,
        crate::routes::list_events, crate::routes::create_event, crate::routes::list_all_events,
        crate::routes::timeline, crate::routes::get_event, crate::routes::update_event,
        crate::routes::delete_event,
        crate::routes::place_order, crate::routes::list_orders, crate::routes::get_order,
        crate::routes::request_payment, crate::routes::payment_callback,
        crate::ops::live, crate::ops::metrics, crate::ops::ready, crate::ops::health,
        crate::ops::openapi,
    ),
    components(
        schemas(ErrorBody, Message, dto::EventStatus, dto::OrderStatus, dto::PaymentStatus,
            dto::TicketState, dto::QueueMode),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
            TooManyRequests, Unavailable),
    ),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "queue"), (name = "events"), (name = "orders"),
        (name = "payments"), (name = "ops")),
)]
struct ApiDoc;

/// The whole document, generated once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|err| {
            tracing::error!(error = %err, "the OpenAPI document does not serialize");
            Value::Null
        })
    })
}

/// Every documented operation as (`METHOD`, path template), e.g. (`GET`, `/events/{id}`), in
/// document order. Templates use `{name}`, the same syntax as axum 0.8 routes.
pub fn paths() -> Vec<(String, String)> {
    operations(document())
        .map(|(method, path, _)| (method.to_ascii_uppercase(), path.to_owned()))
        .collect()
}

/// The document restricted to the operations of `service` (`gateway` or `api`) plus the common
/// ones; components are kept whole.
pub fn document_for(service: &str) -> Value {
    let mut doc = document().clone();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut() {
            if let Value::Object(ops) = item {
                ops.retain(|method, op| {
                    !METHODS.contains(&method.as_str())
                        || matches!(
                            op.get("x-service").and_then(Value::as_str),
                            Some(s) if s == service || s == "common"
                        )
                });
            }
        }
        paths.retain(|_, item| {
            item.as_object()
                .is_some_and(|ops| ops.keys().any(|k| METHODS.contains(&k.as_str())))
        });
    }
    doc
}

fn operations(doc: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    doc.get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::iter)
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(Map::iter)
                .filter(|(method, _)| METHODS.contains(&method.as_str()))
                .map(move |(method, op)| (method.as_str(), path.as_str(), op))
        })
}

/// SPEC §2: every route of both services and the common ones, as axum templates. The document
/// and the router are both checked against it.
pub const SPEC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/register"),
    ("POST", "/auth/register/admin"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("POST", "/queue/enqueue"),
    ("GET", "/queue/status"),
    ("POST", "/queue/enter"),
    ("POST", "/queue/leave"),
    ("GET", "/queue/healthz"),
    ("GET", "/events"),
    ("POST", "/events"),
    ("GET", "/events/admin/all"),
    ("GET", "/events/admin/timeline"),
    ("GET", "/events/{id}"),
    ("PATCH", "/events/{id}"),
    ("DELETE", "/events/{id}"),
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/{id}"),
    ("POST", "/payments"),
    ("POST", "/payments/callback"),
    ("GET", "/live"),
    ("GET", "/ready"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn success_status(method: &str, path: &str) -> &'static str {
        match (method, path) {
            (
                "POST",
                "/auth/register" | "/auth/register/admin" | "/auth/logout" | "/queue/leave",
            ) => "200",
            ("POST", _) => "201",
            _ => "200",
        }
    }

    #[test]
    fn document_is_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn every_route_is_documented_exactly() {
        let documented: BTreeSet<(String, String)> = paths().into_iter().collect();
        let expected: BTreeSet<(String, String)> = SPEC_ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, expected);
        assert_eq!(paths().len(), SPEC_ROUTES.len(), "no duplicates");
    }

    #[test]
    fn operations_have_their_status_service_and_error_body() {
        let ids: Vec<&str> = operations(document())
            .filter_map(|(_, _, op)| op["operationId"].as_str())
            .collect();
        assert_eq!(
            ids.len(),
            SPEC_ROUTES.len(),
            "every operation has an operationId"
        );
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            ids.len(),
            "unique ids"
        );
        for (method, path, op) in operations(document()) {
            let method = method.to_ascii_uppercase();
            let expected = success_status(&method, path);
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            let successes: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
            assert_eq!(successes, [expected], "{method} {path}");
            assert!(
                matches!(op["x-service"].as_str(), Some("gateway" | "api" | "common")),
                "{method} {path}"
            );
            if op.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("400"),
                    "{method} {path} documents 400"
                );
                assert!(
                    responses.contains_key("413"),
                    "{method} {path} documents 413"
                );
            }
        }
    }

    #[test]
    fn snake_case_bodies_and_special_headers() {
        let doc = document();
        let schema = |name: &str| &doc["components"]["schemas"][name]["properties"];
        assert!(schema("CreateEventRequest").get("starts_at").is_some());
        assert!(schema("UpdateEventRequest").get("total_qty").is_some());
        assert!(schema("CreateOrderRequest").get("event_id").is_some());
        assert!(schema("Event").get("startsAt").is_some());
        let headers = |path: &str| -> Vec<(String, bool)> {
            doc["paths"][path]["post"]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "header")
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    (name, p["required"] == true)
                })
                .collect()
        };
        assert_eq!(
            headers("/orders"),
            [
                ("Idempotency-Key".to_owned(), true),
                ("X-Gate-Token".to_owned(), false)
            ]
        );
        assert_eq!(
            headers("/payments/callback"),
            [
                ("X-Signature".to_owned(), false),
                ("X-Signature-Timestamp".to_owned(), false)
            ]
        );
        assert!(
            doc["paths"]["/orders"]["post"]["responses"]
                .get("422")
                .is_some()
        );
    }

    /// Every `$ref` points at something that exists.
    #[test]
    fn references_resolve() {
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
            }
        }
        let doc = document();
        let mut refs = Vec::new();
        walk(doc, &mut refs);
        assert!(refs.len() > 20);
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or(r);
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn per_service_views() {
        let gateway = document_for("gateway");
        let api = document_for("api");
        assert!(gateway["paths"].get("/auth/login").is_some());
        assert!(gateway["paths"].get("/orders").is_none());
        assert!(gateway["paths"].get("/metrics").is_some());
        assert!(api["paths"].get("/orders").is_some());
        assert!(api["paths"].get("/queue/enqueue").is_none());
        assert!(api["paths"].get("/health").is_some());
    }
}
