//! Connection handling of the long-running hosts' server (SPEC §11), over raw TCP: an answer that
//! never read the body keeps the connection usable, bodies that cannot be read are refused with
//! `Connection: close`, slow headers and bodies time out, and shutdown does not wait for idle
//! keep-alive connections.

use axum::Router;
use axum::routing::{get, post};
use flash_http::layers::{HttpLayersConfig, apply_common_layers};
use flash_http::metrics::Metrics;
use flash_http::server::{ServeOptions, serve};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Generous: every wait below ends on an event; this only bounds a broken server.
const DEADLINE: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_millis(300);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

/// `/refuse` answers 401 without looking at the body, as an unauthenticated POST does.
async fn server() -> Server {
    let metrics = Metrics::new().expect("metrics");
    let cfg = HttpLayersConfig {
        body_limit: 256 * 1024,
        read_timeout: READ_TIMEOUT,
        ..HttpLayersConfig::new("api")
    };
    let router: Router = Router::new()
        .route(
            "/refuse",
            post(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no") }),
        )
        .route("/hello", get(|| async { "hello" }));
    let router = apply_common_layers(router, &cfg, &metrics);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let options = ServeOptions {
        read_timeout: READ_TIMEOUT,
        peer_is_client: true,
    };
    let done = tokio::spawn(serve(listener, router, options, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        done,
    }
}

/// Appends what `s` reads next to `buf` (a panic saying `what` after [`DEADLINE`]); `None` when
/// the server closed or reset the connection.
async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, what: &str) -> Option<()> {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut chunk))
        .await
        .expect(what)
        .ok()?;
    if n == 0 {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}

/// One response: (status, lower-cased head, body). `None` when the server closed first.
async fn response(s: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, &mut buf, "the server neither answered nor closed").await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < head_end + length {
        read_more(s, &mut buf, "body").await?;
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    Some((status, head, body))
}

impl Server {
    /// A new connection on which `bytes` have been sent.
    async fn send(&self, bytes: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s
    }

    /// `bytes`, sent on a new connection, are answered `status` with `Connection: close`.
    async fn refuses(&self, bytes: &[u8], status: u16) {
        let mut s = self.send(bytes).await;
        let (got, head, _) = response(&mut s).await.unwrap_or_else(|| panic!("{status}"));
        assert_eq!(got, status);
        assert!(head.contains("connection: close"), "{head}");
    }
}

/// `POST /refuse` declaring a body of `length` bytes, of which it sends `sent`.
fn declared(length: usize, sent: &str) -> Vec<u8> {
    format!("POST /refuse HTTP/1.1\r\nhost: t\r\ncontent-length: {length}\r\n\r\n{sent}")
        .into_bytes()
}

fn hello() -> &'static [u8] {
    b"GET /hello HTTP/1.1\r\nhost: t\r\n\r\n"
}

#[tokio::test]
async fn an_answer_that_never_read_the_body_keeps_the_connection_usable() {
    let srv = server().await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Larger than one read of the socket: hyper does not drain what it has not buffered.
    let body = "x".repeat(200 * 1024);
    for _ in 0..3 {
        let req = format!(
            "POST /refuse HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, head, _) = response(&mut s)
            .await
            .expect("401 on a kept-alive connection");
        assert_eq!(status, 401);
        assert!(!head.contains("connection: close"), "{head}");
    }
    s.write_all(hello()).await.unwrap();
    let (status, _, body) = response(&mut s)
        .await
        .expect("the connection still serves requests");
    assert_eq!((status, body.as_str()), (200, "hello"));
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_with_connection_close() {
    let srv = server().await;
    // Declared far too large: refused before a byte of the body is read.
    srv.refuses(&declared(3_000_000, ""), 413).await;

    // Chunked, so only reading tells: read to its end (within the drain limit), then refused,
    // so the client that sent it whole reads the 413 instead of a reset.
    let chunk = "y".repeat(200 * 1024);
    let req = format!(
        "POST /refuse HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    srv.refuses(req.as_bytes(), 413).await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let srv = server().await;
    srv.refuses(&declared(100, "{\"a\":"), 408).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let srv = server().await;
    let mut s = srv
        .send(b"GET /hello HTTP/1.1\r\nhost: t\r\nx-slow: ")
        .await;
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .expect("the server kept a slowloris connection open");
    // Closed (EOF or reset), possibly after a 408.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_keep_alive_connections() {
    let mut srv = server().await;
    let mut idle = srv.send(hello()).await;
    assert_eq!(response(&mut idle).await.expect("hello").0, 200);

    let _ = srv.stop.take().expect("stop").send(());
    tokio::time::timeout(DEADLINE, &mut srv.done)
        .await
        .expect("shutdown waited for an idle connection")
        .unwrap();
    assert!(
        response(&mut idle).await.is_none(),
        "the idle connection stayed open"
    );
}
