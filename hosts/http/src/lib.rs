//! `flash-http`: the axum router of Flash Tickets — gateway and api routes with the legacy paths,
//! status codes, JSON field names and error bodies; DTO validation; error rendering; Socket.IO
//! `/queue`; `/live`, `/ready`, `/health`, `/metrics`, `/openapi.json`.
//!
//! The same [`Router`] is served by the pods and `flash up` ([`server::serve`]) and by Lambda
//! (`lambda_http::run`).
//! This crate must not depend on any adapter crate: it sees ports and handlers only.

pub mod body;
pub mod dto;
pub mod error;
pub mod layers;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod server;
pub mod socket;
pub mod state;
pub mod validate;

/// The metrics live in `flash-metrics`, where the runtime reaches them too.
pub use flash_metrics as metrics;

use axum::Router;
use flash_core::ports::QueueNotifier;
use layers::HttpLayersConfig;
use state::{AppState, OpsState};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The routes of `state.services` plus the operations endpoints, with the common layers
/// (request id, logging, metrics, CORS, body limit, security headers) and legacy 404s.
pub fn app(state: AppState, layers: &HttpLayersConfig) -> Router {
    let metrics = state.ops.metrics.clone();
    let router = routes_for(&state).with_state(state);
    layers::apply_common_layers(router, layers, &metrics)
}

/// [`app`] plus the Socket.IO namespace `/queue` (gateway instances). The returned tasks push
/// admissions and room summaries; abort them on shutdown.
pub fn app_with_socket(
    state: AppState,
    layers: &HttpLayersConfig,
    notifier: Arc<dyn QueueNotifier>,
) -> (Router, Vec<JoinHandle<()>>) {
    let metrics = state.ops.metrics.clone();
    let (io_layer, _io, tasks) = socket::layer(state.clone(), notifier);
    let router = routes_for(&state).with_state(state).layer(io_layer);
    (layers::apply_common_layers(router, layers, &metrics), tasks)
}

/// The operations endpoints alone, with the common layers: a host without an API (the payment
/// processor's health port).
pub fn ops_app(ops: OpsState, layers: &HttpLayersConfig) -> Router {
    let metrics = ops.metrics.clone();
    let router = with_fallbacks(ops::ops_routes()).with_state(ops);
    layers::apply_common_layers(router, layers, &metrics)
}

fn routes_for(state: &AppState) -> Router<AppState> {
    let mut r = ops::ops_routes();
    if state.ops.services.gateway {
        r = r.merge(routes::gateway_routes());
    }
    if state.ops.services.api {
        r = r.merge(routes::api_routes());
    }
    with_fallbacks(r)
}

/// Legacy 404 / 405 bodies for what no route matches.
fn with_fallbacks<S: Clone + Send + Sync + 'static>(r: Router<S>) -> Router<S> {
    r.fallback(error::route_fallback)
        .method_not_allowed_fallback(error::route_fallback)
}

/// A response's body, whole (tests).
#[cfg(test)]
pub(crate) async fn body_bytes(response: axum::response::Response) -> axum::body::Bytes {
    use http_body_util::BodyExt;
    response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}
