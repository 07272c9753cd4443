//! `flash-fuzz`: fuzzes a running Flash Tickets server and exits non-zero on any failure.

use clap::Parser;
use flash_fuzz::{FuzzConfig, run};
use std::process::ExitCode;
use std::time::Duration;

/// Black-box HTTP fuzz of every operation in the target's `/openapi.json` (SPEC §11), then
/// one honest purchase.
#[derive(Debug, Parser)]
#[command(name = "flash-fuzz", version)]
struct Args {
    /// The gateway, or the all-in-one `flash up`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// The api service, when it is a separate server (pods).
    #[arg(long)]
    api: Option<String>,
    /// Fuzz requests to send.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Server process id whose VmRSS is sampled before and after.
    #[arg(long)]
    pid: Option<u32>,
    /// Allowed RSS growth in MiB (with --pid).
    #[arg(long)]
    rss_budget_mib: Option<u64>,
    /// Seed of the generated cases.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// ADMIN_REGISTER_SECRET of the target (admin routes fuzzed past the role check).
    #[arg(long, env = "ADMIN_REGISTER_SECRET", hide_env_values = true)]
    admin_secret: Option<String>,
    /// JWT_ACCESS_SECRET of the target (expired tokens validly signed).
    #[arg(long, env = "JWT_ACCESS_SECRET", hide_env_values = true)]
    jwt_access_secret: Option<String>,
    /// Users A, B and the buyer (registered when missing).
    #[arg(long, num_args = 3, default_values = ["test0000", "test0001", "test0002"])]
    users: Vec<String>,
    /// Their password.
    #[arg(long, default_value = "testtest")]
    password: String,
    /// The server's body limit in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    body_limit: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Deadline of each honest phase in seconds.
    #[arg(long, default_value_t = 120)]
    deadline_secs: u64,
    /// Distinct failures to print.
    #[arg(long, default_value_t = 20)]
    examples: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    let mut cfg = FuzzConfig::new(a.base);
    cfg.api_base = a.api;
    cfg.requests = a.requests;
    cfg.concurrency = a.concurrency;
    cfg.pid = a.pid;
    cfg.rss_budget_mib = a.rss_budget_mib;
    cfg.seed = a.seed;
    cfg.admin_secret = a.admin_secret;
    cfg.jwt_access_secret = a.jwt_access_secret;
    cfg.users = [a.users[0].clone(), a.users[1].clone(), a.users[2].clone()];
    cfg.password = a.password;
    cfg.body_limit = a.body_limit;
    cfg.request_timeout = Duration::from_secs(a.timeout_secs);
    cfg.deadline = Duration::from_secs(a.deadline_secs);
    let report = run(cfg).await;
    print!("{}", report.render(a.examples));
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
