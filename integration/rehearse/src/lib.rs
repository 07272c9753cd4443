//! `flash-rehearse`: the sale rehearsal. It simulates N buyers against a running deployment
//! (ours or any legacy-compatible one) through the whole journey — optional pre-login, enqueue,
//! wait for READY by Socket.IO push or by polling, enter, order with an `Idempotency-Key`, pay,
//! wait for PAID or FAIL and retry failed payments — then audits SPEC §8 through the API (and
//! through PostgreSQL when a database URL is given) and reports throughput, per-step latency
//! percentiles (HDR histograms), grouped errors and time to sell out, in the terminal and as
//! `report.json`, `report.md` and `report.html` (one self-contained page: the sale's timeline
//! charted, latencies, the audit's verdicts and the plan; it opens from disk, offline).
//!
//! It talks to the system only through its public surface (HTTP and Socket.IO, plus read-only
//! SQL for the database audit): it must not depend on any crate of the system itself. It only
//! targets loopback addresses, every loop is bounded, and the sale stops at its deadline.
//!
//! Use [`run_cli`] for the command (`flash-rehearse`, `flash rehearse`), or [`rehearse`] to get
//! the [`Report`] of a [`Plan`].

pub mod audit;
mod client;
pub mod config;
#[cfg(feature = "postgres")]
mod database;
pub mod journey;
mod progress;
pub mod report;
pub mod socket;
pub mod stats;

pub use config::{Plan, PlanError, RehearseArgs};
pub use report::Report;

use audit::{AuditInput, EventState, read_event};
use client::{Api, Call};
use journey::{Buyer, Outcome};
use report::{DatabaseAudit, Outcomes, Sale, Setup, Timeline, Verdict};
use serde_json::Value;
use stats::{Recorder, Step};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Exit status of a rehearsal whose audit failed or whose errors exceeded the threshold.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of a rehearsal that could not run (bad options, target unreachable, no event).
pub const EXIT_UNUSABLE: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot find an event to sell: {0}")]
    NoEvent(String),
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "flash-rehearse",
    version,
    about = "Rehearse a flash sale end to end against a running deployment, then audit it",
    long_about = "Rehearse a flash sale end to end against a running deployment (loopback only): \
buyers log in, queue, are admitted, order, pay and retry failed payments; the report gives \
throughput, latency percentiles per step, errors and time to sell out, and audits SPEC §8 through \
the API (and PostgreSQL with --database-url). Exit status: 0 passed, 1 audit failed or errors above \
--max-error-rate, 2 could not run."
)]
struct Cli {
    #[command(flatten)]
    args: RehearseArgs,
}

/// The whole command from its arguments (the first is the program name): parses, runs on a
/// multi-threaded runtime, and returns the exit status. The `flash-rehearse` binary calls it;
/// `flash rehearse` runs that binary.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_UNUSABLE } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let code = runtime.block_on(run_cli(cli.args));
    // Sockets still closing in the background must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Runs the command: rehearses, prints the terminal report, writes report.json, report.md and
/// report.html, and returns the process exit status (0 passed, 1 failed, 2 could not run).
pub async fn run_cli(args: RehearseArgs) -> i32 {
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_UNUSABLE;
        }
    };
    let out = plan.out.clone();
    match rehearse(plan).await {
        Ok(report) => {
            print!("{}", report.terminal());
            match report.write(&out) {
                Ok(files) => println!(
                    "reports: {} {} {}",
                    files.json.display(),
                    files.markdown.display(),
                    files.html.display()
                ),
                Err(e) => {
                    eprintln!("error: cannot write the reports in {}: {e}", out.display());
                    return EXIT_UNUSABLE;
                }
            }
            report.verdict.exit_code
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_UNUSABLE
        }
    }
}

fn secs_at(ms: u64) -> Option<f64> {
    (ms > 0).then(|| ms as f64 / 1000.0)
}

/// Picks the events to sell: those named, or the first ONSALE event the api lists.
async fn resolve_events(api: &Api, plan: &Plan) -> Result<Vec<String>, RehearseError> {
    if !plan.events.is_empty() {
        return Ok(plan.events.clone());
    }
    let r = api
        .send(Call::get(Step::Events, api.api_url("/events"), None))
        .await
        .map_err(|f| RehearseError::NoEvent(format!("GET /events: {} {}", f.status, f.message)))?;
    if !r.ok() {
        return Err(RehearseError::NoEvent(format!(
            "GET /events: {} {}",
            r.status.as_u16(),
            r.message()
        )));
    }
    r.body
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|e| e.get("status").and_then(Value::as_str) == Some("ONSALE"))
        })
        .and_then(|e| e.get("id").and_then(Value::as_str))
        .map(|id| vec![id.to_owned()])
        .ok_or_else(|| RehearseError::NoEvent("GET /events lists no ONSALE event".into()))
}

/// Reads the events every 250 ms during the sale: when nothing is left, and when all is paid.
/// Runs until aborted at the end of the sale.
fn spawn_monitor(
    api: Api,
    events: Vec<String>,
    sale: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The bound only guards against a runaway: the sale's deadline aborts it long before.
        for _ in 0..u32::MAX {
            tick.tick().await;
            let mut states = Vec::with_capacity(events.len());
            for id in &events {
                if let Ok(e) = read_event(&api, id).await {
                    states.push(e);
                }
            }
            if states.len() != events.len() {
                continue;
            }
            if states.iter().all(|e| e.available() <= 0) {
                sale.saw_sold_out();
            }
            if states.iter().all(|e| e.sold_qty >= e.total_qty) {
                sale.saw_all_paid();
                return;
            }
        }
    })
}

/// Rehearses the sale of `plan` and audits it. Errors only when the rehearsal cannot start.
pub async fn rehearse(plan: Plan) -> Result<Report, RehearseError> {
    let started_at = OffsetDateTime::now_utc();
    let plan = Arc::new(plan);
    let setup_rec = Arc::new(Recorder::new(Instant::now()));
    let setup_api = Api::new(
        plan.gateway_url.clone(),
        plan.api_url.clone(),
        plan.concurrency,
        plan.socket_handshakes,
        plan.request_timeout,
        plan.http_retries,
        setup_rec.clone(),
    )
    .map_err(|e| RehearseError::Client(e.to_string()))?;

    let events = resolve_events(&setup_api, &plan).await?;
    let mut baseline = BTreeMap::new();
    for id in &events {
        let e = read_event(&setup_api, id)
            .await
            .map_err(RehearseError::NoEvent)?;
        baseline.insert(id.clone(), e);
    }

    let mut buyers: Vec<Buyer> = (0..plan.users)
        .map(|i| {
            Buyer::new(
                i,
                plan.login_name(i),
                events[i as usize % events.len()].clone(),
            )
        })
        .collect();

    // Setup: register, then log in before the clock when asked to.
    let mut setup = Setup::default();
    if plan.register {
        let done = futures::future::join_all(
            buyers
                .iter()
                .map(|b| journey::register(&setup_api, &plan, b)),
        )
        .await;
        setup.registered = done.iter().filter(|ok| **ok).count() as u64;
    }
    if plan.login == config::LoginPhase::Before {
        let t0 = Instant::now();
        let api = &setup_api;
        let plan_ref = &plan;
        futures::future::join_all(
            buyers
                .iter_mut()
                .map(|b| async move { journey::login(api, plan_ref, b).await }),
        )
        .await;
        setup.login_seconds = t0.elapsed().as_secs_f64();
        setup.logged_in = buyers.iter().filter(|b| b.token.is_some()).count() as u64;
        setup.logins_per_second = setup.logged_in as f64 / setup.login_seconds.max(0.001);
    }
    setup.requests = setup_rec.requests.load(Ordering::Relaxed);
    setup.errors = setup_rec.error_count.load(Ordering::Relaxed);

    // The sale.
    let sale_started = OffsetDateTime::now_utc();
    let rec = Arc::new(Recorder::new(Instant::now()));
    let api = Api::new(
        plan.gateway_url.clone(),
        plan.api_url.clone(),
        plan.concurrency,
        plan.socket_handshakes,
        plan.request_timeout,
        plan.http_retries,
        rec.clone(),
    )
    .map_err(|e| RehearseError::Client(e.to_string()))?;
    let progress = progress::Progress::start(rec.clone(), plan.users as u64, plan.progress);
    let monitor_rec = Arc::new(Recorder::new(rec.started()));
    let monitor_api = Api::new(
        plan.gateway_url.clone(),
        plan.api_url.clone(),
        4,
        1,
        plan.request_timeout,
        0,
        monitor_rec,
    )
    .map_err(|e| RehearseError::Client(e.to_string()))?;
    let monitor = spawn_monitor(monitor_api, events.clone(), rec.clone());
    let deadline = tokio::time::Instant::from_std(rec.started()) + plan.deadline;
    let mut tasks = tokio::task::JoinSet::new();
    let n = buyers.len() as u32;
    let mut not_started = 0u64;
    for (i, mut b) in buyers.drain(..).enumerate() {
        if plan.login == config::LoginPhase::Before && b.token.is_none() {
            b.outcome = Some(Outcome::Failed(Step::Login));
            not_started += 1;
            tasks.spawn(async move { b });
            continue;
        }
        let api = api.clone();
        let plan = plan.clone();
        let offset = if n > 1 {
            plan.ramp.mul_f64(i as f64 / n as f64)
        } else {
            Duration::ZERO
        };
        tasks.spawn(async move {
            let run = async {
                tokio::time::sleep(offset).await;
                journey::journey(&api, &plan, &mut b).await
            };
            let outcome = match tokio::time::timeout_at(deadline, run).await {
                Ok(o) => o,
                Err(_) => Outcome::Unfinished(b.stage),
            };
            if let Outcome::Unfinished(stage) = outcome {
                api.rec.error(
                    Step::Journey,
                    "deadline",
                    format!("unfinished at the deadline while at stage {stage}"),
                );
            }
            api.rec.stages.finished.fetch_add(1, Ordering::Relaxed);
            b.outcome = Some(outcome);
            b
        });
    }
    let mut finished = Vec::with_capacity(n as usize);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(b) = joined {
            finished.push(b);
        }
    }
    let sale_seconds = rec.started().elapsed().as_secs_f64();
    // Every buyer task has ended: nothing counts into the sale's recorder any more.
    let series = rec.series();
    monitor.abort();
    // A sale that ended between two monitor reads: the last buyer's PAID was the moment.
    let mut last_states = Vec::new();
    for id in &events {
        if let Ok(e) = read_event(&setup_api, id).await {
            last_states.push(e);
        }
    }
    if last_states.len() == events.len() {
        let last_paid = rec.moments.last_paid.load(Ordering::Relaxed);
        if last_states.iter().all(|e| e.available() <= 0) {
            let _ = rec.moments.sold_out.compare_exchange(
                0,
                last_paid.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        if last_states.iter().all(|e| e.sold_qty >= e.total_qty) {
            let _ = rec.moments.all_paid.compare_exchange(
                0,
                last_paid.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
    progress.finish();
    finished.sort_by_key(|b| b.index);

    // The audit reads with their own recorder, so the sale's figures stay the sale's.
    let capacity = plan
        .capacity
        .or_else(|| Some(rec.capacity_seen.load(Ordering::Relaxed)).filter(|c| *c > 0));
    let audit_rec = Arc::new(Recorder::new(Instant::now()));
    let audit_api = Api::new(
        plan.gateway_url.clone(),
        plan.api_url.clone(),
        plan.concurrency,
        plan.socket_handshakes,
        plan.request_timeout,
        plan.http_retries,
        audit_rec,
    )
    .map_err(|e| RehearseError::Client(e.to_string()))?;
    let api_audit = audit::audit(
        &audit_api,
        AuditInput {
            buyers: &finished,
            baseline: &baseline,
            capacity,
            sale_started,
            settle: plan.settle,
            parallel: plan.concurrency,
        },
    )
    .await;
    let database_audit = database_audit(&plan, &events).await;

    // Figures.
    let mut outcomes = Outcomes {
        not_started,
        ..Outcomes::default()
    };
    for b in &finished {
        match b.outcome {
            Some(Outcome::Paid) => outcomes.paid += 1,
            Some(Outcome::SoldOut) => outcomes.sold_out += 1,
            Some(Outcome::ToldSoldOut) => outcomes.told_sold_out += 1,
            Some(Outcome::LimitReached) => outcomes.limit_reached += 1,
            Some(Outcome::PaymentFailed) => outcomes.payment_failed += 1,
            Some(Outcome::Failed(Step::Login)) if plan.login == config::LoginPhase::Before => {}
            Some(Outcome::Failed(_)) => outcomes.failed += 1,
            Some(Outcome::Unfinished(_)) | None => outcomes.unfinished += 1,
        }
    }
    let m = &rec.moments;
    let ms = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (first_adm, last_adm) = (ms(&m.first_admission), ms(&m.last_admission));
    let admissions: u64 = finished.iter().map(|b| b.admissions.len() as u64).sum();
    let admission_span = (last_adm.saturating_sub(first_adm)) as f64 / 1000.0;
    let requests = rec.requests.load(Ordering::Relaxed);
    let sale_errors = rec.error_count.load(Ordering::Relaxed);
    let errors = sale_errors + setup.errors;
    let all_requests = requests + setup.requests;
    let error_rate = if all_requests == 0 {
        if errors > 0 { 1.0 } else { 0.0 }
    } else {
        errors as f64 / all_requests as f64
    };
    let sale = Sale {
        buyers: plan.users as u64,
        arrivals: finished
            .iter()
            .filter(|b| b.stage != journey::NOT_ARRIVED)
            .count() as u64,
        seconds: sale_seconds,
        outcomes,
        requests,
        requests_per_second: requests as f64 / sale_seconds.max(0.001),
        admissions,
        admissions_per_second: if admissions > 1 && admission_span > 0.0 {
            admissions as f64 / admission_span
        } else {
            admissions as f64 / sale_seconds.max(0.001)
        },
        orders: finished.iter().map(|b| b.orders.len() as u64).sum(),
        tickets_ordered: finished
            .iter()
            .flat_map(|b| &b.orders)
            .map(|o| u64::from(o.qty))
            .sum(),
        paid_orders: api_audit.paid_orders as u64,
        paid_tickets: api_audit.paid_tickets,
        paid_per_second: rec.stages.paid.load(Ordering::Relaxed) as f64 / sale_seconds.max(0.001),
        paid_per_second_while_paying: {
            let paid = rec.stages.paid.load(Ordering::Relaxed);
            let span = ms(&m.last_paid).saturating_sub(ms(&m.first_paid)) as f64 / 1000.0;
            if paid > 1 && span > 0.0 {
                paid as f64 / span
            } else {
                0.0
            }
        },
        errors,
        error_rate,
        capacity_seen: Some(rec.capacity_seen.load(Ordering::Relaxed)).filter(|c| *c > 0),
    };
    let timeline = Timeline {
        first_admission_s: secs_at(first_adm),
        last_admission_s: secs_at(last_adm),
        first_paid_s: secs_at(ms(&m.first_paid)),
        last_paid_s: secs_at(ms(&m.last_paid)),
        sold_out_s: secs_at(ms(&m.sold_out)),
        all_paid_s: secs_at(ms(&m.all_paid)),
        first_sold_out_reply_s: secs_at(ms(&m.first_sold_out_reply)),
        last_hold_s: secs_at(ms(&m.last_hold)),
        last_told_sold_out_s: secs_at(ms(&m.last_told_sold_out)),
        sold_out_to_last_told_s: match ms(&m.last_hold) {
            0 => None,
            held => rec.longest_unaware_ms(held).map(|w| w as f64 / 1000.0),
        },
    };
    let mut steps = setup_rec.step_summaries();
    steps.retain(|s| matches!(s.step, Some(Step::Login | Step::Register)));
    steps.extend(rec.step_summaries());
    let mut errors_list = setup_rec.errors();
    errors_list.extend(rec.errors());
    let mut retries = setup_rec.retries();
    retries.extend(rec.retries());

    let mut reasons = Vec::new();
    if !api_audit.passed {
        let failed: Vec<&str> = api_audit
            .checks
            .iter()
            .filter(|c| c.passed == Some(false))
            .map(|c| c.name.as_str())
            .collect();
        reasons.push(format!("API audit failed: {}", failed.join(", ")));
    }
    if database_audit.status == "failed" || database_audit.status == "unavailable" {
        reasons.push(format!(
            "database audit {}: {}",
            database_audit.status, database_audit.detail
        ));
    }
    if errors > 0 && error_rate > plan.max_error_rate {
        reasons.push(format!(
            "{errors} failed requests ({:.3} %) exceed --max-error-rate {:.3} %",
            error_rate * 100.0,
            plan.max_error_rate * 100.0
        ));
    }
    // SPEC §4: sold out closes the line, so nobody is left waiting on a sold-out sale.
    let left_waiting = finished
        .iter()
        .filter(|b| b.outcome == Some(Outcome::Unfinished("queued")))
        .count();
    if timeline.sold_out_s.is_some() && left_waiting > 0 {
        reasons.push(format!(
            "{left_waiting} buyers were still waiting in line at the end of a sold-out sale (never told SOLD_OUT)"
        ));
    }
    let passed = reasons.is_empty();
    Ok(Report {
        tool: format!("flash-rehearse {}", env!("CARGO_PKG_VERSION")),
        started_at: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        plan: serde_json::to_value(&*plan).unwrap_or(Value::Null),
        events_before: baseline.into_values().collect::<Vec<EventState>>(),
        setup,
        sale,
        timeline,
        series,
        steps,
        errors: errors_list,
        retries,
        audit: api_audit,
        database_audit,
        verdict: Verdict {
            passed,
            exit_code: if passed { 0 } else { EXIT_FAILED },
            reasons,
        },
    })
}

#[cfg(feature = "postgres")]
async fn database_audit(plan: &Plan, events: &[String]) -> DatabaseAudit {
    match &plan.database_url {
        Some(url) => database::audit(url, events).await,
        None => skipped_database_audit(),
    }
}

#[cfg(not(feature = "postgres"))]
async fn database_audit(plan: &Plan, _events: &[String]) -> DatabaseAudit {
    match &plan.database_url {
        Some(_) => DatabaseAudit {
            status: "unavailable".into(),
            detail: "a database URL was given but this build lacks the `postgres` feature".into(),
            checks: Vec::new(),
        },
        None => skipped_database_audit(),
    }
}

fn skipped_database_audit() -> DatabaseAudit {
    DatabaseAudit {
        status: "skipped".into(),
        detail: "no --database-url / DATABASE_URL given".into(),
        checks: Vec::new(),
    }
}
