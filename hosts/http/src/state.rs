//! What every route and socket handler shares.

use crate::metrics::Metrics;
use axum::extract::FromRef;
use flash_core::budget::Budgets;
use flash_core::ports::HealthCheck;
use flash_handlers::{Handlers, Work};
use std::sync::Arc;
use std::time::Duration;

/// Which route groups a router serves (the all-in-one host serves both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services {
    /// Auth, queue, Socket.IO.
    pub gateway: bool,
    /// Events, orders, payments.
    pub api: bool,
}

impl Services {
    pub const ALL: Services = Services {
        gateway: true,
        api: true,
    };
    pub const GATEWAY: Services = Services {
        gateway: true,
        api: false,
    };
    pub const API: Services = Services {
        gateway: false,
        api: true,
    };
}

/// Database statistics for the legacy `db_*` metrics, where a database exists.
#[async_trait::async_trait]
pub trait DbStatsSource: Send + Sync {
    /// `(metric name, help, type, value)` rows, legacy names.
    async fn db_stats(&self) -> Vec<(&'static str, &'static str, &'static str, f64)>;
}

/// What the operations endpoints (`/live`, `/ready`, `/health`, `/metrics`, `/openapi.json`)
/// read. Every host has it; the payment processor serves nothing else.
#[derive(Clone)]
pub struct OpsState {
    /// The background work, for the clock and the shop and queue figures of `/metrics`.
    pub work: Arc<Work>,
    pub metrics: Metrics,
    /// Dependencies `/ready` and `/health` check.
    pub health: Arc<Vec<Arc<dyn HealthCheck>>>,
    pub db_stats: Option<Arc<dyn DbStatsSource>>,
    /// What the process keeps for clients, within its budgets (SPEC §11), for `/metrics`.
    pub budgets: Budgets,
    pub services: Services,
    /// Per-check timeout of `/ready` and `/health`.
    pub health_timeout: Duration,
    pub started: std::time::Instant,
}

/// What the API routes and the Socket.IO namespace share: their handlers and the operations
/// state.
#[derive(Clone)]
pub struct AppState {
    pub handlers: Arc<Handlers>,
    pub ops: OpsState,
    /// Socket.IO position refresh period.
    pub ws_refresh: Duration,
}

impl FromRef<AppState> for OpsState {
    fn from_ref(state: &AppState) -> OpsState {
        state.ops.clone()
    }
}
