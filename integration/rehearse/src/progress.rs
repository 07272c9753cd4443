//! The live display while the sale runs: buyers finished out of all, stage counts, request
//! rate and errors, refreshed four times a second. Hidden when stdout is not a terminal.

use crate::stats::Recorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub struct Progress {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(rec: Arc<Recorder>, buyers: u64, enabled: bool) -> Progress {
        if !enabled {
            return Progress {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let bar = ProgressBar::new(buyers);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:24}] {pos}/{len} done  {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let (mut last_n, mut last_t) = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let s = &rec.stages;
                let n = rec.requests.load(Ordering::Relaxed);
                let dt = last_t.elapsed().as_secs_f64().max(0.001);
                let rate = (n.saturating_sub(last_n)) as f64 / dt;
                (last_n, last_t) = (n, Instant::now());
                shown.set_position(s.finished.load(Ordering::Relaxed));
                shown.set_message(format!(
                    "arrived {} queued {} admitted {} ordered {} paid {} sold-out {} pay-failed {} | {:.0} req/s | errors {}",
                    s.arrived.load(Ordering::Relaxed),
                    s.queued.load(Ordering::Relaxed),
                    s.admitted.load(Ordering::Relaxed),
                    s.ordered.load(Ordering::Relaxed),
                    s.paid.load(Ordering::Relaxed),
                    s.sold_out.load(Ordering::Relaxed),
                    s.failed.load(Ordering::Relaxed),
                    rate,
                    rec.error_count.load(Ordering::Relaxed),
                ));
                shown.tick();
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    pub fn finish(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}
