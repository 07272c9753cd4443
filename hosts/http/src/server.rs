//! The HTTP server of the long-running hosts (the pods and `flash up`): axum's router on hyper
//! with what `axum::serve` leaves out (SPEC §11):
//!
//! - a header-read timeout (slowloris), with hyper's timer; the body-read timeout is the
//!   router's (see [`crate::layers::apply_common_layers`]);
//! - a shutdown that returns as soon as the requests in flight are answered: idle keep-alive
//!   connections are closed at once, busy ones after their current response, upgraded ones
//!   (WebSockets) are left to their owner.

use axum::Router;
use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Default of `HTTP_READ_TIMEOUT_MS`: how long headers, and then a body, may take to arrive.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an accept error (file descriptors exhausted, say) is retried.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How [`serve`] treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// A client that has not sent a whole request head within this is disconnected.
    pub read_timeout: Duration,
    /// Whether requests carry the socket peer as `ConnectInfo<SocketAddr>` (the client address
    /// of `flash up`); behind a load balancer the address comes from `X-Forwarded-For` instead.
    pub peer_is_client: bool,
}

/// Serves `router` on `listener` until `stop` resolves, then waits for the requests in flight.
/// Each connection speaks HTTP/1.1 or HTTP/2, with upgrades (Socket.IO's WebSockets).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    stop: impl Future<Output = ()>,
) {
    let read_timeout = options.read_timeout;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer_is_client = options.peer_is_client;
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            if peer_is_client {
                req.extensions_mut().insert(ConnectInfo(peer));
            }
            req
        });
        let conn = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
