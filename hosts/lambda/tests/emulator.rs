//! The whole journey through the Lambda functions under `cargo lambda watch` (a real Lambda
//! runtime emulator), on PostgreSQL and Redis on loopback and SQS from a local `moto_server`:
//! login → enqueue → READY by polling → order → payment → the pay and results functions consume
//! the real SQS messages → PAID; then a duplicate delivery changes nothing and a poison message
//! ends in the dead-letter queue.
//!
//! The emulator runs with `--only-lambda-apis` and the test starts the functions' binaries
//! itself (each polls its own runtime API, `…/.rt/<function>`): `cargo lambda watch` would
//! otherwise build them with `cargo build`, which waits for the build lock that the running
//! `cargo test` holds. Lambda's SQS event source mapping is played by [`EventSourceMapping`]:
//! receive, invoke through the emulator's invoke API, delete what was not reported failed.

mod common;

use common::{EventSourceMapping, World, eventually, psql_value};
use flash_adapter_sqs::dlq_name;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `cargo lambda watch --only-lambda-apis` on `port`, from the workspace root.
fn emulator(port: u16) -> Proc {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let child = Command::new("cargo-lambda")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--disable-cors",
            "-A",
            "127.0.0.1",
        ])
        .args(["-P", &port.to_string()])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "cargo-lambda runs; install it with: pip install cargo-lambda (bash .ci/test does)",
        );
    Proc(child)
}

/// Starts a function binary against the emulator; returns it once it printed its init time.
fn function(world: &World, port: u16, name: &str, binary: &str) -> (Proc, f64) {
    let mut child = Command::new(binary)
        .envs(&world.vars)
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/{name}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    // Read its stdout on a thread (and keep draining it, so it never blocks on a full pipe);
    // the ready line must come within a minute.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = format!("{name} ready: init ");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(ms) = line.strip_prefix(&ready) {
                let _ = tx.send(
                    ms.trim_end_matches(" ms")
                        .parse::<f64>()
                        .unwrap_or(f64::NAN),
                );
            }
        }
    });
    let proc = Proc(child);
    let init_ms = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{name} did not report ready within 60 s ({e})"));
    (proc, init_ms)
}

/// The function URL: paths relative to it, on the shared JSON client.
struct Client {
    http: flash_host_testkit::Http,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        self.http.call(method, url, token, headers, body).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.http
            .post(format!("{}{path}", self.base), token, body)
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.http.get(format!("{}{path}", self.base), token).await
    }

    async fn login(&self, user: &str) -> String {
        self.http.login(&self.base, user).await
    }
}

/// Invokes `function` through the emulator's invoke API.
async fn invoke(http: &reqwest::Client, port: u16, function: &str, event: &Value) -> Value {
    let resp = http
        .post(format!(
            "http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations"
        ))
        .json(event)
        .send()
        .await
        .expect("invoke");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{function} invocation: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Plays Lambda's event source mapping of `queue` onto `function` until `stop`.
fn map_queue(
    world: &World,
    port: u16,
    queue: String,
    function: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Value>> {
    let esm = EventSourceMapping::new(world.bus(), &queue);
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut delivered = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some((event, receipts)) = esm.receive(Duration::from_secs(1)).await {
                let response = invoke(&http, port, function, &event).await;
                esm.settle(&receipts, &response).await;
                delivered.extend(event["Records"].as_array().cloned().unwrap_or_default());
            }
        }
        delivered
    })
}

/// The two mappings of the SAM template: requests → pay, results → results.
fn map_payment_queues(
    world: &World,
    port: u16,
    stop: &Arc<AtomicBool>,
) -> (
    tokio::task::JoinHandle<Vec<Value>>,
    tokio::task::JoinHandle<Vec<Value>>,
) {
    let request_queue = world.request_queue().to_owned();
    let result_queue = world.result_queue().to_owned();
    (
        map_queue(world, port, request_queue, "flash-lambda-pay", stop.clone()),
        map_queue(
            world,
            port,
            result_queue,
            "flash-lambda-results",
            stop.clone(),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_journey_runs_on_the_functions_under_the_lambda_emulator() {
    let world = World::new("emulator").await;
    let port = free_port();
    let _emulator = emulator(port);
    eventually(
        "the emulator to listen",
        Duration::from_secs(30),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await;
    let mut running = Vec::new();
    for (name, binary) in [
        ("flash-lambda-http", env!("CARGO_BIN_EXE_flash-lambda-http")),
        ("flash-lambda-pay", env!("CARGO_BIN_EXE_flash-lambda-pay")),
        (
            "flash-lambda-results",
            env!("CARGO_BIN_EXE_flash-lambda-results"),
        ),
        (
            "flash-lambda-sweeper",
            env!("CARGO_BIN_EXE_flash-lambda-sweeper"),
        ),
    ] {
        let (proc, init_ms) = function(&world, port, name, binary);
        eprintln!("{name}: init under the emulator (debug build) {init_ms:.1} ms");
        running.push(proc);
    }

    // The queues exist before the mappings poll them (in AWS the template creates them).
    let bus = world.bus();
    bus.declare(world.request_queue()).await.unwrap();
    bus.declare(world.result_queue()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, results) = map_payment_queues(&world, port, &stop);

    let api = Client {
        http: flash_host_testkit::Http::new(),
        base: format!("http://127.0.0.1:{port}/lambda-url/flash-lambda-http"),
    };
    // An admin puts an event on sale.
    let (s, v) = api
        .post(
            "/auth/register/admin",
            None,
            json!({"userId": "boss01", "password": "testtest", "adminSecret": "admin-secret"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let admin = api.login("boss01").await;
    let (s, e) = api
        .post(
            "/events",
            Some(&admin),
            json!({"name": "Lambda sale", "starts_at": "2026-12-01T10:00:00.000Z",
                   "ends_at": "2026-12-01T12:00:00.000Z", "total_qty": 10,
                   "max_per_user": 2, "price": 1000}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let event = e["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/events/{event}"),
            Some(&admin),
            &[],
            Some(json!({"status": "ONSALE"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // A buyer: login → enqueue → READY by polling (promotion runs on status reads) → enter.
    let (s, v) = api
        .post(
            "/auth/register",
            None,
            json!({"userId": "buyer01", "password": "testtest"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let buyer = api.login("buyer01").await;
    let (s, t) = api
        .post("/queue/enqueue", Some(&buyer), json!({"eventId": event}))
        .await;
    assert_eq!(s, 201, "{t}");
    let ticket = t["ticketId"].as_str().unwrap().to_owned();
    let gate = eventually("READY by polling", Duration::from_secs(15), || async {
        let (_, st) = api
            .get(&format!("/queue/status?ticketId={ticket}"), None)
            .await;
        (st["state"] == "READY").then(|| st["gateToken"].as_str().unwrap().to_owned())
    })
    .await;
    let (s, v) = api
        .post(
            "/queue/enter",
            Some(&buyer),
            json!({"ticketId": ticket, "gateToken": gate}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("entered")), "{v}");

    // Order, pay; the request goes out on SQS, the pay and results functions take it from there.
    let (s, order) = api
        .call(
            reqwest::Method::POST,
            "/orders",
            Some(&buyer),
            &[("Idempotency-Key", "lambda-order-1")],
            Some(json!({"event_id": event, "qty": 2})),
        )
        .await;
    assert_eq!(
        (s, order["status"].as_str()),
        (201, Some("HOLD")),
        "{order}"
    );
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let (s, p) = api
        .post(
            "/payments",
            Some(&buyer),
            json!({"orderId": order_id, "method": "MOCK"}),
        )
        .await;
    assert_eq!((s, p["status"].as_str()), (201, Some("REQ")), "{p}");
    eventually("PAID", Duration::from_secs(30), || async {
        assert!(
            !requests.is_finished() && !results.is_finished(),
            "an event source mapping stopped (its error is in the output above)"
        );
        let (_, o) = api.get(&format!("/orders/{order_id}"), Some(&buyer)).await;
        (o["status"] == "PAID").then_some(())
    })
    .await;
    // The public reads are up to a second old (the event memory's TTL).
    let event_before = eventually(
        "the two paid tickets sold",
        Duration::from_secs(20),
        || async {
            let (_, e) = api.get(&format!("/events/{event}"), None).await;
            (e["soldQty"] == 2).then_some(e)
        },
    )
    .await;

    // A duplicate delivery of both messages changes nothing.
    let mut delivered_requests = Vec::new();
    let mut delivered_results = Vec::new();
    stop.store(true, Ordering::Relaxed);
    delivered_requests.extend(requests.await.unwrap());
    delivered_results.extend(results.await.unwrap());
    assert_eq!(
        delivered_requests.len(),
        1,
        "one payment request: {delivered_requests:?}"
    );
    assert_eq!(
        delivered_results.len(),
        1,
        "one payment result: {delivered_results:?}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, results) = map_payment_queues(&world, port, &stop);
    let http = reqwest::Client::new();
    for (function, records) in [
        ("flash-lambda-pay", &delivered_requests),
        ("flash-lambda-results", &delivered_results),
    ] {
        // The same records again, as SQS would redeliver them after a lost acknowledgement.
        let response = invoke(&http, port, function, &json!({"Records": records})).await;
        assert_eq!(
            response["batchItemFailures"],
            json!([]),
            "{function}: {response}"
        );
    }
    let (_, o) = api.get(&format!("/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(o["status"], "PAID");
    let payments = psql_value(
        &world.db.name,
        &format!(
            "SELECT count(*) || ':' || string_agg(status::text, ',') FROM payments WHERE order_id = '{order_id}'"
        ),
    );
    assert_eq!(payments, "1:OK", "exactly one payment, OK");

    // A poison message: dead-lettered by the pay function, not retried, not lost.
    bus.client()
        .send_message()
        .queue_url(bus.queue_url(world.request_queue()).await.unwrap())
        .message_body("{not json")
        .send()
        .await
        .unwrap();
    let dlq = EventSourceMapping::new(world.bus(), &dlq_name(world.request_queue()));
    let dead = eventually(
        "the poison message in the dead-letter queue",
        Duration::from_secs(20),
        || async { dlq.receive(Duration::from_secs(1)).await },
    )
    .await;
    assert_eq!(dead.0["Records"][0]["body"], "{not json");
    stop.store(true, Ordering::Relaxed);
    let requests_again = requests.await.unwrap();
    let results_again = results.await.unwrap();
    assert_eq!(
        requests_again.len(),
        1,
        "only the poison message reached the pay function: {requests_again:?}"
    );
    assert_eq!(
        results_again,
        Vec::<Value>::new(),
        "the duplicate request published no second result"
    );
    assert_eq!(
        EventSourceMapping::depth(&bus, world.result_queue()).await,
        0
    );
    assert_eq!(
        EventSourceMapping::depth(&bus, world.request_queue()).await,
        0
    );
    assert_eq!(
        EventSourceMapping::depth(&bus, &dlq_name(world.result_queue())).await,
        0
    );
    let (_, event_after) = api.get(&format!("/events/{event}"), None).await;
    assert_eq!(
        event_before, event_after,
        "the duplicates changed the event"
    );

    // The scheduled function finds nothing left to do.
    let report = invoke(
        &http,
        port,
        "flash-lambda-sweeper",
        &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    .await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["messagesRelayed"], 0, "{report}");
}
