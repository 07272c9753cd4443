//! Command-line options ([`RehearseArgs`]) and the validated [`Plan`] a rehearsal runs.

use clap::{Args, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How buyers learn that they are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitMode {
    /// Socket.IO `/queue`: join with `queue/join` (as the web does) and wait for the
    /// `queue:update` that says READY.
    Socket,
    /// REST: `POST /queue/enqueue`, then `GET /queue/status` until READY.
    Poll,
}

/// Which queue buyers wait in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// The queue of the event they buy.
    Event,
    /// The site-wide `__global__` queue (an admission there unlocks any event).
    Global,
}

/// When buyers log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginPhase {
    /// Everyone logs in before the sale clock starts (a sale's buyers are already on the page).
    Before,
    /// Logging in is the first step of each journey, on the sale clock.
    Inline,
}

/// An inclusive range `a..b`, or a single value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
}

impl FromStr for Range<u32> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_range(s, |p| {
            p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}"))
        })
    }
}

impl FromStr for Range<Duration> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_range(s, parse_duration)
    }
}

fn parse_range<T: PartialOrd + Copy>(
    s: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Range<T>, String> {
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let v = one(s)?;
            (v, v)
        }
    };
    if min > max {
        return Err(format!("range {s:?} is empty (its start is above its end)"));
    }
    Ok(Range { min, max })
}

/// `250ms`, `2s`, `1m`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// `flash-rehearse` / `flash rehearse`: simulate a flash sale end to end against a running
/// deployment and audit that nothing was oversold or lost.
#[derive(Debug, Clone, Args)]
pub struct RehearseArgs {
    /// Base URL serving both the gateway and the api routes (`flash up`).
    #[arg(long, env = "REHEARSE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Gateway base URL (auth, queue, Socket.IO) when it differs from --url.
    #[arg(long, env = "REHEARSE_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Api base URL (events, orders, payments) when it differs from --url.
    #[arg(long, env = "REHEARSE_API_URL")]
    pub api_url: Option<String>,

    /// Number of simulated buyers.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub users: u32,
    /// Login names are <prefix><index, zero-padded to --user-digits> (the legacy test0000…).
    #[arg(long, default_value = "test")]
    pub user_prefix: String,
    /// Index of the first account.
    #[arg(long, default_value_t = 0)]
    pub user_offset: u32,
    /// Zero-padded width of the account index.
    #[arg(long, default_value_t = 4)]
    pub user_digits: usize,
    /// Password of every account.
    #[arg(
        long,
        env = "REHEARSE_PASSWORD",
        default_value = "testtest",
        hide_env_values = true
    )]
    pub password: String,
    /// Register the accounts first (`POST /auth/register`; an existing account is fine).
    #[arg(long)]
    pub register: bool,
    /// Log everyone in before the sale clock starts, or as the first step of each journey.
    #[arg(long, value_enum, default_value = "before")]
    pub login: LoginPhase,

    /// Event(s) to buy (UUID; repeat for several, buyers are spread round-robin). Default: the
    /// first ONSALE event of `GET /events`.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// Wait in each event's own queue or in the site-wide `__global__` queue.
    #[arg(long, value_enum, default_value = "event")]
    pub queue: QueueMode,
    /// Learn of the admission by Socket.IO push or by polling `GET /queue/status`.
    #[arg(long, value_enum, default_value = "socket")]
    pub wait: WaitMode,
    /// Period of `GET /queue/status` polls (poll mode).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Period of `GET /orders/:id` polls while a payment is processed.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub order_poll_interval: Duration,

    /// Arrivals spread evenly over this time; 0 = everyone at once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub ramp: Duration,
    /// Think time between the steps of a journey (`300ms` or a range `100ms..2s`).
    #[arg(long, default_value = "0ms")]
    pub think: Range<Duration>,
    /// Tickets per order (`1` or a range `1..4`).
    #[arg(long, default_value = "1")]
    pub qty: Range<u32>,
    /// Payment method sent to `POST /payments`.
    #[arg(long, default_value = "MOCK")]
    pub payment_method: String,
    /// Payments retried after a FAIL result (a buyer presses "retry").
    #[arg(long, default_value_t = 3)]
    pub payment_retries: u32,
    /// Pause before retrying a failed payment.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub payment_retry_delay: Duration,

    /// Most HTTP requests in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Most Socket.IO handshakes in flight at once (each also counts as a request).
    #[arg(long, default_value_t = 64)]
    pub socket_handshakes: usize,
    /// Retries of a request refused with 429/503 or (idempotent requests only) lost in transit.
    #[arg(long, default_value_t = 3)]
    pub http_retries: u32,
    /// Timeout of one HTTP request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The whole sale phase stops at this deadline, finished or not.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub deadline: Duration,
    /// After the sale, how long the audit waits for in-flight payments to settle.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub settle: Duration,

    /// Admission capacity to audit against (default: `readyCapacity` as the server reports it).
    #[arg(long)]
    pub capacity: Option<u64>,
    /// Exit non-zero when failed requests exceed this share of all requests (0 = any error).
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Also audit the database (PostgreSQL URL of the deployment under test).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for report.json, report.md and report.html (default: rehearsal-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live progress display (it is off anyway when stdout is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// A checked rehearsal plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub gateway_url: String,
    pub api_url: String,
    pub users: u32,
    pub user_prefix: String,
    pub user_offset: u32,
    pub user_digits: usize,
    #[serde(skip)]
    pub password: String,
    pub register: bool,
    pub login: LoginPhase,
    pub events: Vec<String>,
    pub queue: QueueMode,
    pub wait: WaitMode,
    #[serde(with = "ms")]
    pub poll_interval: Duration,
    #[serde(with = "ms")]
    pub order_poll_interval: Duration,
    #[serde(with = "ms")]
    pub ramp: Duration,
    #[serde(serialize_with = "range_ms")]
    pub think: Range<Duration>,
    pub qty: Range<u32>,
    pub payment_method: String,
    pub payment_retries: u32,
    #[serde(with = "ms")]
    pub payment_retry_delay: Duration,
    pub concurrency: usize,
    pub socket_handshakes: usize,
    pub http_retries: u32,
    #[serde(with = "ms")]
    pub request_timeout: Duration,
    #[serde(with = "ms")]
    pub deadline: Duration,
    #[serde(with = "ms")]
    pub settle: Duration,
    pub capacity: Option<u64>,
    pub max_error_rate: f64,
    #[serde(skip)]
    pub database_url: Option<String>,
    pub out: PathBuf,
    pub progress: bool,
}

mod ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

fn range_ms<S: serde::Serializer>(r: &Range<Duration>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Range", 2)?;
    st.serialize_field("minMs", &r.min.as_millis())?;
    st.serialize_field("maxMs", &r.max.as_millis())?;
    st.end()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{0}: not an http:// URL")]
    NotHttp(String),
    #[error(
        "{0}: only loopback targets are allowed (127.0.0.0/8, ::1, localhost); a rehearsal never loads another host"
    )]
    NotLoopback(String),
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("--qty must be at least 1")]
    ZeroQty,
    #[error("--concurrency and --socket-handshakes must be at least 1")]
    NoConcurrency,
    #[error("--event {0}: not a UUID")]
    BadEvent(String),
    #[error("--max-error-rate must be between 0 and 1")]
    BadErrorRate,
    #[error("--deadline must be positive")]
    NoDeadline,
    #[error("--user-offset + --users overflows")]
    TooManyUsers,
}

/// `http://host[:port]` of a loopback host, without a trailing slash.
pub fn loopback_base(raw: &str) -> Result<String, PlanError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .ok_or_else(|| PlanError::NotHttp(raw.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(PlanError::NotLoopback(raw.to_owned()));
    }
    Ok(trimmed.to_owned())
}

impl RehearseArgs {
    /// Validates the options once; every later step trusts the [`Plan`].
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let base = self.url.clone();
        let gateway_url = loopback_base(self.gateway_url.as_deref().unwrap_or(&base))?;
        let api_url = loopback_base(self.api_url.as_deref().unwrap_or(&base))?;
        if self.users == 0 {
            return Err(PlanError::NoUsers);
        }
        self.user_offset
            .checked_add(self.users)
            .ok_or(PlanError::TooManyUsers)?;
        if self.qty.min == 0 {
            return Err(PlanError::ZeroQty);
        }
        if self.concurrency == 0 || self.socket_handshakes == 0 {
            return Err(PlanError::NoConcurrency);
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(PlanError::BadErrorRate);
        }
        if self.deadline.is_zero() {
            return Err(PlanError::NoDeadline);
        }
        for e in &self.events {
            uuid::Uuid::parse_str(e).map_err(|_| PlanError::BadEvent(e.clone()))?;
        }
        let out = self.out.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            PathBuf::from(format!("rehearsal-{secs}"))
        });
        use std::io::IsTerminal;
        Ok(Plan {
            gateway_url,
            api_url,
            users: self.users,
            user_prefix: self.user_prefix.clone(),
            user_offset: self.user_offset,
            user_digits: self.user_digits,
            password: self.password.clone(),
            register: self.register,
            login: self.login,
            events: self.events.clone(),
            queue: self.queue,
            wait: self.wait,
            poll_interval: self.poll_interval,
            order_poll_interval: self.order_poll_interval,
            ramp: self.ramp,
            think: self.think,
            qty: self.qty,
            payment_method: self.payment_method.clone(),
            payment_retries: self.payment_retries,
            payment_retry_delay: self.payment_retry_delay,
            concurrency: self.concurrency,
            socket_handshakes: self.socket_handshakes,
            http_retries: self.http_retries,
            request_timeout: self.request_timeout,
            deadline: self.deadline,
            settle: self.settle,
            capacity: self.capacity,
            max_error_rate: self.max_error_rate,
            database_url: self.database_url.clone().filter(|u| !u.trim().is_empty()),
            out,
            progress: !self.no_progress && std::io::stdout().is_terminal(),
        })
    }
}

impl Plan {
    /// The login name of buyer `i` (0-based within the run).
    pub fn login_name(&self, i: u32) -> String {
        format!(
            "{}{:0width$}",
            self.user_prefix,
            self.user_offset + i,
            width = self.user_digits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RehearseArgs,
    }

    fn parse(extra: &[&str]) -> Result<Plan, PlanError> {
        let mut argv = vec!["flash-rehearse", "--url", "http://127.0.0.1:8080/"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv)
            .expect("arguments parse")
            .args
            .plan()
    }

    #[test]
    fn ranges_parse_as_single_values_or_spans() {
        assert_eq!("2".parse::<Range<u32>>(), Ok(Range { min: 2, max: 2 }));
        assert_eq!("1..4".parse::<Range<u32>>(), Ok(Range { min: 1, max: 4 }));
        assert!("4..1".parse::<Range<u32>>().is_err());
        let d: Range<Duration> = "100ms..2s".parse().unwrap();
        assert_eq!(d.min, Duration::from_millis(100));
        assert_eq!(d.max, Duration::from_secs(2));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert_eq!(
            loopback_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(loopback_base("http://localhost:3000").is_ok());
        assert!(loopback_base("http://[::1]:3000").is_ok());
        assert!(loopback_base("http://127.9.9.9").is_ok());
        assert!(matches!(
            loopback_base("http://10.0.0.5:8080"),
            Err(PlanError::NotLoopback(_))
        ));
        assert!(matches!(
            loopback_base("http://example.com"),
            Err(PlanError::NotLoopback(_))
        ));
        assert!(matches!(
            loopback_base("https://127.0.0.1"),
            Err(PlanError::NotHttp(_))
        ));
        assert!(matches!(
            parse(&["--api-url", "http://192.168.1.2:4000"]),
            Err(PlanError::NotLoopback(_))
        ));
    }

    #[test]
    fn a_plan_names_the_legacy_accounts_and_rejects_nonsense() {
        let p = parse(&["-n", "3", "--user-offset", "7"]).unwrap();
        assert_eq!(p.gateway_url, "http://127.0.0.1:8080");
        assert_eq!(p.login_name(0), "test0007");
        assert_eq!(p.login_name(2), "test0009");
        assert_eq!(parse(&["-n", "0"]).unwrap_err(), PlanError::NoUsers);
        assert_eq!(parse(&["--qty", "0"]).unwrap_err(), PlanError::ZeroQty);
        assert!(matches!(
            parse(&["--event", "nope"]).unwrap_err(),
            PlanError::BadEvent(_)
        ));
        assert_eq!(
            parse(&["--max-error-rate", "2"]).unwrap_err(),
            PlanError::BadErrorRate
        );
    }
}
