//! Connection settings, read once from the environment and validated at start-up.

use flash_core::StoreError;
use lapin::uri::AMQPUri;
use secrecy::{ExposeSecret, SecretString};
use std::str::FromStr;
use std::time::Duration;

/// The broker of a developer machine (`RABBITMQ_URL` unset).
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Unacknowledged deliveries per consumer; hosts set it to their handler concurrency.
pub const DEFAULT_PREFETCH: u16 = 32;
/// Deliveries of one message before it is dead-lettered (`BUS_MAX_ATTEMPTS`, SPEC §7).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Largest AMQP frame asked of the broker when `RABBITMQ_URL` names none (`?frame_max=`).
///
/// lapin keeps a send and a receive ring of 32 frames each and writes them through once
/// connected: at RabbitMQ's 128 KiB that is 8 MiB of touched memory per connection, at 8 KiB
/// 512 KiB. Our messages are well under 1 KiB; a larger body is split into frames, but a
/// message's headers travel in one frame that cannot be split, so they must stay under 8 KiB
/// (ours do: the dead-letter reason is cut to 1 KiB); set `?frame_max=` for a publisher that
/// sends more.
pub const DEFAULT_FRAME_MAX: u32 = 8192;
/// How long a publish may wait for a connection and its confirm before reporting the bus down.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of the RabbitMQ bus. `Debug` never shows the URL, which carries the password.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://` or `amqps://` URL with credentials and the percent-encoded vhost.
    pub url: SecretString,
    /// Unacknowledged deliveries the broker pushes to one consumer (at least 1).
    pub prefetch: u16,
    /// Deliveries of a message before a `Retry` dead-letters it instead (at least 1).
    pub max_attempts: u32,
    /// Bound on a publish (reconnecting included) and on each settle of a delivery.
    pub publish_timeout: Duration,
}

/// A configuration variable with an unusable value. The message names the variable and never
/// repeats a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl AmqpConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpConfig {
            url: SecretString::from(url.into()),
            prefetch: DEFAULT_PREFETCH,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// Reads `RABBITMQ_URL` (default [`DEFAULT_URL`]) and `BUS_MAX_ATTEMPTS` (default 5).
    /// The prefetch is the host's to set ([`AmqpConfig::with_prefetch`]), from its concurrency.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`AmqpConfig::from_env`] over any variable source (tests, a config file).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = get("RABBITMQ_URL")
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        // The parser's message may quote the input, which holds the password: say it our way.
        AMQPUri::from_str(url.trim()).map_err(|_| ConfigError {
            variable: "RABBITMQ_URL",
            reason: "not an AMQP URL (expected amqp[s]://user:password@host:port/vhost)".into(),
        })?;
        let mut config = AmqpConfig::new(url.trim());
        if let Some(raw) = get("BUS_MAX_ATTEMPTS") {
            config.max_attempts = match raw.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                Ok(_) | Err(_) => {
                    return Err(ConfigError {
                        variable: "BUS_MAX_ATTEMPTS",
                        reason: format!("expected a whole number of at least 1, got {raw:?}"),
                    });
                }
            };
        }
        Ok(config)
    }

    /// Prefetch per consumer; 0 (unlimited in AMQP) is raised to 1.
    #[must_use]
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    pub(crate) fn url(&self) -> &str {
        self.url.expose_secret()
    }

    /// The parsed URL, with [`DEFAULT_FRAME_MAX`] unless it asks for a frame size itself.
    pub(crate) fn uri(&self) -> Result<AMQPUri, StoreError> {
        let mut uri = AMQPUri::from_str(self.url().trim()).map_err(|_| {
            StoreError::Internal("RABBITMQ_URL is not an AMQP URL (checked at start-up)".into())
        })?;
        uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
        Ok(uri)
    }
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig::new(DEFAULT_URL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_testkit::fixtures::vars as lookup;

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = AmqpConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.url(), DEFAULT_URL);
        assert_eq!(c.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.prefetch, DEFAULT_PREFETCH);
    }

    #[test]
    fn asks_for_small_frames_unless_the_url_names_a_size() {
        let c = AmqpConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.uri().unwrap().query.frame_max, Some(DEFAULT_FRAME_MAX));
        let c = AmqpConfig::from_lookup(lookup(&[(
            "RABBITMQ_URL",
            "amqp://app:s3cret@mq.internal:5672/flash?frame_max=131072&heartbeat=10",
        )]))
        .unwrap();
        let uri = c.uri().unwrap();
        assert_eq!(uri.query.frame_max, Some(131_072));
        assert_eq!(uri.query.heartbeat, Some(10));
        assert_eq!(uri.authority.userinfo.password, "s3cret");
        assert_eq!(uri.vhost, "flash");
    }

    #[test]
    fn reads_the_legacy_variables() {
        let c = AmqpConfig::from_lookup(lookup(&[
            ("RABBITMQ_URL", "amqp://app:s3cret@mq.internal:5672/flash"),
            ("BUS_MAX_ATTEMPTS", "7"),
        ]))
        .unwrap();
        assert_eq!(c.url(), "amqp://app:s3cret@mq.internal:5672/flash");
        assert_eq!(c.max_attempts, 7);
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_the_password() {
        let e = AmqpConfig::from_lookup(lookup(&[("RABBITMQ_URL", "http://u:s3cret@host/")]))
            .unwrap_err();
        assert_eq!(e.variable, "RABBITMQ_URL");
        assert!(!e.to_string().contains("s3cret"), "{e}");

        for bad in ["0", "-1", "five"] {
            let e = AmqpConfig::from_lookup(lookup(&[("BUS_MAX_ATTEMPTS", bad)])).unwrap_err();
            assert_eq!(e.variable, "BUS_MAX_ATTEMPTS", "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_url() {
        let c = AmqpConfig::new("amqp://app:s3cret@mq:5672/%2f");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn prefetch_and_attempts_are_at_least_one() {
        let c = AmqpConfig::default().with_prefetch(0).with_max_attempts(0);
        assert_eq!((c.prefetch, c.max_attempts), (1, 1));
    }
}
