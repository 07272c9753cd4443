//! The monitoring timeline's sampler: once a second, just after the second begins, this
//! process's counters and the shared figures go into the timeline (what is recorded, and how,
//! is [`flash_handlers::timeline`]'s business).

use crate::shutdown::TaskSet;
use flash_handlers::Work;
use flash_handlers::timeline::{HostCounters, SampleScope};
use flash_metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Into the second, so that every instance's sample of second `s` lands in `s` even with a
/// little scheduling delay, and a reader of `s` after it ends sees every instance's share.
const OFFSET_MS: i64 = 100;

/// This process's HTTP counters, as the timeline wants them.
pub fn host_counters(metrics: &Metrics) -> HostCounters {
    let t = metrics.http_totals();
    HostCounters {
        requests: t.requests,
        client_errors: t.client_errors,
        server_errors: t.server_errors,
        latency: t.latency,
    }
}

/// Samples into the timeline every second until shutdown.
pub fn spawn_sampler(tasks: &mut TaskSet, work: Arc<Work>, metrics: Metrics, scope: SampleScope) {
    let token = tasks.token();
    tasks.spawn("timeline", async move {
        let mut failing = false;
        loop {
            let ms = work.now().millis();
            let wait = 1000 - (ms - OFFSET_MS).rem_euclid(1000);
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(1000));
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let sampled = work.timeline.sample(host_counters(&metrics), scope).await;
            metrics.queue_arrivals_total.inc_by(sampled.arrivals);
            match sampled.recorded {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("timeline sampling recovered");
                }
                Ok(()) => {}
                // Logged once per outage, not once a second.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "timeline sample not recorded");
                }
                Err(_) => {}
            }
        }
    });
}
