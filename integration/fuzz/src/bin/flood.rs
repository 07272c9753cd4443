//! `flash-flood`: floods a running Flash Tickets server with distinct login names and
//! idempotency keys while one buyer buys; exits non-zero when a SPEC §11 budget or the sale
//! breaks.

use clap::Parser;
use flash_fuzz::flood::{FloodConfig, Source, run};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "flash-flood", version)]
struct Args {
    /// The gateway, or the all-in-one `flash up`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// The api service, when it is a separate server (pods).
    #[arg(long)]
    api: Option<String>,
    /// Distinct login names.
    #[arg(long, default_value_t = 1_000_000)]
    names: u64,
    /// Every Nth name is 60,000 characters long (0: none).
    #[arg(long, default_value_t = 100)]
    long_every: u64,
    /// Distinct idempotency keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The attacker's and the buyer's addresses.
    #[arg(long, default_value = "127.0.0.2")]
    attacker_addr: IpAddr,
    #[arg(long, default_value = "127.0.0.3")]
    buyer_addr: IpAddr,
    /// Send the addresses as X-Forwarded-For instead of connecting from them (pods).
    #[arg(long)]
    forwarded: bool,
    /// Attacker and buyer accounts (registered when missing) and their password.
    #[arg(long, default_value = "test0000")]
    attacker: String,
    #[arg(long, default_value = "test0001")]
    buyer: String,
    #[arg(long, default_value = "testtest")]
    password: String,
    /// The event to order from (default: the first ONSALE event with stock).
    #[arg(long)]
    event: Option<String>,
    /// Server process id and its allowed RSS growth in MiB.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long)]
    rss_budget_mib: Option<u64>,
    /// Redis whose used_memory is checked, and its allowed growth in MiB.
    #[arg(long)]
    redis_url: Option<String>,
    #[arg(long)]
    redis_budget_mib: Option<u64>,
    /// Deadline of each honest phase in seconds.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    let source = |ip| {
        if a.forwarded {
            Source::Forwarded(ip)
        } else {
            Source::Bind(ip)
        }
    };
    let mut cfg = FloodConfig::new(a.base.clone());
    cfg.api_base = a.api.clone();
    cfg.names = a.names;
    cfg.long_every = a.long_every;
    cfg.keys = a.keys;
    cfg.concurrency = a.concurrency;
    cfg.attacker = source(a.attacker_addr);
    cfg.buyer = source(a.buyer_addr);
    cfg.attacker_user = a.attacker.clone();
    cfg.buyer_user = a.buyer.clone();
    cfg.password = a.password.clone();
    cfg.event = a.event.clone();
    cfg.pid = a.pid;
    cfg.rss_budget_mib = a.rss_budget_mib;
    cfg.redis_url = a.redis_url.clone();
    cfg.redis_budget_mib = a.redis_budget_mib;
    cfg.deadline = Duration::from_secs(a.deadline_secs);
    let report = run(cfg).await;
    println!("elapsed: {:.1} s", report.elapsed.as_secs_f64());
    for (kind, statuses) in &report.statuses {
        println!("{kind}: {statuses:?}");
    }
    println!("transport errors: {}", report.transport_errors);
    if let Some(r) = report.rss {
        println!(
            "server RSS: {} → {} KiB (+{} KiB), budget {:?} MiB",
            r.before_kib,
            r.after_kib,
            r.after_kib.saturating_sub(r.before_kib),
            r.budget_mib
        );
    }
    if let Some(r) = report.redis {
        println!(
            "Redis used_memory: {} → {} B (+{} B), budget {:?} MiB",
            r.before,
            r.after,
            r.after.saturating_sub(r.before),
            r.budget_mib
        );
    }
    match &report.purchase {
        Ok(p) => println!(
            "buyer during the flood: order {} PAID after {} payment(s)",
            p.order, p.attempts
        ),
        Err(e) => println!("buyer during the flood: {e}"),
    }
    for e in &report.examples {
        println!("example: {e}");
    }
    let failures = report.failures();
    if failures.is_empty() {
        println!("flood held");
        ExitCode::SUCCESS
    } else {
        for f in failures {
            println!("FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}
