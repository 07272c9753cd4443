//! API Gateway REST (v1), HTTP API (v2) and ALB events through the Lambda HTTP handler get the
//! same answers as the pods' router given the same request — stage prefixes, query strings,
//! base64 bodies and CORS included — on PostgreSQL, Redis and a local SQS.

mod common;

use axum::body::Body;
use base64::Engine;
use common::World;
use flash_lambda::Kind;
use flash_lambda::http::HttpFunction;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
enum Format {
    /// REST API, stage `prod` (lambda_http puts `/prod` in front of the path).
    RestV1,
    /// HTTP API, `$default` stage.
    HttpV2,
    /// HTTP API on a named stage: `rawPath` starts with `/live`.
    HttpV2Staged,
    /// Application Load Balancer, body base64-encoded.
    Alb,
}

const FORMATS: [Format; 4] = [
    Format::RestV1,
    Format::HttpV2,
    Format::HttpV2Staged,
    Format::Alb,
];

/// A request, written once and turned into each event format or into a plain HTTP request.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    headers: &'a [(&'a str, &'a str)],
    body: Option<Value>,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

fn query_string(q: &[(&str, &str)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query as a JSON object, each value as `value` renders it.
fn query_object(q: &[(&str, &str)], value: impl Fn(&str) -> Value) -> Value {
    Value::Object(q.iter().map(|(k, v)| (k.to_string(), value(v))).collect())
}

fn event(format: Format, r: &Req<'_>) -> String {
    let body = r.body.as_ref().map(|b| b.to_string());
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let mut e = match format {
        Format::RestV1 => fixture("apigw_v1.json"),
        Format::HttpV2 | Format::HttpV2Staged => fixture("apigw_v2.json"),
        Format::Alb => fixture("alb.json"),
    };
    match format {
        Format::RestV1 => {
            e["path"] = json!(r.path);
            e["httpMethod"] = json!(r.method);
            e["requestContext"]["path"] = json!(format!("/prod{}", r.path));
            e["requestContext"]["httpMethod"] = json!(r.method);
            for (k, v) in &headers {
                e["headers"][k] = json!(v);
                e["multiValueHeaders"][k] = json!([v]);
            }
            if !r.query.is_empty() {
                e["queryStringParameters"] = query_object(r.query, |v| json!(v));
                e["multiValueQueryStringParameters"] = query_object(r.query, |v| json!([v]));
            }
            e["body"] = json!(body);
        }
        Format::HttpV2 | Format::HttpV2Staged => {
            let staged = matches!(format, Format::HttpV2Staged);
            let raw = if staged {
                format!("/live{}", r.path)
            } else {
                r.path.to_owned()
            };
            e["rawPath"] = json!(raw);
            e["rawQueryString"] = json!(query_string(r.query));
            e["requestContext"]["http"]["method"] = json!(r.method);
            e["requestContext"]["http"]["path"] = json!(raw);
            if staged {
                e["requestContext"]["stage"] = json!("live");
                e["routeKey"] = json!("ANY /{proxy+}");
                e["requestContext"]["routeKey"] = json!("ANY /{proxy+}");
            }
            for (k, v) in &headers {
                e["headers"][k.to_lowercase()] = json!(v);
            }
            if !r.query.is_empty() {
                e["queryStringParameters"] = query_object(r.query, |v| json!(v));
            }
            if let Some(b) = &body {
                e["body"] = json!(b);
            }
        }
        Format::Alb => {
            e["path"] = json!(r.path);
            e["httpMethod"] = json!(r.method);
            for (k, v) in &headers {
                e["headers"][k.to_lowercase()] = json!(v);
            }
            e["queryStringParameters"] = query_object(r.query, |v| json!(v));
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(body.unwrap_or_default().as_bytes());
            e["body"] = json!(encoded);
            e["isBase64Encoded"] = json!(true);
        }
    }
    e.to_string()
}

fn plain(r: &Req<'_>) -> http::Request<Body> {
    let uri = if r.query.is_empty() {
        r.path.to_owned()
    } else {
        format!("{}?{}", r.path, query_string(r.query))
    };
    let mut b = http::Request::builder().method(r.method).uri(uri);
    for (k, v) in r.headers {
        b = b.header(*k, *v);
    }
    match &r.body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap()
}

/// What must be equal: status, the headers a client reads, and the body (JSON compared as JSON).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

async fn answer(response: axum::response::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = [
        "content-type",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-credentials",
        "retry-after",
    ]
    .iter()
    .filter_map(|h| {
        response
            .headers()
            .get(*h)
            .map(|v| (h.to_string(), v.to_str().unwrap_or("?").to_owned()))
    })
    .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn via_lambda(app: &HttpFunction, format: Format, r: &Req<'_>) -> Answer {
    let request = lambda_http::request::from_str(&event(format, r))
        .unwrap_or_else(|e| panic!("{format:?} event does not parse: {e}"));
    answer(app.handle(request).await.unwrap()).await
}

async fn via_router(app: &HttpFunction, r: &Req<'_>) -> Answer {
    answer(app.router().clone().oneshot(plain(r)).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_format_gets_the_pod_routers_answer() {
    let world = World::new("events").await;
    let app = HttpFunction::new(world.function(Kind::Http)).expect("the HTTP function");
    let origin = [("origin", "https://www.highgarden.cloud")];
    let cases = [
        Req {
            method: "GET",
            path: "/events",
            query: &[],
            headers: &origin,
            body: None,
        },
        Req {
            method: "GET",
            path: "/live",
            query: &[],
            headers: &[],
            body: None,
        },
        Req {
            method: "GET",
            path: "/nope",
            query: &[("x", "1")],
            headers: &[],
            body: None,
        },
        Req {
            method: "GET",
            path: "/queue/status",
            query: &[("ticketId", "not-a-uuid")],
            headers: &[],
            body: None,
        },
        Req {
            method: "POST",
            path: "/auth/login",
            query: &[],
            headers: &origin,
            body: Some(json!({"userId": "nobody01", "password": "wrongpass1"})),
        },
        Req {
            method: "POST",
            path: "/auth/register",
            query: &[],
            headers: &[],
            body: Some(json!({"userId": "x", "password": ""})),
        },
        Req {
            method: "OPTIONS",
            path: "/auth/login",
            query: &[],
            headers: &[
                ("origin", "https://www.highgarden.cloud"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,authorization",
                ),
            ],
            body: None,
        },
    ];
    for r in &cases {
        let want = via_router(&app, r).await;
        for format in FORMATS {
            let got = via_lambda(&app, format, r).await;
            assert_eq!(got, want, "{format:?} {} {}", r.method, r.path);
        }
    }
    // The cases are not trivially equal: they cover several statuses.
    let mut statuses: Vec<u16> = Vec::new();
    for r in &cases {
        statuses.push(via_router(&app, r).await.status);
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert!(statuses.len() >= 4, "statuses covered: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_registers_by_alb_logs_in_by_rest_api_and_reads_orders_by_http_api() {
    let world = World::new("formats").await;
    let app = HttpFunction::new(world.function(Kind::Http)).expect("the HTTP function");
    let credentials = json!({"userId": "lambda01", "password": "testtest"});
    let register = Req {
        method: "POST",
        path: "/auth/register",
        query: &[],
        headers: &[],
        body: Some(credentials.clone()),
    };
    let a = via_lambda(&app, Format::Alb, &register).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let login = Req {
        method: "POST",
        path: "/auth/login",
        query: &[],
        headers: &[],
        body: Some(credentials),
    };
    let a = via_lambda(&app, Format::RestV1, &login).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let token = a.body["accessToken"]
        .as_str()
        .expect("access token")
        .to_owned();
    let bearer = format!("Bearer {token}");
    let orders = Req {
        method: "GET",
        path: "/orders",
        query: &[],
        headers: &[("authorization", &bearer)],
        body: None,
    };
    let a = via_lambda(&app, Format::HttpV2Staged, &orders).await;
    assert_eq!((a.status, a.body.clone()), (200, json!([])));
    // Without the token the same request is refused: the header really went through.
    let anonymous = Req {
        headers: &[],
        ..orders
    };
    assert_eq!(
        via_lambda(&app, Format::HttpV2, &anonymous).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_does_not_serve_metrics_publicly() {
    let world = World::new("metrics").await;
    let app = HttpFunction::new(world.function(Kind::Http)).expect("the HTTP function");
    let metrics = Req {
        method: "GET",
        path: "/metrics",
        query: &[],
        headers: &[],
        body: None,
    };
    assert_eq!(
        via_router(&app, &metrics).await.status,
        200,
        "the router has it"
    );
    for format in FORMATS {
        let got = via_lambda(&app, format, &metrics).await;
        assert_eq!(got.status, 404, "{format:?}: {got:?}");
    }
}
