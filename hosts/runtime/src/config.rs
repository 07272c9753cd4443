//! Typed configuration, read from environment variables once at start-up.
//!
//! Every option is a clap argument with a long flag and an environment variable of the legacy
//! name, so `--help` lists each one with its variable and default, and an invalid value stops the
//! process before anything is served, with a message that names the variable (the flag's value
//! name *is* the variable name: `invalid value 'abc' for '--port <PORT>'`).
//!
//! The option groups are `clap::Args` structs: the business settings are
//! [`flash_handlers::Settings`] (their parsers are re-exported here), the host groups
//! ([`HttpConfig`], [`TelemetryConfig`]) are here, and `flash_wiring::AppConfig` flattens them all
//! into the one tree every binary reads:
//!
//! ```no_run
//! use flash_runtime::config::{HttpConfig, TelemetryConfig};
//!
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     http: HttpConfig,
//!     #[command(flatten)]
//!     settings: flash_handlers::Settings,
//!     #[command(flatten)]
//!     telemetry: TelemetryConfig,
//! }
//!
//! let cli: Cli = flash_runtime::config::parse_from_env();
//! ```
//!
//! A binary whose default differs from the one here (the gateway pod listens on 3000) changes it
//! on its own command with `Cli::command().mut_arg("port", |a| a.default_value("3000"))` (the
//! arg ids are the field names).
//!
//! Secrets are [`SecretString`]s: `Debug` prints `[REDACTED]` and `--help` never shows their
//! current value. Prefer the environment to the flags for secrets (flags are visible in `ps`).

use clap::{Args, FromArgMatches, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The legacy gateway's allowed origins, plus the embedded default's own address.
pub const DEFAULT_CORS_ORIGINS: &str = "http://localhost:5173,https://www.highgarden.cloud,https://dev.highgarden.cloud,http://127.0.0.1:8080,http://localhost:8080";

pub use flash_handlers::settings::values::*;

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

// ---------------------------------------------------------------------------------------------
// Value parsers of the host options (the business ones are in `flash_handlers::settings::values`).

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

/// A tracing filter directive (`info`, `flash_http=debug,info`).
pub fn parse_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a valid log filter: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Option groups.

/// Where and how an HTTP host listens.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP", about = None, long_about = None)]
pub struct HttpConfig {
    /// Listen port (the pods override the default: gateway 3000, api 4000).
    #[arg(long, env, default_value_t = 8080)]
    pub port: u16,

    /// Gateway listen port; takes precedence over PORT for the gateway, as in the legacy.
    #[arg(long, env)]
    pub queue_gateway_port: Option<u16>,

    /// Address to bind (0.0.0.0 in containers).
    #[arg(long, env, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Browser origins allowed by CORS, comma-separated.
    #[arg(
        long,
        env,
        value_delimiter = ',',
        default_value = DEFAULT_CORS_ORIGINS,
        value_parser = parse_origin
    )]
    pub cors_origins: Vec<String>,

    /// How long a client may take to send a request's headers, and then its body (slowloris):
    /// past it the request is refused (408, `Connection: close`) or the connection dropped.
    #[arg(long, env, default_value = "10000", value_parser = parse_positive_millis)]
    pub http_read_timeout_ms: Duration,

    /// On SIGTERM, how long in-flight requests, messages and background tasks may take to finish.
    #[arg(long, env, default_value = "10000", value_parser = parse_millis)]
    pub shutdown_grace_ms: Duration,
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
    #[arg(long, env, value_enum, ignore_case = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Full tracing filter (`info,flash_http=debug`); takes precedence over LOG_LEVEL.
    #[arg(long, env, value_parser = parse_filter)]
    pub rust_log: Option<String>,

    /// Log level (or filter) used when RUST_LOG is unset.
    #[arg(long, env, default_value = "info", value_parser = parse_filter)]
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
    use flash_handlers::Settings;
    use secrecy::{ExposeSecret, SecretString};

    /// Every group at once, as the all-in-one binary composes them.
    #[derive(Debug, Parser)]
    struct All {
        #[command(flatten)]
        http: HttpConfig,
        #[command(flatten)]
        settings: Settings,
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
        assert_eq!(c.http.shutdown_grace_ms, Duration::from_secs(10));

        // The business settings' defaults are flash_handlers::settings' own test.
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
            format!("{:?}", Settings::default()),
            format!("{:?}", c.settings)
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
        assert_eq!(c.settings.pay.success_rate, 1.0);
        assert_eq!(c.settings.pay.min_latency, Duration::from_millis(500));
        assert!(!c.settings.queue.enforce_admission);
        assert!(c.settings.payments.allow_owner_callback);
        assert_eq!(c.telemetry.log_format, LogFormat::Json);
        assert_eq!(c.telemetry.filter(), "debug");
        assert_eq!(c.settings.auth.access_ttl, Duration::from_secs(900));
        assert_eq!(parse_probability("-0.5"), Ok(0.0));
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
            require_secret("JWT_ACCESS_SECRET", &c.settings.auth.access_secret)
                .unwrap()
                .expose_secret(),
            "hunter2-access"
        );
    }

    #[test]
    fn missing_required_secrets_name_their_variable() {
        let auth = Settings::default().auth;
        let e = require_secret("JWT_ACCESS_SECRET", &auth.access_secret).unwrap_err();
        assert_eq!(e.variable, "JWT_ACCESS_SECRET");
        assert!(e.to_string().starts_with("JWT_ACCESS_SECRET"));
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
}
