//! Black-box HTTP fuzzer of Flash Tickets (issue 11, SPEC §11).
//!
//! [`run`] fetches `/openapi.json` from the target, enumerates every documented path and
//! method, and sends each one requests of every bad-input [`Class`] over a small pool of
//! reused keep-alive connections. It fails on any 5xx, on any non-4xx answer to a request
//! that is invalid by construction, on any transport error (a reset on a reused connection,
//! a broken pipe, an unexpected EOF, a timeout), optionally on RSS growth of the server
//! process past a budget, and when one honest purchase afterwards does not end PAID.

pub mod cases;
pub mod flood;
pub mod session;
pub mod spec;
pub mod tokens;

pub use cases::{Case, Class, Expect};
pub use session::Purchase;

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// What to fuzz and how hard.
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// The gateway (or the all-in-one `flash up`), e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// The api service when it is another server (pods); `None`: the same as `base`.
    pub api_base: Option<String>,
    /// Fuzz requests to send.
    pub requests: u64,
    /// Requests in flight at once (and idle connections kept for reuse).
    pub concurrency: usize,
    /// Seed of every generated case.
    pub seed: u64,
    /// The server's process id: its RSS is sampled before and after.
    pub pid: Option<u32>,
    /// Allowed RSS growth in MiB (needs `pid`).
    pub rss_budget_mib: Option<u64>,
    /// `ADMIN_REGISTER_SECRET`: an admin is registered, creates the events, and the ADMIN
    /// operations' bodies are fuzzed past their role check.
    pub admin_secret: Option<String>,
    /// `JWT_ACCESS_SECRET`, when known: expired tokens are then validly signed.
    pub jwt_access_secret: Option<String>,
    /// Users A (owns real resources), B (never admitted) and the final buyer; registered
    /// when they do not exist.
    pub users: [String; 3],
    /// Their password.
    pub password: String,
    /// The server's body limit (SPEC: 64 KiB).
    pub body_limit: usize,
    /// Per-request timeout; a timeout is a failure.
    pub request_timeout: Duration,
    /// Deadline of each honest phase (set-up, purchase).
    pub deadline: Duration,
}

impl FuzzConfig {
    /// Defaults against `base`: 3,000 requests, 16 at once, seed 1, demo users
    /// test0000…test0002 with password `testtest`.
    pub fn new(base: impl Into<String>) -> Self {
        FuzzConfig {
            base: base.into().trim_end_matches('/').to_owned(),
            api_base: None,
            requests: 3_000,
            concurrency: 16,
            seed: 1,
            pid: None,
            rss_budget_mib: None,
            admin_secret: None,
            jwt_access_secret: None,
            users: ["test0000".into(), "test0001".into(), "test0002".into()],
            password: "testtest".into(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(60),
        }
    }

    fn api(&self) -> String {
        self.api_base
            .as_deref()
            .unwrap_or(&self.base)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// An HTTP status.
    Status(u16),
    /// No complete answer: reset, broken pipe, EOF, timeout.
    Transport(String),
    /// The client could not even build the request (not the server's fault, not a failure).
    Unsendable(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(s) => write!(f, "{s}"),
            Outcome::Transport(e) => write!(f, "transport error: {e}"),
            Outcome::Unsendable(e) => write!(f, "unsendable: {e}"),
        }
    }
}

impl Outcome {
    /// A short bucket for the per-class counts.
    fn bucket(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Transport(_) => "transport".into(),
            Outcome::Unsendable(_) => "unsendable".into(),
        }
    }

    /// Whether this answer breaks `expect`.
    pub fn fails(&self, expect: Expect) -> bool {
        match self {
            Outcome::Transport(_) => true,
            Outcome::Unsendable(_) => false,
            Outcome::Status(s) if *s >= 500 => true,
            Outcome::Status(s) => expect == Expect::Reject && !(400..500).contains(s),
        }
    }
}

/// One distinct failure (same operation, class, variant and outcome), with an example.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The class.
    pub class: Class,
    /// `METHOD /template` of the operation.
    pub operation: String,
    /// The method sent (differs for wrong-method cases).
    pub method: String,
    /// The variant.
    pub variant: String,
    /// What was expected.
    pub expect: Expect,
    /// What came back.
    pub outcome: Outcome,
    /// How many requests failed this way.
    pub count: u64,
    /// The first example's URL.
    pub url: String,
    /// A curl command reproducing the first example (big bodies described, not inlined).
    pub repro: String,
}

/// RSS of the server before and after the fuzz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssCheck {
    /// VmRSS before, KiB.
    pub before_kib: u64,
    /// VmRSS after, KiB.
    pub after_kib: u64,
    /// Allowed growth, MiB, if a budget was set.
    pub budget_mib: Option<u64>,
}

impl RssCheck {
    /// Whether the growth is within the budget (always, without one).
    pub fn ok(&self) -> bool {
        self.budget_mib
            .is_none_or(|b| self.after_kib.saturating_sub(self.before_kib) <= b * 1024)
    }
}

/// Everything a run found.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    /// Every fuzzed operation, `base METHOD /path`.
    pub operations: Vec<String>,
    /// (operation, class) pairs covered round-robin.
    pub pairs: usize,
    /// Requests sent.
    pub sent: u64,
    /// Per class, per status (or `transport`), how many.
    pub counts: BTreeMap<Class, BTreeMap<String, u64>>,
    /// Distinct failures, in order of first occurrence.
    pub failures: Vec<Failure>,
    /// Failed requests in all.
    pub failed_requests: u64,
    /// Honest steps that did not work (documents, log-ins, set-up purchase).
    pub problems: Vec<String>,
    /// Latency of the fuzz requests, microseconds.
    pub latency: Histogram<u64>,
    /// RSS before/after, when a pid was given and readable.
    pub rss: Option<RssCheck>,
    /// The final honest purchase.
    pub purchase: Result<Purchase, String>,
    /// Wall time of the fuzz phase.
    pub elapsed: Duration,
}

impl FuzzReport {
    /// No failure, no problem, RSS within budget, purchase PAID.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
            && self.problems.is_empty()
            && self.rss.is_none_or(|r| r.ok())
            && self.purchase.is_ok()
    }

    /// p99 latency of the fuzz requests.
    pub fn p99(&self) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(0.99))
    }

    /// Writes the summary with the first `examples` distinct failures.
    pub fn render(&self, examples: usize) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "flash-fuzz: {} operations, {} (operation, class) pairs, {} requests in {:.1?}",
            self.operations.len(),
            self.pairs,
            self.sent,
            self.elapsed
        );
        let _ = writeln!(
            s,
            "latency: p50 {:?}  p99 {:?}  max {:?}",
            Duration::from_micros(self.latency.value_at_quantile(0.5)),
            self.p99(),
            Duration::from_micros(self.latency.max())
        );
        let _ = writeln!(s, "per class (status: count):");
        for (class, by) in &self.counts {
            let cells: Vec<String> = by.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let _ = writeln!(s, "  {:<18} {}", class.name(), cells.join(" "));
        }
        if let Some(r) = self.rss {
            let _ = writeln!(
                s,
                "RSS: {} KiB -> {} KiB (growth {} KiB, budget {}) {}",
                r.before_kib,
                r.after_kib,
                r.after_kib as i64 - r.before_kib as i64,
                r.budget_mib.map_or("none".into(), |b| format!("{b} MiB")),
                if r.ok() { "ok" } else { "FAIL" }
            );
        }
        for p in &self.problems {
            let _ = writeln!(s, "PROBLEM: {p}");
        }
        match &self.purchase {
            Ok(p) => {
                let _ = writeln!(
                    s,
                    "purchase: order {} PAID after {} payment attempt(s)",
                    p.order, p.attempts
                );
            }
            Err(e) => {
                let _ = writeln!(s, "purchase: FAIL: {e}");
            }
        }
        let _ = writeln!(
            s,
            "failures: {} requests, {} distinct",
            self.failed_requests,
            self.failures.len()
        );
        for f in self.failures.iter().take(examples) {
            let _ = writeln!(
                s,
                "  [{}] {} (sent {}) {} — expected {}, got {} (x{})\n      {}",
                f.class,
                f.operation,
                f.method,
                cases::truncate(&f.variant, 80),
                match f.expect {
                    Expect::Reject => "4xx",
                    Expect::NoServerError => "no 5xx",
                },
                f.outcome,
                f.count,
                f.repro
            );
        }
        if self
            .failures
            .iter()
            .any(|f| matches!(f.outcome, Outcome::Transport(_)))
        {
            let _ = writeln!(
                s,
                "  note: a transport error on a small, valid-looking request usually means its \
                 pooled connection was left unusable by an earlier request answered before its \
                 body was read (no drain, no `Connection: close`)"
            );
        }
        if self.failures.len() > examples {
            let _ = writeln!(
                s,
                "  … {} more distinct failures",
                self.failures.len() - examples
            );
        }
        let _ = writeln!(s, "result: {}", if self.passed() { "PASS" } else { "FAIL" });
        s
    }
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(20))
    }
}

/// An error and its causes, `a: b: c` (hyper's "connection reset" hides in the sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn shell_quote(bytes: &[u8]) -> String {
    if bytes
        .iter()
        .all(|b| b.is_ascii_graphic() && *b != b'\'' && *b != b'\\' || *b == b' ')
    {
        format!("'{}'", String::from_utf8_lossy(bytes))
    } else {
        let mut s = String::from("$'");
        for b in bytes {
            match b {
                b'\'' | b'\\' => {
                    s.push('\\');
                    s.push(char::from(*b));
                }
                0x20..=0x7e => s.push(char::from(*b)),
                _ => s.push_str(&format!("\\x{b:02x}")),
            }
        }
        s.push('\'');
        s
    }
}

/// A curl command for `case`; bodies over 400 bytes and URLs over 300 are described.
pub fn repro(case: &Case) -> String {
    let mut s = format!("curl -sS -i -X {}", case.method);
    if case.url.len() > 300 {
        s.push_str(&format!(
            " '{}…' (URL of {} chars)",
            &case.url[..120],
            case.url.len()
        ));
    } else {
        s.push(' ');
        s.push_str(&shell_quote(case.url.as_bytes()));
    }
    for (k, v) in &case.headers {
        let mut h = k.as_bytes().to_vec();
        h.extend_from_slice(b": ");
        if v.len() > 300 {
            h.extend_from_slice(format!("<{} bytes>", v.len()).as_bytes());
        } else {
            h.extend_from_slice(v);
        }
        s.push_str(" -H ");
        s.push_str(&shell_quote(&h));
    }
    match &case.body {
        cases::Body::None => {}
        cases::Body::Sized(b) | cases::Body::Chunked(b) => {
            if matches!(case.body, cases::Body::Chunked(_)) {
                s.push_str(" -H 'Transfer-Encoding: chunked'");
            }
            if b.len() > 400 {
                s.push_str(&format!(
                    " --data-binary @body ({} bytes starting {})",
                    b.len(),
                    shell_quote(&b[..80])
                ));
            } else {
                s.push_str(" --data-binary ");
                s.push_str(&shell_quote(b));
            }
        }
    }
    s
}

async fn send(http: &Client, case: &Case) -> Outcome {
    let Ok(method) = Method::from_bytes(case.method.as_bytes()) else {
        return Outcome::Unsendable(format!("method {}", case.method));
    };
    let url = match reqwest::Url::parse(&case.url) {
        Ok(u) => u,
        Err(e) => return Outcome::Unsendable(format!("url: {e}")),
    };
    let mut req = http.request(method, url);
    for (k, v) in &case.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            (Ok(k), Ok(v)) => req = req.header(k, v),
            _ => return Outcome::Unsendable(format!("header {k}")),
        }
    }
    req = match &case.body {
        cases::Body::None => req,
        cases::Body::Sized(b) => req.body(b.clone()),
        cases::Body::Chunked(b) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = b
                .chunks(8 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        }
    };
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(_) => Outcome::Status(status),
                Err(e) => {
                    Outcome::Transport(format!("reading the {status} body: {}", error_chain(&e)))
                }
            }
        }
        Err(e) => Outcome::Transport(error_chain(&e)),
    }
}

/// The fuzz client: one pool of keep-alive connections, reused on purpose.
pub fn client(cfg: &FuzzConfig) -> Client {
    Client::builder()
        .pool_max_idle_per_host(cfg.concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .timeout(cfg.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
}

async fn document(http: &Client, base: &str) -> Result<Value, String> {
    let (s, v) = session::call(
        http,
        Method::GET,
        &format!("{base}/openapi.json"),
        None,
        &[],
        None,
    )
    .await?;
    if s == 200 && v.get("paths").is_some() {
        Ok(v)
    } else {
        Err(format!("GET {base}/openapi.json: {s}"))
    }
}

/// Fuzzes the target described by `cfg` and reports what it found; never panics on what
/// the server answers.
pub async fn run(cfg: FuzzConfig) -> FuzzReport {
    let http = client(&cfg);
    let api = cfg.api();
    let mut problems = Vec::new();
    let rss_before = cfg.pid.and_then(rss_kib);
    let mut ops = Vec::new();
    // Split services: each document's operations go to the service its `x-service` names
    // (a document may describe both); `common` ones are fuzzed on both.
    let split = api != cfg.base;
    let mut bases = vec![(cfg.base.clone(), "gateway")];
    if split {
        bases.push((api.clone(), "api"));
    }
    for (base, role) in &bases {
        match document(&http, base).await {
            Ok(doc) => ops.extend(spec::operations(&doc, base).into_iter().filter(|o| {
                !split
                    || o.service
                        .as_deref()
                        .is_none_or(|s| s == "common" || s == *role)
            })),
            Err(e) => problems.push(e),
        }
    }
    let mut setup = session::setup(&http, &cfg, &api).await;
    problems.append(&mut setup.problems);
    let mut report = FuzzReport {
        operations: ops
            .iter()
            .map(|o| format!("{} {}", o.base, o.label()))
            .collect(),
        pairs: 0,
        sent: 0,
        counts: BTreeMap::new(),
        failures: Vec::new(),
        failed_requests: 0,
        problems: Vec::new(),
        latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        rss: None,
        purchase: Err("not attempted".into()),
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    if !ops.is_empty() {
        let generator = cases::Generator::new(&ops, &setup.ctx, cfg.seed);
        report.pairs = generator.pairs.len();
        let mut index: BTreeMap<(String, Class, String, String, Outcome), usize> = BTreeMap::new();
        let mut results = futures::stream::iter(0..cfg.requests)
            .map(|n| {
                let case = generator.case(n);
                let http = &http;
                async move {
                    let t = Instant::now();
                    let outcome = send(http, &case).await;
                    (case, outcome, t.elapsed())
                }
            })
            .buffer_unordered(cfg.concurrency.max(1));
        while let Some((case, outcome, took)) = results.next().await {
            report.sent += 1;
            let _ = report
                .latency
                .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
            *report
                .counts
                .entry(case.class)
                .or_default()
                .entry(outcome.bucket())
                .or_default() += 1;
            if !outcome.fails(case.expect) {
                continue;
            }
            report.failed_requests += 1;
            let key = (
                case.operation.clone(),
                case.class,
                case.variant.clone(),
                case.method.clone(),
                outcome.clone(),
            );
            match index.get(&key) {
                Some(&i) => report.failures[i].count += 1,
                None => {
                    index.insert(key, report.failures.len());
                    report.failures.push(Failure {
                        class: case.class,
                        operation: case.operation.clone(),
                        method: case.method.clone(),
                        variant: case.variant.clone(),
                        expect: case.expect,
                        outcome,
                        count: 1,
                        url: case.url.clone(),
                        repro: repro(&case),
                    });
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report.purchase = session::purchase(&http, &cfg, &api, &setup).await;
    if let (Some(pid), Some(before)) = (cfg.pid, rss_before) {
        match rss_kib(pid) {
            Some(after) => {
                report.rss = Some(RssCheck {
                    before_kib: before,
                    after_kib: after,
                    budget_mib: cfg.rss_budget_mib,
                });
            }
            None => problems.push(format!("pid {pid}: no VmRSS after the fuzz (exited?)")),
        }
    } else if let Some(pid) = cfg.pid {
        problems.push(format!("pid {pid}: no VmRSS in /proc/{pid}/status"));
    }
    report.problems = problems;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_fail_as_the_contract_says() {
        assert!(Outcome::Status(500).fails(Expect::NoServerError));
        assert!(Outcome::Status(503).fails(Expect::Reject));
        assert!(Outcome::Status(201).fails(Expect::Reject));
        assert!(!Outcome::Status(201).fails(Expect::NoServerError));
        assert!(!Outcome::Status(413).fails(Expect::Reject));
        assert!(Outcome::Transport("reset".into()).fails(Expect::NoServerError));
        assert!(!Outcome::Unsendable("x".into()).fails(Expect::Reject));
    }

    #[test]
    fn rss_budget_is_growth_in_mib() {
        let r = RssCheck {
            before_kib: 1000,
            after_kib: 1000 + 2048,
            budget_mib: Some(2),
        };
        assert!(r.ok());
        assert!(
            !RssCheck {
                budget_mib: Some(1),
                ..r
            }
            .ok()
        );
    }

    #[test]
    fn curl_reproductions_escape_what_the_shell_would_eat() {
        assert_eq!(shell_quote(b"a b"), "'a b'");
        assert_eq!(shell_quote(b"it's\xff"), "$'it\\'s\\xff'");
    }
}
