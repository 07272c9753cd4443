//! Graceful shutdown: the signal, a cancellation handle shared by every task, and a set of named
//! background tasks awaited with a grace period.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::{error, info, warn};

/// Resolves on SIGTERM (Kubernetes, systemd) or Ctrl-C.
///
/// If a handler cannot be installed the failure is logged and that source is ignored; resolving
/// at once instead would shut the process down the moment it started.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received; shutting down"),
        () = terminate => info!("SIGTERM received; shutting down"),
    }
}

/// The process-wide "stop now" switch. Cheap to clone; every clone triggers the same token.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this shutdown triggers; cancelling the child does not trigger it.
    pub fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// The root token itself (for APIs such as `axum::serve(..).with_graceful_shutdown`).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once triggered.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Triggers this shutdown when [`shutdown_signal`] fires.
    pub fn trigger_on_signal(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown_signal() => this.trigger(),
                // Triggered from elsewhere: stop listening so the task does not outlive it.
                () = this.cancelled() => {}
            }
        })
    }
}

/// How the background tasks ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Stopped on their own within the grace period.
    pub finished: Vec<String>,
    pub panicked: Vec<String>,
    /// Still running at the end of the grace period; aborted.
    pub overran: Vec<String>,
}

impl ShutdownReport {
    /// Every task stopped cleanly.
    pub fn is_clean(&self) -> bool {
        self.panicked.is_empty() && self.overran.is_empty()
    }
}

/// Named background tasks (promotion, relay, consumers) stopped together.
#[derive(Debug)]
pub struct TaskSet {
    shutdown: Shutdown,
    tasks: Vec<(String, JoinHandle<()>)>,
    /// Tasks with nothing to finish (push loops): aborted at shutdown, never waited for.
    abortable: Vec<JoinHandle<()>>,
}

impl TaskSet {
    pub fn new(shutdown: &Shutdown) -> Self {
        TaskSet {
            shutdown: shutdown.clone(),
            tasks: Vec::new(),
            abortable: Vec::new(),
        }
    }

    /// A token for a task of this set: cancelled when the shutdown triggers.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.child_token()
    }

    /// Spawns `task`, which must return soon after [`TaskSet::token`] (or the shutdown) is
    /// cancelled.
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name.into(), tokio::spawn(task)));
    }

    /// Adds a task spawned elsewhere (for example by [`crate::periodic::spawn_periodic`]).
    pub fn adopt(&mut self, name: impl Into<String>, handle: JoinHandle<()>) {
        self.tasks.push((name.into(), handle));
    }

    /// Adds a task that holds no work a shutdown must let finish (it only pushes notices, say):
    /// it is aborted when the shutdown starts, so the shutdown does not wait for it.
    pub fn adopt_abortable(&mut self, handle: JoinHandle<()>) {
        self.abortable.push(handle);
    }

    /// Tasks waited for at shutdown.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Triggers the shutdown, then waits up to `grace` (in total, not per task) for every task;
    /// the ones still running are aborted. Panics and overruns are logged here, once.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.shutdown.trigger();
        for handle in &self.abortable {
            handle.abort();
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut report = ShutdownReport::default();
        for (name, mut handle) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => report.finished.push(name),
                Ok(Err(e)) if e.is_panic() => {
                    error!(task = %name, "background task panicked");
                    report.panicked.push(name);
                }
                // Aborted elsewhere: it is not running any more, which is all shutdown needs.
                Ok(Err(_cancelled)) => report.finished.push(name),
                Err(_elapsed) => {
                    handle.abort();
                    warn!(
                        task = %name,
                        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                        "background task did not stop within the grace period; aborted"
                    );
                    report.overran.push(name);
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_stop_panic_or_overrun_and_are_reported_by_name() {
        let shutdown = Shutdown::new();
        let mut set = TaskSet::new(&shutdown);

        let token = set.token();
        set.spawn("polite", async move { token.cancelled().await });
        set.spawn("broken", async { panic!("boom") });
        set.spawn("stubborn", std::future::pending());
        let adopted = tokio::spawn(std::future::ready(()));
        set.adopt("adopted", adopted);
        let pusher = tokio::spawn(std::future::pending());
        let pusher_abort = pusher.abort_handle();
        set.adopt_abortable(pusher);
        assert_eq!(set.len(), 4);

        let report = set.shutdown(Duration::from_secs(5)).await;
        tokio::task::yield_now().await;
        assert!(
            pusher_abort.is_finished(),
            "an abortable task outlived the shutdown"
        );
        assert!(shutdown.is_triggered());
        assert_eq!(report.finished, ["polite", "adopted"]);
        assert_eq!(report.panicked, ["broken"]);
        assert_eq!(report.overran, ["stubborn"]);
        assert!(!report.is_clean());
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_period_is_shared_not_per_task() {
        let shutdown = Shutdown::new();
        let mut set = TaskSet::new(&shutdown);
        for i in 0..3 {
            set.spawn(format!("stuck-{i}"), std::future::pending());
        }
        let started = tokio::time::Instant::now();
        let report = set.shutdown(Duration::from_secs(2)).await;
        assert_eq!(report.overran.len(), 3);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn child_tokens_follow_the_trigger_but_not_the_reverse() {
        let shutdown = Shutdown::new();
        let child = shutdown.child_token();
        let other = shutdown.child_token();
        child.cancel();
        assert!(!shutdown.is_triggered());
        assert!(!other.is_cancelled());
        shutdown.trigger();
        shutdown.cancelled().await;
        assert!(other.is_cancelled());
        // A listener on a shutdown triggered from elsewhere ends instead of lingering.
        shutdown.trigger_on_signal().await.unwrap();
    }
}

/// How many worker threads a binary's runtime has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One: a command that runs once (migrations).
    One,
    /// One per core: a server.
    PerCore,
}

/// A binary's `main`: runs `main` on a Tokio runtime; a runtime that cannot start, or an error
/// `main` returns, is printed to stderr and exits with status 1.
pub fn run_main<E: std::fmt::Display>(
    threads: Threads,
    main: impl std::future::Future<Output = Result<(), E>>,
) {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(main) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
