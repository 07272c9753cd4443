//! `flash-bench-drive`: prepares and drives the benchmark rows that need many distinct buyers
//! against the pod binaries (see `integration/bench/run-pods.sh`). Buyers are fresh users whose
//! access tokens are minted with the gateway's secret (verified without a store read).
//!
//! - `admit`: enqueues N buyers for an event and waits until each is READY; prints
//!   `access-token<TAB>gate-token<TAB>ticket-id` lines (the orders row's wrk input).
//! - `fill`: enqueues N buyers (a long line: the 1,000,000-ticket row); prints the rate.
//! - `pay`: places one HOLD per buyer (api with `QUEUE_ENFORCE_ADMISSION=false`), then requests
//!   every payment as fast as it can; prints when the requests were sent. Settlement is read
//!   from the database by the script.
//! - `sockets`: holds N Socket.IO connections joined to an event's queue, each QUEUED behind the
//!   admitted buyers of `--release` (an `admit` output), then makes those buyers leave so that
//!   the sockets' owners are promoted, and waits for every READY push; prints how many position
//!   refreshes each socket heard while held.

use clap::{Parser, Subcommand};
use flash_rehearse::socket::{Heard, QueueSocket};
use futures::StreamExt;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// The gateway's `JWT_ACCESS_SECRET`.
    #[arg(long, env = "JWT_ACCESS_SECRET", hide_env_values = true)]
    secret: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Creates an ONSALE event with `--qty` tickets and prints its id.
    Event {
        #[arg(long)]
        api: String,
        #[arg(long)]
        qty: u64,
        #[arg(long, default_value_t = 1)]
        max_per_user: u64,
    },
    Admit {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        event: String,
        #[arg(short)]
        n: usize,
    },
    Fill {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        event: String,
        #[arg(short)]
        n: usize,
    },
    Pay {
        #[arg(long)]
        api: String,
        #[arg(long)]
        event: String,
        #[arg(short)]
        n: usize,
    },
    Sockets {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        event: String,
        #[arg(short)]
        n: usize,
        /// Handshakes in flight at once.
        #[arg(long, default_value_t = 64)]
        handshakes: usize,
        /// File of `admit` lines whose buyers leave to free the slots.
        #[arg(long)]
        release: std::path::PathBuf,
        /// How long every socket is held open, all joined, before the release.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        hold: Duration,
        /// How many sockets must hear READY (default: all; fewer when fewer are released).
        #[arg(long)]
        expect: Option<usize>,
        /// Give up waiting for READY pushes after this.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        deadline: Duration,
    },
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("flash-bench-drive: {msg}");
    std::process::exit(1)
}

/// What every subcommand drives with.
struct Driver {
    http: reqwest::Client,
    minter: flash_bench::Minter,
    /// Requests in flight at once.
    c: usize,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let minter = flash_bench::Minter::new(&cli.secret).unwrap_or_else(|e| fail(e));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| fail(e));
    let driver = Driver {
        http: http.clone(),
        minter,
        c: cli.concurrency,
    };
    let minter = &driver.minter;
    match cli.what {
        What::Event {
            api,
            qty,
            max_per_user,
        } => {
            let admin = minter.admin_token().unwrap_or_else(|e| fail(e));
            let now = time::OffsetDateTime::now_utc();
            let fmt = |t: time::OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| fail(e))
            };
            let v = post(
                &http,
                &format!("{api}/events"),
                &admin,
                &json!({
                    "name": "Bench sale",
                    "starts_at": fmt(now),
                    "ends_at": fmt(now + time::Duration::days(1)),
                    "total_qty": qty,
                    "max_per_user": max_per_user,
                    "price": 50000,
                }),
                None,
            )
            .await
            .unwrap_or_else(|e| fail(format!("create event: {e}")));
            let id = v["id"]
                .as_str()
                .unwrap_or_else(|| fail(format!("no id in {v}")));
            let r = http
                .patch(format!("{api}/events/{id}"))
                .bearer_auth(&admin)
                .json(&json!({ "status": "ONSALE" }))
                .send()
                .await
                .unwrap_or_else(|e| fail(e));
            if !r.status().is_success() {
                fail(format!("open event: {}", r.status()));
            }
            println!("{id}");
        }
        What::Admit { gateway, event, n } => admit(&driver, &gateway, &event, n).await,
        What::Fill { gateway, event, n } => fill(&driver, &gateway, &event, n).await,
        What::Pay { api, event, n } => pay(&driver, &api, &event, n).await,
        What::Sockets {
            gateway,
            event,
            n,
            handshakes,
            release,
            hold,
            expect,
            deadline,
        } => {
            let plan = SocketPlan {
                n,
                handshakes,
                hold,
                expect: expect.unwrap_or(n),
                deadline,
            };
            sockets(&driver, &gateway, &event, &release, plan).await;
        }
    }
}

/// POSTs JSON and returns the answer's body when the status is 2xx, retrying transport errors
/// and 429/503 a few times.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    extra: Option<(&str, String)>,
) -> Result<Value, String> {
    let mut last = String::new();
    for attempt in 0..5u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
        }
        let mut r = http.post(url).bearer_auth(token).json(body);
        if let Some((k, v)) = &extra {
            r = r.header(*k, v);
        }
        match r.send().await {
            Ok(resp) if resp.status().is_success() => {
                return resp.json().await.map_err(|e| e.to_string());
            }
            Ok(resp) if matches!(resp.status().as_u16(), 429 | 503) => {
                last = resp.status().to_string();
            }
            Ok(resp) => {
                let s = resp.status();
                return Err(format!("{s}: {}", resp.text().await.unwrap_or_default()));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

async fn enqueue(
    http: &reqwest::Client,
    gateway: &str,
    event: &str,
    token: &str,
) -> Result<String, String> {
    let v = post(
        http,
        &format!("{gateway}/queue/enqueue"),
        token,
        &json!({ "eventId": event }),
        None,
    )
    .await?;
    v["ticketId"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no ticketId in {v}"))
}

async fn admit(d: &Driver, gateway: &str, event: &str, n: usize) {
    let Driver { http, minter, c } = d;
    let c = *c;
    let started = Instant::now();
    let lines: Vec<String> = futures::stream::iter(0..n)
        .map(|i| async move {
            let token = minter.token(i).unwrap_or_else(|e| fail(e));
            let ticket = enqueue(http, gateway, event, &token)
                .await
                .unwrap_or_else(|e| fail(format!("enqueue: {e}")));
            let url = format!("{gateway}/queue/status?ticketId={ticket}");
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                if let Ok(r) = http.get(&url).send().await
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(gate) = v["gateToken"].as_str()
                {
                    return format!("{token}\t{gate}\t{ticket}");
                }
                if Instant::now() > deadline {
                    fail(format!("ticket {ticket} never became READY"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .buffer_unordered(c)
        .collect()
        .await;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for l in &lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
    eprintln!(
        "admitted {n} buyers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn fill(d: &Driver, gateway: &str, event: &str, n: usize) {
    let Driver { http, minter, c } = d;
    let c = *c;
    let started = Instant::now();
    let done = AtomicU64::new(0);
    futures::stream::iter(0..n)
        .for_each_concurrent(c, |i| {
            let done = &done;
            async move {
                let token = minter.token(i).unwrap_or_else(|e| fail(e));
                enqueue(http, gateway, event, &token)
                    .await
                    .unwrap_or_else(|e| fail(format!("enqueue: {e}")));
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(100_000) {
                    eprintln!(
                        "{d} enqueued, {:.0}/s so far",
                        d as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        })
        .await;
    let s = started.elapsed().as_secs_f64();
    println!("enqueued {n} buyers in {s:.1} s = {:.0}/s", n as f64 / s);
}

async fn pay(d: &Driver, api: &str, event: &str, n: usize) {
    let Driver { http, minter, c } = d;
    let c = *c;
    let started = Instant::now();
    let orders: Vec<(String, String)> = futures::stream::iter(0..n)
        .map(|i| async move {
            let token = minter.token(i).unwrap_or_else(|e| fail(e));
            let key = uuid::Uuid::new_v4().to_string();
            let v = post(
                http,
                &format!("{api}/orders"),
                &token,
                &json!({ "event_id": event, "qty": 1 }),
                Some(("Idempotency-Key", key)),
            )
            .await
            .unwrap_or_else(|e| fail(format!("order: {e}")));
            let id = v["orderId"]
                .as_str()
                .unwrap_or_else(|| fail(format!("no orderId in {v}")))
                .to_owned();
            (token, id)
        })
        .buffer_unordered(c)
        .collect()
        .await;
    eprintln!(
        "placed {n} orders in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    futures::stream::iter(orders)
        .for_each_concurrent(c, |(token, order)| async move {
            post(
                http,
                &format!("{api}/payments"),
                &token,
                &json!({ "orderId": order, "method": "MOCK" }),
                None,
            )
            .await
            .unwrap_or_else(|e| fail(format!("payment: {e}")));
        })
        .await;
    let s = started.elapsed().as_secs_f64();
    println!("requested {n} payments in {s:.2} s = {:.0}/s", n as f64 / s);
}

/// Connects (waiting for the `queue:config` greeting, as the web client does), joins the queue
/// and waits until the server confirms (queue:joined or the first update).
async fn open_and_join(
    gateway: &str,
    event: &str,
    token: &str,
    handshakes: &tokio::sync::Semaphore,
) -> Result<QueueSocket, String> {
    let wait = Duration::from_secs(30);
    let permit = handshakes.acquire().await;
    let mut socket = QueueSocket::connect(gateway, token).await?;
    match tokio::time::timeout(wait, socket.events.recv()).await {
        Ok(Some(Heard::Config(_))) => {}
        other => return Err(format!("no greeting: {other:?}")),
    }
    drop(permit);
    socket.join(event, None).await?;
    loop {
        match tokio::time::timeout(wait, socket.events.recv()).await {
            Ok(Some(Heard::Joined(_) | Heard::Update(_))) => return Ok(socket),
            Ok(Some(Heard::Config(_))) => {}
            other => return Err(format!("join: {other:?}")),
        }
    }
}

/// Sockets joined so far (progress).
static JOINED: AtomicU64 = AtomicU64::new(0);

struct SocketPlan {
    n: usize,
    handshakes: usize,
    hold: Duration,
    expect: usize,
    deadline: Duration,
}

async fn sockets(
    d: &Driver,
    gateway: &str,
    event: &str,
    release: &std::path::Path,
    plan: SocketPlan,
) {
    let Driver { http, minter, c } = d;
    let c = *c;
    let blockers: Vec<(String, String)> = std::fs::read_to_string(release)
        .unwrap_or_else(|e| fail(format!("{}: {e}", release.display())))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.first()?.to_string(), f.get(2)?.to_string()))
        })
        .collect();
    let started = Instant::now();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(plan.handshakes));
    let mut joined = Vec::with_capacity(plan.n);
    let mut pending = futures::stream::iter(0..plan.n)
        .map(|i| {
            let handshakes = handshakes.clone();
            async move {
                let token = minter.token(i).unwrap_or_else(|e| fail(e));
                // The Rust Socket.IO client now and then loses a connection ("EngineIO Error");
                // a buyer then reconnects and joins again (joining is idempotent).
                for attempt in 0..6u64 {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                    match open_and_join(gateway, event, &token, &handshakes).await {
                        Ok(socket) => {
                            let n = JOINED.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_multiple_of(1000) {
                                eprintln!("{n} sockets joined");
                            }
                            return socket;
                        }
                        Err(e) => eprintln!("socket {i}: {e}; retrying"),
                    }
                }
                fail(format!("socket {i} could not join"))
            }
        })
        .buffer_unordered(plan.handshakes);
    while let Some(s) = pending.next().await {
        joined.push(s);
    }
    println!(
        "joined {} sockets in {:.1} s; holding them {:?}",
        joined.len(),
        started.elapsed().as_secs_f64(),
        plan.hold
    );
    tokio::time::sleep(plan.hold).await;
    // Position refreshes each socket heard while held (open_and_join took the join's own update).
    let mut refreshes: Vec<usize> = joined
        .iter_mut()
        .map(|s| {
            std::iter::from_fn(|| s.events.try_recv().ok())
                .filter(|h| matches!(h, Heard::Update(_)))
                .count()
        })
        .collect();
    refreshes.sort_unstable();
    if let (Some(min), Some(max)) = (refreshes.first(), refreshes.last()) {
        println!(
            "queue:update refreshes per socket while held: min {min}, p50 {}, max {max}, {} in all",
            refreshes[refreshes.len() / 2],
            refreshes.iter().sum::<usize>()
        );
    }

    let released = Instant::now();
    let mut waiters: futures::stream::FuturesUnordered<_> = joined
        .into_iter()
        .map(move |mut s| async move {
            loop {
                match s.events.recv().await {
                    Some(Heard::Update(v)) if v["state"] == "READY" => {
                        return Some((released.elapsed(), s));
                    }
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .collect();
    let expect = plan.expect;
    let waiting = tokio::spawn(async move {
        let mut heard = Vec::with_capacity(expect);
        let deadline = tokio::time::sleep(plan.deadline);
        tokio::pin!(deadline);
        while heard.len() < expect {
            tokio::select! {
                next = waiters.next() => match next {
                    Some(Some(got)) => heard.push(got),
                    Some(None) => {}
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        (heard, waiters)
    });
    println!("releasing {} admitted buyers", blockers.len());
    futures::stream::iter(blockers)
        .for_each_concurrent(c, |(token, ticket)| async move {
            if let Err(e) = post(
                http,
                &format!("{gateway}/queue/leave"),
                &token,
                &json!({ "ticketId": ticket }),
                None,
            )
            .await
            {
                eprintln!("leave {ticket}: {e}");
            }
        })
        .await;
    println!("released in {:.2} s", released.elapsed().as_secs_f64());
    let (heard, rest) = waiting.await.unwrap_or_else(|e| fail(e));
    let mut times: Vec<Duration> = heard.iter().map(|(d, _)| *d).collect();
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "READY heard by {} sockets (expected {expect}); after the release began: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    drop((heard, rest));
    if times.len() < expect {
        fail(format!(
            "only {} of {expect} sockets heard READY within {:?}",
            times.len(),
            plan.deadline
        ));
    }
}
