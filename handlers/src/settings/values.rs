//! Value parsers of the settings and of the hosts' own options, and the helpers that resolve
//! secrets. Each parser's error text completes clap's
//! "invalid value 'x' for '--flag <VARIABLE>': ".

use clap::builder::ValueParser;
use clap::{Args, FromArgMatches};
use flash_core::limits::Rate;
use rand::RngCore;
use secrecy::SecretString;
use std::fmt;
use std::time::Duration;

/// A configuration value that is missing or unusable, found after parsing (for example a secret
/// a pod binary requires but the embedded default does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
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

    /// Prints the error and ends the process with status 2, like clap does for a bad value.
    pub fn exit(&self) -> ! {
        eprintln!("error: {self}");
        std::process::exit(2)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.variable, self.message)
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

/// Parses a group from command-line style arguments only, ignoring the process environment.
///
/// For tests (which run in parallel and must not depend on or mutate the environment) and for
/// [`Default`]. `args` excludes the program name.
pub fn parse_args_ignoring_env<T: Args + FromArgMatches>(args: &[&str]) -> Result<T, clap::Error> {
    let cmd = T::augment_args(clap::Command::new("flash")).mut_args(|a| a.env(None));
    let matches = cmd.try_get_matches_from(std::iter::once("flash").chain(args.iter().copied()))?;
    T::from_arg_matches(&matches)
}

/// The built-in defaults of a group: the `default_value`s of its options, the one place each
/// default is declared. They are covered by the tests, so a failure here is a bug, never an
/// operator's mistake.
pub fn built_in_defaults<T: Args + FromArgMatches>() -> T {
    match parse_args_ignoring_env(&[]) {
        Ok(v) => v,
        Err(e) => panic!("bug: a built-in configuration default does not parse: {e}"),
    }
}

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

/// [`parse_bool`] as a clap value parser.
pub fn bool_parser() -> ValueParser {
    ValueParser::new(parse_bool)
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
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number between 0 and 1, got '{s}'"))?;
    if v.is_nan() {
        return Err("expected a number between 0 and 1, got NaN".into());
    }
    Ok(v.clamp(0.0, 1.0))
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

/// A request budget: at most `limit` hits per `window`, written `N/min`, `N/s`, `N/h`,
/// `N/<duration>` (`20/30s`) or a bare `N` (per minute).
pub fn parse_rate_limit(s: &str) -> Result<Rate, String> {
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
    Ok(Rate { limit, window })
}

/// A rate limit as [`parse_rate_limit`] reads it (`10/min`, `5/s`, `20/30s`).
pub fn format_rate_limit(rate: Rate) -> String {
    match rate.window.as_millis() {
        1_000 => format!("{}/s", rate.limit),
        60_000 => format!("{}/min", rate.limit),
        3_600_000 => format!("{}/h", rate.limit),
        _ => format!("{}/{}", rate.limit, humantime::format_duration(rate.window)),
    }
}

/// Password hashes at once by default: one per CPU.
pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
