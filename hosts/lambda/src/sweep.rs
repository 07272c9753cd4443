//! The scheduled function: the pods' periodic work, once per schedule tick — hold expiry,
//! payment timeouts, the outbox relay and a promotion pass.

use crate::function::Function;
use flash_runtime::jobs::{expire_holds_once, promote_once, relay_outbox, time_out_payments_once};
use serde::Serialize;

/// What one run did; returned as the function's result (visible in its logs and in tests).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub holds_expired: usize,
    pub payments_timed_out: usize,
    pub messages_relayed: usize,
    pub tickets_admitted: usize,
    /// One line per step that failed; the others still ran.
    pub errors: Vec<String>,
}

fn record(errors: &mut Vec<String>, step: &str, r: Result<usize, flash_core::StoreError>) -> usize {
    r.unwrap_or_else(|e| {
        tracing::warn!(step, error = %e, "sweep step failed");
        errors.push(format!("{step}: {e}"));
        0
    })
}

/// Sweeps in passes `SWEEP_EVERY_MS` apart until `SWEEP_WINDOW_MS` has passed (one pass when
/// the window is 0); the counts add up, the errors are those of the last pass.
pub async fn sweep_window(f: &Function) -> SweepReport {
    let started = std::time::Instant::now();
    let mut total = SweepReport::default();
    loop {
        let pass = sweep(f).await;
        total.holds_expired += pass.holds_expired;
        total.payments_timed_out += pass.payments_timed_out;
        total.messages_relayed += pass.messages_relayed;
        total.tickets_admitted += pass.tickets_admitted;
        total.errors = pass.errors;
        let every = f.config.sweep.sweep_every_ms;
        if started.elapsed() + every > f.config.sweep.sweep_window_ms {
            return total;
        }
        tokio::time::sleep(every).await;
    }
}

/// One pass: runs every step, even after one fails.
pub async fn sweep(f: &Function) -> SweepReport {
    let mut errors = Vec::new();
    let h = &f.app.work;
    let holds_expired = record(&mut errors, "hold-expiry", expire_holds_once(h).await);
    let payments_timed_out = record(
        &mut errors,
        "payment-timeouts",
        time_out_payments_once(h).await,
    );
    let relayed = relay_outbox(
        &*f.app.outbox,
        &*f.app.ports.bus,
        &*f.app.ports.clock,
        &f.app.metrics,
        &f.config.app.settings.payments.request_queue,
    )
    .await;
    let messages_relayed = record(&mut errors, "outbox-relay", relayed);
    let tickets_admitted = record(
        &mut errors,
        "promotion",
        promote_once(h, &f.app.metrics).await,
    );
    SweepReport {
        holds_expired,
        payments_timed_out,
        messages_relayed,
        tickets_admitted,
        errors,
    }
}
