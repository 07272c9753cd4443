//! Typed configuration, read from environment variables once at start-up.
//!
//! Every option is a clap argument with a long flag and an environment variable of the legacy
//! name, so `--help` lists each one with its variable and default, and an invalid value stops the
//! process before anything is served, with a message that names the variable (the flag's value
//! name *is* the variable name: `invalid value 'abc' for '--port <PORT>'`).
//!
//! The option groups are `clap::Args` structs; a binary composes the ones it needs:
//!
//! ```no_run
//! use flash_runtime::config::{AuthConfig, HttpConfig, TelemetryConfig};
//!
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     http: HttpConfig,
//!     #[command(flatten)]
//!     auth: AuthConfig,
//!     #[command(flatten)]
//!     telemetry: TelemetryConfig,
//! }
//!
//! let cli: Cli = flash_runtime::config::parse_from_env();
//! ```
//!
//! A binary whose default differs from the one here (the gateway pod listens on 3000, `flash up`
//! promotes every 200 ms) changes it on its own command with
//! `Cli::command().mut_arg("port", |a| a.default_value("3000"))` (the arg ids are the field
//! names), or, simpler, by setting the field after parsing when the variable is absent.
//!
//! Secrets are [`SecretString`]s: `Debug` prints `[REDACTED]` and `--help` never shows their
//! current value. Prefer the environment to the flags for secrets (flags are visible in `ps`).

use clap::builder::ValueParser;
use clap::{ArgAction, Args, FromArgMatches, ValueEnum};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The legacy gateway's allowed origins, plus the embedded default's own address.
pub const DEFAULT_CORS_ORIGINS: &str = "http://localhost:5173,https://www.highgarden.cloud,https://dev.highgarden.cloud,http://127.0.0.1:8080,http://localhost:8080";

/// A configuration value that is missing or unusable, found after parsing (for example a secret
/// a pod binary requires but the embedded default does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            variable,
            message: message.into(),
        }
    }

    /// Reports the error the way clap reports a bad value and ends the process with clap's usage
    /// exit code, so every start-up failure looks alike to an operator.
    pub fn exit(&self) -> ! {
        eprintln!("error: invalid configuration: {self}");
        std::process::exit(2)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Returns the configured secret, or `variable`'s error when it is unset.
pub fn require_secret(
    variable: &'static str,
    value: &Option<SecretString>,
) -> Result<SecretString, ConfigError> {
    value
        .clone()
        .ok_or_else(|| ConfigError::new(variable, "is required"))
}

/// The configured secret, or a fresh random one (256 bits, hex) for this process only.
///
/// For the embedded default, where nothing outlives the process: tokens signed with a random
/// secret simply stop verifying after a restart, which is what a fresh in-memory store implies
/// anyway. Pod binaries must use [`require_secret`] instead, since their pods must agree.
pub fn secret_or_random(value: Option<SecretString>) -> SecretString {
    value.unwrap_or_else(|| {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(hex::encode(bytes))
    })
}

/// Parses a binary's options from its arguments and the process environment; on an invalid value
/// prints clap's message (naming the variable) and exits with status 2.
///
/// A variable set to the empty string counts as unset, so its default applies: legacy `.env`
/// files and manifests blank values rather than delete them. Use this instead of
/// `T::parse()`.
pub fn parse_from_env<T: clap::Parser>() -> T {
    parse_command_from_env(T::command())
}

/// [`parse_from_env`] for a command a binary adjusted first (other defaults, global options).
pub fn parse_command_from_env<T: FromArgMatches>(cmd: clap::Command) -> T {
    let mut cmd = blank_env_as_unset(cmd, |name| std::env::var_os(name));
    let matches = cmd.clone().get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// Detaches every argument whose variable `lookup` finds blank from that variable.
fn blank_env_as_unset(
    cmd: clap::Command,
    lookup: impl Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
) -> clap::Command {
    cmd.mut_args(|a| {
        let blank = a
            .get_env()
            .and_then(&lookup)
            .is_some_and(|v| v.to_str().is_some_and(|s| s.trim().is_empty()));
        if blank { a.env(None) } else { a }
    })
}

/// Parses a group from command-line style arguments only, ignoring the process environment.
///
/// For tests (which run in parallel and must not depend on or mutate the environment) and for
/// [`Default`]. `args` excludes the program name.
pub fn parse_args_ignoring_env<T: Args + FromArgMatches>(args: &[&str]) -> Result<T, clap::Error> {
    let cmd = T::augment_args(clap::Command::new("flash")).mut_args(|a| a.env(None));
    let matches = cmd.try_get_matches_from(std::iter::once("flash").chain(args.iter().copied()))?;
    T::from_arg_matches(&matches)
}

/// The built-in defaults of a group. They are constants of this file, covered by the tests, so a
/// failure here is a bug in this crate, never an operator's mistake.
fn built_in_defaults<T: Args + FromArgMatches>() -> T {
    match parse_args_ignoring_env(&[]) {
        Ok(v) => v,
        Err(e) => panic!("flash-runtime bug: a built-in configuration default does not parse: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Each error text completes clap's "invalid value 'x' for '--flag <VARIABLE>': ".

/// A whole number of milliseconds (the `*_MS` variables).
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("expected a whole number of milliseconds, got '{s}'"))
}

/// A whole number of milliseconds, at least 1 (periods and lifetimes; zero would spin or expire
/// everything at once).
pub fn parse_positive_millis(s: &str) -> Result<Duration, String> {
    let d = parse_millis(s)?;
    if d.is_zero() {
        return Err("must be at least 1 millisecond".into());
    }
    Ok(d)
}

/// A token lifetime: a humantime duration (`15m`, `7d`, `1h 30m`) or a bare number of seconds.
///
/// A bare number is seconds, as for the numeric `expiresIn` of the legacy `jsonwebtoken`; the
/// legacy quirk that the *string* `"900"` meant 900 milliseconds is deliberately not reproduced.
pub fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("number of seconds out of range: '{t}'"))?
    } else {
        humantime::parse_duration(t)
            .map_err(|e| format!("expected a duration like 15m, 7d or a number of seconds ({e})"))?
    };
    if d < Duration::from_secs(1) {
        return Err("must be at least 1 second".into());
    }
    Ok(d)
}

/// `true`, `false`, `1` or `0` (any case). Anything else is refused rather than read as false.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true, false, 1 or 0, got '{s}'")),
    }
}

/// A non-empty secret.
pub fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// A count of at least 1.
pub fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number, got '{s}'")),
    }
}

/// A probability: a number clamped into `[0, 1]` (legacy behaviour); not a number is an error
/// (the legacy silently fell back to the default, hiding typos).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number between 0 and 1, got '{s}'"))?;
    if v.is_nan() {
        return Err("expected a number between 0 and 1, got NaN".into());
    }
    Ok(v.clamp(0.0, 1.0))
}

/// One allowed browser origin: scheme, host and optional port, nothing else (browsers send
/// `Origin` without a path, so `https://x.com/` would silently never match).
pub fn parse_origin(s: &str) -> Result<String, String> {
    let t = s.trim();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("origin '{t}' must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(format!(
            "origin '{t}' must be scheme://host[:port] without a path or trailing slash"
        ));
    }
    Ok(t.to_owned())
}

/// A bus queue name: 1..=200 characters of `[A-Za-z0-9_.:-]`, leaving room for the `.dlq` suffix
/// within every broker's limit.
pub fn parse_queue_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
    {
        return Err(format!("'{t}' may only contain letters, digits, _ . : -"));
    }
    Ok(t.to_owned())
}

/// A tracing filter directive (`info`, `flash_http=debug,info`).
pub fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a valid log filter: {e}"))
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn bool_parser() -> ValueParser {
    ValueParser::new(parse_bool)
}

/// A request budget: at most `limit` hits per `window`.
///
/// Written `N/min`, `N/s`, `N/h`, `N/<duration>` (`20/30s`) or a bare `N` (per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const fn per_minute(limit: u32) -> Self {
        RateLimit {
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// The handlers' form of this limit.
    pub const fn rate(self) -> flash_core::limits::Rate {
        flash_core::limits::Rate {
            limit: self.limit,
            window: self.window,
        }
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (count, per) = t.split_once('/').unwrap_or((t, "min"));
        let limit = match count.trim().parse::<u32>() {
            Ok(0) => return Err("the limit must be at least 1".into()),
            Ok(n) => n,
            Err(_) => {
                return Err(format!(
                    "expected N/min, N/s, N/h or N/<duration>, got '{s}'"
                ));
            }
        };
        let window = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other)
                .map_err(|e| format!("bad window '{other}' in '{s}' ({e})"))?,
        };
        if window < Duration::from_millis(1) {
            return Err("the window must be at least 1 millisecond".into());
        }
        Ok(RateLimit { limit, window })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window.as_millis() {
            1_000 => write!(f, "{}/s", self.limit),
            60_000 => write!(f, "{}/min", self.limit),
            3_600_000 => write!(f, "{}/h", self.limit),
            _ => write!(
                f,
                "{}/{}",
                self.limit,
                humantime::format_duration(self.window)
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Option groups.

/// Where and how an HTTP host listens.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP", about = None, long_about = None)]
pub struct HttpConfig {
    /// Listen port (the pods override the default: gateway 3000, api 4000).
    #[arg(
        long = "port",
        env = "PORT",
        value_name = "PORT",
        default_value_t = 8080
    )]
    pub port: u16,

    /// Gateway listen port; takes precedence over PORT for the gateway, as in the legacy.
    #[arg(
        long = "queue-gateway-port",
        env = "QUEUE_GATEWAY_PORT",
        value_name = "QUEUE_GATEWAY_PORT"
    )]
    pub queue_gateway_port: Option<u16>,

    /// Address to bind (0.0.0.0 in containers).
    #[arg(
        long = "host",
        env = "HOST",
        value_name = "HOST",
        default_value = "127.0.0.1"
    )]
    pub host: IpAddr,

    /// Browser origins allowed by CORS, comma-separated.
    #[arg(
        long = "cors-origins",
        env = "CORS_ORIGINS",
        value_name = "CORS_ORIGINS",
        value_delimiter = ',',
        default_value = DEFAULT_CORS_ORIGINS,
        value_parser = parse_origin
    )]
    pub cors_origins: Vec<String>,

    /// How long a client may take to send a request's headers, and then its body (slowloris):
    /// past it the request is refused (408, `Connection: close`) or the connection dropped.
    #[arg(
        long = "http-read-timeout-ms",
        env = "HTTP_READ_TIMEOUT_MS",
        value_name = "HTTP_READ_TIMEOUT_MS",
        default_value = "10000",
        value_parser = parse_positive_millis
    )]
    pub read_timeout: Duration,

    /// On SIGTERM, how long in-flight requests, messages and background tasks may take to finish.
    #[arg(
        long = "shutdown-grace-ms",
        env = "SHUTDOWN_GRACE_MS",
        value_name = "SHUTDOWN_GRACE_MS",
        default_value = "10000",
        value_parser = parse_millis
    )]
    pub shutdown_grace: Duration,
}

impl HttpConfig {
    /// `HOST:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// `HOST:QUEUE_GATEWAY_PORT`, else `HOST:PORT` (the legacy gateway's precedence).
    pub fn gateway_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.queue_gateway_port.unwrap_or(self.port))
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// Tokens, passwords and login limits.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Auth", about = None, long_about = None)]
pub struct AuthConfig {
    /// HMAC key of access tokens. Required by the pods; `flash up` makes a random one when unset.
    #[arg(
        long = "jwt-access-secret",
        env = "JWT_ACCESS_SECRET",
        value_name = "JWT_ACCESS_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub jwt_access_secret: Option<SecretString>,

    /// HMAC key of refresh tokens. Required by the gateway; `flash up` makes a random one.
    #[arg(
        long = "jwt-refresh-secret",
        env = "JWT_REFRESH_SECRET",
        value_name = "JWT_REFRESH_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub jwt_refresh_secret: Option<SecretString>,

    /// Access-token lifetime: a duration (15m, 1h) or a number of seconds.
    #[arg(
        long = "jwt-access-exp",
        env = "JWT_ACCESS_EXP",
        value_name = "JWT_ACCESS_EXP",
        default_value = "15m",
        value_parser = parse_lifetime
    )]
    pub access_ttl: Duration,

    /// Refresh-token lifetime: a duration (7d) or a number of seconds.
    #[arg(
        long = "jwt-refresh-exp",
        env = "JWT_REFRESH_EXP",
        value_name = "JWT_REFRESH_EXP",
        default_value = "7d",
        value_parser = parse_lifetime
    )]
    pub refresh_ttl: Duration,

    /// Shared secret of POST /auth/register/admin; unset disables admin registration.
    #[arg(
        long = "admin-register-secret",
        env = "ADMIN_REGISTER_SECRET",
        value_name = "ADMIN_REGISTER_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub admin_register_secret: Option<SecretString>,

    /// bcrypt cost of new password hashes (4..=31); existing hashes verify at their own cost.
    #[arg(
        long = "bcrypt-cost",
        env = "BCRYPT_COST",
        value_name = "BCRYPT_COST",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(4..=31)
    )]
    pub bcrypt_cost: u32,

    /// Login attempts allowed per user id (N/min, N/s, N/h or N/<duration>).
    #[arg(
        long = "login-rate-limit-per-user",
        env = "LOGIN_RATE_LIMIT_PER_USER",
        value_name = "LOGIN_RATE_LIMIT_PER_USER",
        default_value = "10/min"
    )]
    pub login_rate_limit_per_user: RateLimit,

    /// Login attempts allowed per client address (high: load tests and offices share addresses).
    #[arg(
        long = "login-rate-limit-per-ip",
        env = "LOGIN_RATE_LIMIT_PER_IP",
        value_name = "LOGIN_RATE_LIMIT_PER_IP",
        default_value = "300/min"
    )]
    pub login_rate_limit_per_ip: RateLimit,

    /// Registrations allowed per client address (each costs a password hash).
    #[arg(
        long = "register-rate-limit-per-ip",
        env = "REGISTER_RATE_LIMIT_PER_IP",
        value_name = "REGISTER_RATE_LIMIT_PER_IP",
        default_value = "60/min"
    )]
    pub register_rate_limit_per_ip: RateLimit,

    /// Password hashes computed at once on the blocking pool (default: number of CPUs), so a
    /// login storm cannot starve queue and order requests.
    #[arg(
        long = "password-hash-concurrency",
        env = "PASSWORD_HASH_CONCURRENCY",
        value_name = "PASSWORD_HASH_CONCURRENCY",
        default_value_t = default_hash_concurrency(),
        value_parser = parse_positive_usize
    )]
    pub password_hash_concurrency: usize,

    /// How long a "session alive" answer is trusted before an access token of that session is
    /// checked against the session store again (0: every request). A logout is enforced at once
    /// on the instance that took it and within this time on every other one.
    #[arg(
        long = "session-check-ms",
        env = "SESSION_CHECK_MS",
        value_name = "SESSION_CHECK_MS",
        default_value = "1000",
        value_parser = parse_millis
    )]
    pub session_check: Duration,

    /// Whether Socket.IO accepts the access token from `?token=` (legacy clients only: query
    /// strings land in proxy and load-balancer logs).
    #[arg(
        long = "socket-token-in-query",
        env = "SOCKET_TOKEN_IN_QUERY",
        value_name = "SOCKET_TOKEN_IN_QUERY",
        default_value = "false",
        action = ArgAction::Set,
        value_parser = bool_parser()
    )]
    pub socket_token_in_query: bool,
}

impl AuthConfig {
    /// `JWT_ACCESS_SECRET`, required.
    pub fn access_secret(&self) -> Result<SecretString, ConfigError> {
        require_secret("JWT_ACCESS_SECRET", &self.jwt_access_secret)
    }

    /// `JWT_REFRESH_SECRET`, required.
    pub fn refresh_secret(&self) -> Result<SecretString, ConfigError> {
        require_secret("JWT_REFRESH_SECRET", &self.jwt_refresh_secret)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// The waiting queue and admission.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Queue", about = None, long_about = None)]
pub struct QueueConfig {
    /// Most admitted (READY or USED) tickets per event at any instant.
    #[arg(
        long = "queue-ready-capacity",
        env = "QUEUE_READY_CAPACITY",
        value_name = "QUEUE_READY_CAPACITY",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub ready_capacity: u64,

    /// Lifetime of an admission and its gate token.
    #[arg(
        long = "queue-gate-token-ttl-ms",
        env = "QUEUE_GATE_TOKEN_TTL_MS",
        value_name = "QUEUE_GATE_TOKEN_TTL_MS",
        default_value = "120000",
        value_parser = parse_positive_millis
    )]
    pub gate_token_ttl: Duration,

    /// Promotion period; promotion also runs promptly whenever a slot frees.
    #[arg(
        long = "queue-promotion-interval-ms",
        env = "QUEUE_PROMOTION_INTERVAL_MS",
        value_name = "QUEUE_PROMOTION_INTERVAL_MS",
        default_value = "3000",
        value_parser = parse_positive_millis
    )]
    pub promotion_interval: Duration,

    /// Period of live position updates and of one queue:summary per room.
    #[arg(
        long = "queue-ws-refresh-ms",
        env = "QUEUE_WS_REFRESH_MS",
        value_name = "QUEUE_WS_REFRESH_MS",
        default_value = "3000",
        value_parser = parse_positive_millis
    )]
    pub ws_refresh: Duration,

    /// Whether POST /orders requires an admission (true/false/1/0).
    #[arg(
        long = "queue-enforce-admission",
        env = "QUEUE_ENFORCE_ADMISSION",
        value_name = "QUEUE_ENFORCE_ADMISSION",
        default_value = "true",
        action = ArgAction::Set,
        value_parser = bool_parser()
    )]
    pub enforce_admission: bool,

    /// HMAC key of gate tokens. Unset: derived from JWT_ACCESS_SECRET as
    /// hex(HMAC-SHA256(JWT_ACCESS_SECRET, "flash-tickets/queue-gate-token/v1")), so every pod
    /// agrees without another secret to distribute, yet the key differs from the access key.
    #[arg(
        long = "queue-gate-secret",
        env = "QUEUE_GATE_SECRET",
        value_name = "QUEUE_GATE_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub gate_secret: Option<SecretString>,

    /// Enqueue calls allowed per user (N/min, N/s, N/h or N/<duration>).
    #[arg(
        long = "enqueue-rate-limit-per-user",
        env = "ENQUEUE_RATE_LIMIT_PER_USER",
        value_name = "ENQUEUE_RATE_LIMIT_PER_USER",
        default_value = "30/min"
    )]
    pub enqueue_rate_limit_per_user: RateLimit,

    /// Enqueue calls allowed per client address.
    #[arg(
        long = "enqueue-rate-limit-per-ip",
        env = "ENQUEUE_RATE_LIMIT_PER_IP",
        value_name = "ENQUEUE_RATE_LIMIT_PER_IP",
        default_value = "600/min"
    )]
    pub enqueue_rate_limit_per_ip: RateLimit,
}

/// Domain-separation label of the derived gate-token key. Changing it invalidates every gate
/// token in flight, so it carries a version.
const GATE_KEY_LABEL: &[u8] = b"flash-tickets/queue-gate-token/v1";

impl QueueConfig {
    /// `QUEUE_GATE_SECRET`, or the key derived from the access secret (see the option's help).
    pub fn effective_gate_secret(&self, access_secret: &SecretString) -> SecretString {
        if let Some(s) = &self.gate_secret {
            return s.clone();
        }
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the signature
        // infallible without an `expect`.
        match Hmac::<Sha256>::new_from_slice(access_secret.expose_secret().as_bytes()) {
            Ok(mut mac) => {
                mac.update(GATE_KEY_LABEL);
                SecretString::from(hex::encode(mac.finalize().into_bytes()))
            }
            Err(_) => secret_or_random(None),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// Orders.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Orders", about = None, long_about = None)]
pub struct OrderConfig {
    /// How long a HOLD keeps its stock before it expires.
    #[arg(
        long = "order-hold-ttl-ms",
        env = "ORDER_HOLD_TTL_MS",
        value_name = "ORDER_HOLD_TTL_MS",
        default_value = "300000",
        value_parser = parse_positive_millis
    )]
    pub hold_ttl: Duration,

    /// How long an Idempotency-Key is remembered per user.
    #[arg(
        long = "idempotency-ttl-ms",
        env = "IDEMPOTENCY_TTL_MS",
        value_name = "IDEMPOTENCY_TTL_MS",
        default_value = "86400000",
        value_parser = parse_positive_millis
    )]
    pub idempotency_ttl: Duration,

    /// POST /orders calls allowed per user.
    #[arg(
        long = "order-rate-limit-per-user",
        env = "ORDER_RATE_LIMIT_PER_USER",
        value_name = "ORDER_RATE_LIMIT_PER_USER",
        default_value = "30/min"
    )]
    pub order_rate_limit_per_user: RateLimit,

    /// POST /orders calls allowed per client address.
    #[arg(
        long = "order-rate-limit-per-ip",
        env = "ORDER_RATE_LIMIT_PER_IP",
        value_name = "ORDER_RATE_LIMIT_PER_IP",
        default_value = "600/min"
    )]
    pub order_rate_limit_per_ip: RateLimit,
}

impl Default for OrderConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// Payments on the api side, and the bus they travel on.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Payments", about = None, long_about = None)]
pub struct PaymentConfig {
    /// A payment still REQ after this long is failed (and its order becomes payable again).
    #[arg(
        long = "payment-timeout-ms",
        env = "PAYMENT_TIMEOUT_MS",
        value_name = "PAYMENT_TIMEOUT_MS",
        default_value = "60000",
        value_parser = parse_positive_millis
    )]
    pub timeout: Duration,

    /// HMAC key of the X-Signature of POST /payments/callback; unset: only ADMIN tokens may call it.
    #[arg(
        long = "payment-callback-secret",
        env = "PAYMENT_CALLBACK_SECRET",
        value_name = "PAYMENT_CALLBACK_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub callback_secret: Option<SecretString>,

    /// Let an order's owner call POST /payments/callback (legacy load plans; true/false/1/0).
    #[arg(
        long = "payments-allow-owner-callback",
        env = "PAYMENTS_ALLOW_OWNER_CALLBACK",
        value_name = "PAYMENTS_ALLOW_OWNER_CALLBACK",
        default_value = "false",
        action = ArgAction::Set,
        value_parser = bool_parser()
    )]
    pub allow_owner_callback: bool,

    /// POST /payments calls allowed per user.
    #[arg(
        long = "payment-rate-limit-per-user",
        env = "PAYMENT_RATE_LIMIT_PER_USER",
        value_name = "PAYMENT_RATE_LIMIT_PER_USER",
        default_value = "30/min"
    )]
    pub payment_rate_limit_per_user: RateLimit,

    /// POST /payments calls allowed per client address.
    #[arg(
        long = "payment-rate-limit-per-ip",
        env = "PAYMENT_RATE_LIMIT_PER_IP",
        value_name = "PAYMENT_RATE_LIMIT_PER_IP",
        default_value = "600/min"
    )]
    pub payment_rate_limit_per_ip: RateLimit,

    /// Queue of payment requests (api → pay); its dead letters go to `<name>.dlq`.
    #[arg(
        long = "payment-request-queue",
        env = "PAYMENT_REQUEST_QUEUE",
        value_name = "PAYMENT_REQUEST_QUEUE",
        default_value = flash_core::messages::DEFAULT_REQUEST_QUEUE,
        value_parser = parse_queue_name
    )]
    pub request_queue: String,

    /// Queue of payment results (pay → api); its dead letters go to `<name>.dlq`.
    #[arg(
        long = "payment-result-queue",
        env = "PAYMENT_RESULT_QUEUE",
        value_name = "PAYMENT_RESULT_QUEUE",
        default_value = flash_core::messages::DEFAULT_RESULT_QUEUE,
        value_parser = parse_queue_name
    )]
    pub result_queue: String,

    /// Deliveries of one message before it is dead-lettered.
    #[arg(
        long = "bus-max-attempts",
        env = "BUS_MAX_ATTEMPTS",
        value_name = "BUS_MAX_ATTEMPTS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub bus_max_attempts: u32,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// The mock payment processor.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pay worker", about = None, long_about = None)]
pub struct PayConfig {
    /// Probability of an OK verdict, clamped into [0, 1].
    #[arg(
        long = "payment-success-rate",
        env = "PAYMENT_SUCCESS_RATE",
        value_name = "PAYMENT_SUCCESS_RATE",
        default_value = "0.85",
        value_parser = parse_rate
    )]
    pub success_rate: f64,

    /// Shortest simulated processing time.
    #[arg(
        long = "payment-processing-min-ms",
        env = "PAYMENT_PROCESSING_MIN_MS",
        value_name = "PAYMENT_PROCESSING_MIN_MS",
        default_value = "1000",
        value_parser = parse_millis
    )]
    processing_min: Duration,

    /// Longest simulated processing time; raised to the minimum when below it.
    #[arg(
        long = "payment-processing-max-ms",
        env = "PAYMENT_PROCESSING_MAX_MS",
        value_name = "PAYMENT_PROCESSING_MAX_MS",
        default_value = "4000",
        value_parser = parse_millis
    )]
    processing_max: Duration,

    /// Payment requests processed at once.
    #[arg(
        long = "pay-concurrency",
        env = "PAY_CONCURRENCY",
        value_name = "PAY_CONCURRENCY",
        default_value_t = 32,
        value_parser = parse_positive_usize
    )]
    pub concurrency: usize,

    /// Port of the pay worker's health server.
    #[arg(
        long = "pay-health-port",
        env = "PAY_HEALTH_PORT",
        value_name = "PAY_HEALTH_PORT",
        default_value_t = 3100
    )]
    pub health_port: u16,
}

impl PayConfig {
    pub fn processing_min(&self) -> Duration {
        self.processing_min
    }

    /// Never below [`PayConfig::processing_min`] (the legacy forced max ≥ min rather than fail).
    pub fn processing_max(&self) -> Duration {
        self.processing_max.max(self.processing_min)
    }
}

impl Default for PayConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Telemetry", about = None, long_about = None)]
pub struct TelemetryConfig {
    /// Log line format.
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        value_name = "LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// Full tracing filter (`info,flash_http=debug`); takes precedence over LOG_LEVEL.
    #[arg(
        long = "rust-log",
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        value_parser = parse_filter
    )]
    pub rust_log: Option<String>,

    /// Log level (or filter) used when RUST_LOG is unset.
    #[arg(
        long = "log-level",
        env = "LOG_LEVEL",
        value_name = "LOG_LEVEL",
        default_value = "info",
        value_parser = parse_filter
    )]
    pub log_level: String,
}

impl TelemetryConfig {
    /// The filter directive in force: RUST_LOG, else LOG_LEVEL.
    pub fn filter(&self) -> &str {
        self.rust_log.as_deref().unwrap_or(&self.log_level)
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        built_in_defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// Every group at once, as the all-in-one binary composes them.
    #[derive(Debug, Parser)]
    struct All {
        #[command(flatten)]
        http: HttpConfig,
        #[command(flatten)]
        auth: AuthConfig,
        #[command(flatten)]
        queue: QueueConfig,
        #[command(flatten)]
        order: OrderConfig,
        #[command(flatten)]
        payment: PaymentConfig,
        #[command(flatten)]
        pay: PayConfig,
        #[command(flatten)]
        telemetry: TelemetryConfig,
    }

    fn command_without_env() -> clap::Command {
        All::command().mut_args(|a| a.env(None))
    }

    fn parse(args: &[&str]) -> Result<All, clap::Error> {
        let m = command_without_env()
            .try_get_matches_from(std::iter::once("flash").chain(args.iter().copied()))?;
        All::from_arg_matches(&m)
    }

    fn error_text(args: &[&str]) -> String {
        match parse(args) {
            Ok(v) => panic!("{args:?} should be refused, parsed as {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_match_the_spec_and_the_legacy() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.http.port, 8080);
        assert_eq!(c.http.queue_gateway_port, None);
        assert_eq!(c.http.addr().to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.http.cors_origins,
            [
                "http://localhost:5173",
                "https://www.highgarden.cloud",
                "https://dev.highgarden.cloud",
                "http://127.0.0.1:8080",
                "http://localhost:8080"
            ]
        );
        assert_eq!(c.http.shutdown_grace, Duration::from_secs(10));

        assert!(c.auth.jwt_access_secret.is_none());
        assert_eq!(c.auth.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.auth.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.auth.bcrypt_cost, 10);
        assert_eq!(c.auth.login_rate_limit_per_user, RateLimit::per_minute(10));
        assert_eq!(c.auth.login_rate_limit_per_ip, RateLimit::per_minute(300));
        assert_eq!(c.auth.password_hash_concurrency, default_hash_concurrency());

        assert_eq!(c.queue.ready_capacity, 50);
        assert_eq!(c.queue.gate_token_ttl, Duration::from_millis(120_000));
        assert_eq!(c.queue.promotion_interval, Duration::from_millis(3000));
        assert_eq!(c.queue.ws_refresh, Duration::from_millis(3000));
        assert!(c.queue.enforce_admission);
        assert_eq!(
            c.queue.enqueue_rate_limit_per_user,
            RateLimit::per_minute(30)
        );
        // SPEC §11's doors, as the handlers' own defaults declare them.
        let doors = flash_core::limits::DoorLimits::default();
        for (parsed, default) in [
            (c.auth.register_rate_limit_per_ip, doors.register_per_addr),
            (c.auth.login_rate_limit_per_user, doors.login_per_user),
            (c.auth.login_rate_limit_per_ip, doors.login_per_addr),
            (c.queue.enqueue_rate_limit_per_user, doors.enqueue_per_user),
            (c.queue.enqueue_rate_limit_per_ip, doors.enqueue_per_addr),
            (c.order.order_rate_limit_per_user, doors.order_per_user),
            (c.order.order_rate_limit_per_ip, doors.order_per_addr),
            (
                c.payment.payment_rate_limit_per_user,
                doors.payment_per_user,
            ),
            (c.payment.payment_rate_limit_per_ip, doors.payment_per_addr),
        ] {
            assert_eq!(parsed.rate(), default);
        }

        assert_eq!(c.order.hold_ttl, Duration::from_millis(300_000));
        assert_eq!(c.order.idempotency_ttl, Duration::from_secs(86_400));

        assert_eq!(c.payment.timeout, Duration::from_millis(60_000));
        assert!(!c.payment.allow_owner_callback);
        assert_eq!(c.payment.request_queue, "payments_request");
        assert_eq!(c.payment.result_queue, "payments_result");
        assert_eq!(c.payment.bus_max_attempts, 5);

        assert_eq!(c.pay.success_rate, 0.85);
        assert_eq!(c.pay.processing_min(), Duration::from_millis(1000));
        assert_eq!(c.pay.processing_max(), Duration::from_millis(4000));
        assert_eq!(c.pay.concurrency, 32);
        assert_eq!(c.pay.health_port, 3100);

        assert_eq!(c.telemetry.log_format, LogFormat::Text);
        assert_eq!(c.telemetry.filter(), "info");
    }

    #[test]
    fn default_impls_equal_the_parsed_defaults() {
        let c = parse(&[]).unwrap();
        // Debug covers every field and redacts nothing here (no secret is set by default).
        assert_eq!(
            format!("{:?}", HttpConfig::default()),
            format!("{:?}", c.http)
        );
        assert_eq!(
            format!("{:?}", AuthConfig::default()),
            format!("{:?}", c.auth)
        );
        assert_eq!(
            format!("{:?}", QueueConfig::default()),
            format!("{:?}", c.queue)
        );
        assert_eq!(
            format!("{:?}", OrderConfig::default()),
            format!("{:?}", c.order)
        );
        assert_eq!(
            format!("{:?}", PaymentConfig::default()),
            format!("{:?}", c.payment)
        );
        assert_eq!(
            format!("{:?}", PayConfig::default()),
            format!("{:?}", c.pay)
        );
        assert_eq!(
            format!("{:?}", TelemetryConfig::default()),
            format!("{:?}", c.telemetry)
        );
    }

    #[test]
    fn every_option_has_an_env_var_named_in_its_flag_and_value_name() {
        let cmd = All::command();
        let mut seen = 0;
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg
                .get_env()
                .and_then(|e| e.to_str())
                .unwrap_or_else(|| panic!("option {id} has no environment variable"));
            assert_eq!(
                arg.get_long(),
                Some(env.to_ascii_lowercase().replace('_', "-").as_str()),
                "flag of {env}"
            );
            // The value name appears in every clap error, which is how errors name the variable.
            let names: Vec<&str> = arg
                .get_value_names()
                .unwrap_or_default()
                .iter()
                .map(|n| n.as_str())
                .collect();
            assert_eq!(names, [env], "value name of {env}");
            seen += 1;
        }
        assert_eq!(seen, 46);
    }

    #[test]
    fn help_lists_variables_and_defaults_but_never_secret_values() {
        let help = All::command().render_long_help().to_string();
        for needle in [
            "[env: PORT=",
            "[default: 8080]",
            "[env: JWT_ACCESS_EXP=",
            "[default: 15m]",
            "[env: PAYMENT_SUCCESS_RATE=",
            "[default: 0.85]",
            "[env: QUEUE_GATE_SECRET]",
        ] {
            assert!(help.contains(needle), "help lacks {needle}:\n{help}");
        }
        for secret in [
            "jwt-access-secret",
            "jwt-refresh-secret",
            "admin-register-secret",
            "queue-gate-secret",
            "payment-callback-secret",
        ] {
            let cmd = All::command();
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(secret))
                .unwrap();
            assert!(
                arg.is_hide_env_values_set(),
                "{secret} would show its value"
            );
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (args, variable) in [
            (&["--port", "http"][..], "PORT"),
            (&["--host", "my-laptop"][..], "HOST"),
            (&["--payment-success-rate", "high"], "PAYMENT_SUCCESS_RATE"),
            (&["--payment-success-rate", "NaN"], "PAYMENT_SUCCESS_RATE"),
            (&["--jwt-access-exp", "soon"], "JWT_ACCESS_EXP"),
            (&["--jwt-refresh-exp", "0"], "JWT_REFRESH_EXP"),
            (&["--bcrypt-cost", "3"], "BCRYPT_COST"),
            (&["--bcrypt-cost", "32"], "BCRYPT_COST"),
            (
                &["--queue-enforce-admission", "yes"],
                "QUEUE_ENFORCE_ADMISSION",
            ),
            (&["--queue-ready-capacity", "0"], "QUEUE_READY_CAPACITY"),
            (
                &["--queue-promotion-interval-ms", "0"],
                "QUEUE_PROMOTION_INTERVAL_MS",
            ),
            (&["--order-hold-ttl-ms", "5m"], "ORDER_HOLD_TTL_MS"),
            (
                &["--login-rate-limit-per-ip", "0/min"],
                "LOGIN_RATE_LIMIT_PER_IP",
            ),
            (
                &["--enqueue-rate-limit-per-user", "lots"],
                "ENQUEUE_RATE_LIMIT_PER_USER",
            ),
            (&["--cors-origins", "example.com"], "CORS_ORIGINS"),
            (&["--cors-origins", "https://example.com/"], "CORS_ORIGINS"),
            (
                &["--payment-request-queue", "pay me"],
                "PAYMENT_REQUEST_QUEUE",
            ),
            (&["--pay-concurrency", "0"], "PAY_CONCURRENCY"),
            (&["--jwt-access-secret", ""], "JWT_ACCESS_SECRET"),
            (&["--log-format", "xml"], "LOG_FORMAT"),
            (&["--rust-log", "info,=="], "RUST_LOG"),
        ] {
            let text = error_text(args);
            assert!(text.contains(variable), "{args:?}: {text}");
        }
    }

    #[test]
    fn values_are_parsed_and_normalised() {
        let c = parse(&[
            "--queue-gateway-port",
            "3000",
            "--host",
            "0.0.0.0",
            "--cors-origins",
            "https://a.example, http://b.example:8080",
            "--payment-success-rate",
            "1.7",
            "--payment-processing-min-ms",
            "500",
            "--payment-processing-max-ms",
            "100",
            "--queue-enforce-admission",
            "0",
            "--payments-allow-owner-callback",
            "TRUE",
            "--log-format",
            "JSON",
            "--rust-log",
            "debug",
            "--jwt-access-exp",
            "900",
        ])
        .unwrap();
        assert_eq!(c.http.gateway_addr().to_string(), "0.0.0.0:3000");
        assert_eq!(c.http.addr().to_string(), "0.0.0.0:8080");
        assert_eq!(
            c.http.cors_origins,
            ["https://a.example", "http://b.example:8080"]
        );
        assert_eq!(c.pay.success_rate, 1.0);
        assert_eq!(c.pay.processing_min(), Duration::from_millis(500));
        assert_eq!(c.pay.processing_max(), Duration::from_millis(500));
        assert!(!c.queue.enforce_admission);
        assert!(c.payment.allow_owner_callback);
        assert_eq!(c.telemetry.log_format, LogFormat::Json);
        assert_eq!(c.telemetry.filter(), "debug");
        assert_eq!(c.auth.access_ttl, Duration::from_secs(900));
        assert_eq!(parse_rate("-0.5"), Ok(0.0));
    }

    #[test]
    fn blank_variables_count_as_unset() {
        let cmd = blank_env_as_unset(All::command(), |name| {
            (name == "PORT" || name == "CORS_ORIGINS").then(|| " ".into())
        });
        let port = cmd.get_arguments().find(|a| a.get_id() == "port").unwrap();
        assert_eq!(port.get_env(), None);
        let host = cmd.get_arguments().find(|a| a.get_id() == "host").unwrap();
        assert_eq!(host.get_env().and_then(|e| e.to_str()), Some("HOST"));
    }

    #[test]
    fn lifetimes_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_lifetime("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_lifetime("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_lifetime("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_lifetime(" 3600 "), Ok(Duration::from_secs(3600)));
        assert!(parse_lifetime("500ms").is_err(), "below one second");
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("").is_err());
        assert!(parse_lifetime("-5").is_err());
        assert!(parse_lifetime("15 parsecs").is_err());
    }

    #[test]
    fn millis_are_whole_numbers() {
        assert_eq!(parse_millis("0"), Ok(Duration::ZERO));
        assert_eq!(parse_millis("120000"), Ok(Duration::from_secs(120)));
        assert!(parse_millis("2m").is_err());
        assert!(parse_millis("-1").is_err());
        assert!(parse_positive_millis("0").is_err());
    }

    #[test]
    fn rate_limits_round_trip() {
        for (text, limit, window_ms, shown) in [
            ("10/min", 10, 60_000, "10/min"),
            ("10", 10, 60_000, "10/min"),
            ("5/s", 5, 1_000, "5/s"),
            ("100/h", 100, 3_600_000, "100/h"),
            ("20/30s", 20, 30_000, "20/30s"),
        ] {
            let r: RateLimit = text.parse().unwrap();
            assert_eq!(r.limit, limit, "{text}");
            assert_eq!(r.window, Duration::from_millis(window_ms), "{text}");
            assert_eq!(r.to_string(), shown);
        }
        assert!("0/min".parse::<RateLimit>().is_err());
        assert!("10/0s".parse::<RateLimit>().is_err());
        assert!("ten/min".parse::<RateLimit>().is_err());
    }

    #[test]
    fn bools_accept_only_true_false_one_zero() {
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("False"), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = parse(&[
            "--jwt-access-secret",
            "hunter2-access",
            "--jwt-refresh-secret",
            "hunter2-refresh",
            "--admin-register-secret",
            "hunter2-admin",
            "--queue-gate-secret",
            "hunter2-gate",
            "--payment-callback-secret",
            "hunter2-callback",
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            c.auth.access_secret().unwrap().expose_secret(),
            "hunter2-access"
        );
    }

    #[test]
    fn missing_required_secrets_name_their_variable() {
        let auth = AuthConfig::default();
        let e = auth.access_secret().unwrap_err();
        assert_eq!(e.variable, "JWT_ACCESS_SECRET");
        assert!(e.to_string().starts_with("JWT_ACCESS_SECRET"));
        assert_eq!(
            auth.refresh_secret().unwrap_err().variable,
            "JWT_REFRESH_SECRET"
        );
    }

    #[test]
    fn random_secrets_are_fresh_and_configured_ones_kept() {
        let a = secret_or_random(None);
        let b = secret_or_random(None);
        assert_eq!(a.expose_secret().len(), 64);
        assert_ne!(a.expose_secret(), b.expose_secret());
        let kept = secret_or_random(Some(SecretString::from("given")));
        assert_eq!(kept.expose_secret(), "given");
    }

    #[test]
    fn gate_secret_is_derived_stably_and_differs_from_the_access_secret() {
        let access = SecretString::from("access-key");
        let q = QueueConfig::default();
        let one = q.effective_gate_secret(&access);
        let two = q.effective_gate_secret(&access);
        assert_eq!(one.expose_secret(), two.expose_secret());
        assert_ne!(one.expose_secret(), "access-key");
        let other = q.effective_gate_secret(&SecretString::from("another-key"));
        assert_ne!(one.expose_secret(), other.expose_secret());

        let q: QueueConfig = parse_args_ignoring_env(&["--queue-gate-secret", "gate"]).unwrap();
        assert_eq!(q.effective_gate_secret(&access).expose_secret(), "gate");
    }
}
