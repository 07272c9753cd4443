//! Background work on a timer: queue promotion, hold expiry, outbox relay, payment timeouts.
//!
//! A run never overlaps the previous one (it is awaited inline), missed ticks are delayed rather
//! than bunched, and cancellation stops the loop between runs (a run in progress finishes; the
//! [`crate::shutdown::TaskSet`] grace period bounds it).

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

/// While a task keeps failing, its error is repeated at error level at most this often; the
/// failures in between go to debug, so an outage of a dependency does not flood the logs.
const REPEAT_ERROR_EVERY: Duration = Duration::from_secs(60);

/// Runs `f` now and then every `interval` until `token` is cancelled, and, given a `kick`, also
/// promptly after `kick.notify_one()`.
///
/// Kicks coalesce: a burst of `notify_one` calls causes at most two runs, the one the first kick
/// wakes and one more for the kicks that arrived after it (`Notify` keeps a single permit), so a
/// slot freed during a run is never missed and a storm of frees does not queue up work. After a
/// kicked run the next timed run is a full `interval` later. Signal with `notify_one`, not
/// `notify_waiters`, which is lost while a run is going on.
pub fn spawn_periodic<F, Fut, T, E>(
    name: impl Into<String>,
    interval: Duration,
    kick: Option<Arc<Notify>>,
    token: CancellationToken,
    f: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let name = name.into();
    tokio::spawn(async move { run_periodic(&name, interval, kick.as_deref(), token, f).await })
}

/// The loop behind [`spawn_periodic`], for callers that spawn
/// it themselves (e.g. in a [`crate::shutdown::TaskSet`]).
pub async fn run_periodic<F, Fut, T, E>(
    name: &str,
    interval: Duration,
    kick: Option<&Notify>,
    token: CancellationToken,
    f: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    // tokio panics on a zero period; configuration refuses zero, this guards hand-built values.
    let period = interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streak = FailureStreak::default();
    debug!(
        task = name,
        period_ms = millis(period),
        "periodic task started"
    );
    loop {
        tokio::select! {
            biased;
            () = token.cancelled() => break,
            _ = ticker.tick() => {}
            () = kicked(kick) => ticker.reset(),
        }
        match f().await {
            Ok(_) => streak.succeeded(name),
            Err(e) => streak.failed(name, &e),
        }
    }
    debug!(task = name, "periodic task stopped");
}

async fn kicked(kick: Option<&Notify>) {
    match kick {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Consecutive failures of one task, so each failure is logged once and an outage is logged as
/// one story (first error, periodic reminders, recovery) rather than one line per tick.
#[derive(Default)]
struct FailureStreak {
    count: u64,
    last_error_log: Option<Instant>,
}

impl FailureStreak {
    fn failed(&mut self, name: &str, e: &dyn Display) {
        self.count += 1;
        let now = Instant::now();
        let due = self
            .last_error_log
            .is_none_or(|at| now.duration_since(at) >= REPEAT_ERROR_EVERY);
        if due {
            error!(task = name, consecutive_failures = self.count, error = %e, "periodic task failed");
            self.last_error_log = Some(now);
        } else {
            debug!(task = name, consecutive_failures = self.count, error = %e, "periodic task failed again");
        }
    }

    fn succeeded(&mut self, name: &str) {
        if self.count > 0 {
            info!(
                task = name,
                failures = self.count,
                "periodic task recovered"
            );
        }
        self.count = 0;
        self.last_error_log = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Probe {
        runs: AtomicUsize,
        running: AtomicUsize,
        max_running: AtomicUsize,
    }

    impl Probe {
        async fn run(&self, takes: Duration) -> Result<(), String> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(takes).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            // Every other run fails: failures must not stop the loop.
            if n.is_multiple_of(2) {
                Err(format!("run {n} failed"))
            } else {
                Ok(())
            }
        }

        fn runs(&self) -> usize {
            self.runs.load(Ordering::SeqCst)
        }
    }

    /// A periodic task of `interval` (and `kick`) whose every run takes `takes`: its probe, its
    /// cancellation token and its handle.
    fn start(
        interval: Duration,
        kick: Option<Arc<Notify>>,
        takes: Duration,
    ) -> (Arc<Probe>, CancellationToken, JoinHandle<()>) {
        let probe = Arc::new(Probe::default());
        let token = CancellationToken::new();
        let p = probe.clone();
        let handle = spawn_periodic("probe", interval, kick, token.clone(), move || {
            let p = p.clone();
            async move { p.run(takes).await }
        });
        (probe, token, handle)
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_once_then_every_interval_despite_failures_until_cancelled() {
        let (probe, token, handle) = start(Duration::from_secs(1), None, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(probe.runs(), 1, "the first run is immediate");
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(probe.runs(), 4);
        token.cancel();
        handle.await.unwrap();
        let after = probe.runs();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(probe.runs(), after, "no run after cancellation");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_never_overlaps_the_next() {
        let (probe, token, handle) =
            start(Duration::from_millis(100), None, Duration::from_millis(350));
        tokio::time::sleep(Duration::from_secs(2)).await;
        token.cancel();
        handle.await.unwrap();
        assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
        // Back to back at 350 ms each: missed ticks are delayed, not replayed in a burst.
        let runs = probe.runs();
        assert!((5..=7).contains(&runs), "{runs} runs in 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kick_runs_promptly_and_kicks_coalesce() {
        let kick = Arc::new(Notify::new());
        let (probe, token, handle) = start(
            Duration::from_secs(60),
            Some(kick.clone()),
            Duration::from_millis(10),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(probe.runs(), 1);

        kick.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            probe.runs(),
            2,
            "a kick runs the task long before the interval"
        );

        for _ in 0..5 {
            kick.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            probe.runs(),
            4,
            "five kicks in a row cause two runs, not five"
        );

        token.cancel();
        handle.await.unwrap();
    }

    #[test]
    fn a_failure_streak_logs_once_then_reminds() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = FailureStreak::default();
            s.failed("t", &"down");
            let first = s.last_error_log;
            tokio::time::advance(Duration::from_secs(1)).await;
            s.failed("t", &"down");
            assert_eq!(
                s.last_error_log, first,
                "second failure is not repeated at error"
            );
            tokio::time::advance(REPEAT_ERROR_EVERY).await;
            s.failed("t", &"down");
            assert_ne!(s.last_error_log, first, "a reminder after a minute");
            assert_eq!(s.count, 3);
            s.succeeded("t");
            assert_eq!(s.count, 0);
            assert!(s.last_error_log.is_none());
        });
    }
}
