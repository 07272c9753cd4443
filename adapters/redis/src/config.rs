//! Where Redis is and how long to wait for it.

use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// Default prefix of every key and channel.
pub const DEFAULT_PREFIX: &str = "flash:";
/// Default bound on one operation, reconnection included: past it the caller gets `Unavailable`
/// (a flash sale is better served by a quick 503 than by requests piling up behind a dead server).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on establishing one TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The legacy `REDIS_PORT` default.
pub const DEFAULT_PORT: u16 = 6379;

/// `REDIS_PORT`: a TCP port (1 to 65535).
pub fn parse_port(text: &str) -> Result<u16, RedisConfigError> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            RedisConfigError::invalid("REDIS_PORT", format!("{text:?} is not a TCP port"))
        })
}

/// `REDIS_TLS`: exactly `true` enables TLS, `false` disables it (the legacy reading).
pub fn parse_tls(text: &str) -> Result<bool, RedisConfigError> {
    match text.trim() {
        "false" => Ok(false),
        "true" => Ok(true),
        other => Err(RedisConfigError::invalid(
            "REDIS_TLS",
            format!("{other:?} is neither \"true\" nor \"false\""),
        )),
    }
}

/// `REDIS_CLUSTER`: exactly `true` talks to a Redis Cluster (the URL or host then names its
/// configuration endpoint), `false` to one node.
pub fn parse_cluster(text: &str) -> Result<bool, RedisConfigError> {
    match text.trim() {
        "false" => Ok(false),
        "true" => Ok(true),
        other => Err(RedisConfigError::invalid(
            "REDIS_CLUSTER",
            format!("{other:?} is neither \"true\" nor \"false\""),
        )),
    }
}

/// A configuration value that cannot work; the message names the variable or setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisConfigError {
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl RedisConfigError {
    fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        RedisConfigError::Invalid {
            name,
            reason: reason.into(),
        }
    }
}

#[derive(Clone)]
enum Target {
    /// `redis://` or `rediss://` URL (may embed a password).
    Url(SecretString),
    /// The legacy variables.
    Parts {
        host: String,
        port: u16,
        password: Option<SecretString>,
        tls: bool,
    },
}

/// How to reach Redis. Secrets (the URL, the password) are never printed by `Debug`.
#[derive(Clone)]
pub struct RedisConfig {
    target: Target,
    cluster: bool,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Url(_) => "url (redacted)".to_owned(),
            Target::Parts {
                host, port, tls, ..
            } => {
                format!("{}://{host}:{port}", if *tls { "rediss" } else { "redis" })
            }
        };
        f.debug_struct("RedisConfig")
            .field("target", &target)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl RedisConfig {
    /// `redis://[user][:password@]host[:port][/db]`, or `rediss://` for TLS.
    pub fn from_url(url: &str) -> Result<Self, RedisConfigError> {
        // Parsed now so that a bad URL stops start-up, not the first request.
        url.into_connection_info()
            .map_err(|e| RedisConfigError::invalid("REDIS_URL", e.to_string()))?;
        Ok(Self::with_target(Target::Url(SecretString::from(url))))
    }

    /// The legacy variables: `REDIS_HOST` (default `localhost`), `REDIS_PORT` (`6379`),
    /// `REDIS_PASSWORD` (none), `REDIS_TLS` (`true` enables TLS; `false` or unset disables it),
    /// and `REDIS_CLUSTER` (`true`: the host is a Redis Cluster's configuration endpoint).
    pub fn from_env() -> Result<Self, RedisConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`RedisConfig::from_env`] over any source of variables (tests, a parsed env file).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, RedisConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let port = set("REDIS_PORT").map(|p| parse_port(&p)).transpose()?;
        let tls = set("REDIS_TLS").map(|t| parse_tls(&t)).transpose()?;
        let cluster = set("REDIS_CLUSTER")
            .map(|c| parse_cluster(&c))
            .transpose()?;
        let password = var("REDIS_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(SecretString::from);
        Self::from_parts(
            set("REDIS_HOST").as_deref().unwrap_or("localhost"),
            port.unwrap_or(DEFAULT_PORT),
            password,
            tls.unwrap_or(false),
        )?
        .with_cluster(cluster.unwrap_or(false))
    }

    /// One host and port, as the legacy variables name them once parsed (a configuration tree
    /// parses `REDIS_PORT` with [`parse_port`] and `REDIS_TLS` with [`parse_tls`]).
    pub fn from_parts(
        host: &str,
        port: u16,
        password: Option<SecretString>,
        tls: bool,
    ) -> Result<Self, RedisConfigError> {
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(RedisConfigError::invalid(
                "REDIS_HOST",
                format!("{host:?} is not a host name"),
            ));
        }
        Ok(Self::with_target(Target::Parts {
            host: host.to_owned(),
            port,
            password,
            tls,
        }))
    }

    fn with_target(target: Target) -> Self {
        RedisConfig {
            target,
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Prefix of every key and channel (default `flash:`), so that several deployments or test
    /// runs can share one Redis. Braces are refused: they would break the Cluster hash tags.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self, RedisConfigError> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) || prefix.contains(char::is_whitespace) {
            return Err(RedisConfigError::invalid(
                "prefix",
                format!("{prefix:?} must not contain braces or spaces"),
            ));
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Talk to a Redis Cluster (`true`) whose configuration endpoint the URL or host names, or to
    /// one node. A cluster has only database 0, so a URL naming another one is refused.
    pub fn with_cluster(mut self, cluster: bool) -> Result<Self, RedisConfigError> {
        if cluster {
            let db = self.connection_info()?.redis_settings().db();
            if db != 0 {
                return Err(RedisConfigError::invalid(
                    "REDIS_CLUSTER",
                    format!("a Redis Cluster has only database 0, the URL names database {db}"),
                ));
            }
        }
        self.cluster = cluster;
        Ok(self)
    }

    /// Whether the target is a Redis Cluster.
    pub fn cluster(&self) -> bool {
        self.cluster
    }

    /// Bound on one operation, waiting for a reconnection included.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Bound on establishing one connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        match &self.target {
            Target::Url(url) => url.expose_secret().starts_with("rediss://"),
            Target::Parts { tls, .. } => *tls,
        }
    }

    pub(crate) fn connection_info(&self) -> Result<ConnectionInfo, RedisConfigError> {
        let info = match &self.target {
            Target::Url(url) => url
                .expose_secret()
                .into_connection_info()
                .map_err(|e| RedisConfigError::invalid("REDIS_URL", e.to_string()))?,
            Target::Parts {
                host,
                port,
                password,
                tls,
            } => {
                let addr = if *tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                let mut redis = RedisConnectionInfo::default();
                if let Some(pw) = password {
                    redis = redis.set_password(pw.expose_secret());
                }
                addr.into_connection_info()
                    .map_err(|e| RedisConfigError::invalid("REDIS_HOST", e.to_string()))?
                    .set_redis_settings(redis)
            }
        };
        // Small commands on a multiplexed connection: do not let Nagle hold them back.
        Ok(info.set_tcp_settings(TcpSettings::default().set_nodelay(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_testkit::fixtures::vars;

    #[test]
    fn legacy_variables_default_to_localhost_without_tls() {
        let c = RedisConfig::from_vars(vars(&[])).unwrap();
        assert!(!c.tls());
        let info = c.connection_info().unwrap();
        assert_eq!(info.addr().to_string(), "localhost:6379");
        assert_eq!(info.redis_settings().password(), None);
    }

    #[test]
    fn legacy_variables_set_host_port_password_and_tls() {
        let c = RedisConfig::from_vars(vars(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "p@ss:word/"),
            ("REDIS_TLS", "true"),
        ]))
        .unwrap();
        assert!(c.tls());
        let info = c.connection_info().unwrap();
        assert!(matches!(
            info.addr(),
            ConnectionAddr::TcpTls { port: 6380, .. }
        ));
        assert_eq!(info.redis_settings().password(), Some("p@ss:word/"));
        assert!(
            !format!("{c:?}").contains("p@ss"),
            "Debug leaked the password"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = RedisConfig::from_vars(vars(&[("REDIS_PORT", "http")])).unwrap_err();
        assert!(err.to_string().starts_with("REDIS_PORT"), "{err}");
        let err = RedisConfig::from_vars(vars(&[("REDIS_TLS", "yes")])).unwrap_err();
        assert!(err.to_string().starts_with("REDIS_TLS"), "{err}");
        let err = RedisConfig::from_url("http://localhost").unwrap_err();
        assert!(err.to_string().starts_with("REDIS_URL"), "{err}");
    }

    #[test]
    fn url_keeps_its_password_out_of_debug() {
        let c = RedisConfig::from_url("rediss://:secret@127.0.0.1:6390/2").unwrap();
        assert!(c.tls());
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.connection_info().unwrap().redis_settings().db(), 2);
    }

    #[test]
    fn cluster_mode_is_read_from_redis_cluster() {
        let single = RedisConfig::from_vars(vars(&[("REDIS_HOST", "cache.internal")])).unwrap();
        assert!(!single.cluster());
        let cluster = RedisConfig::from_vars(vars(&[
            ("REDIS_HOST", "clustercfg.cache.internal"),
            ("REDIS_CLUSTER", "true"),
        ]))
        .unwrap();
        assert!(cluster.cluster());
        assert!(
            format!("{cluster:?}").contains("cluster: true"),
            "{cluster:?}"
        );
        let err = RedisConfig::from_vars(vars(&[("REDIS_CLUSTER", "yes")])).unwrap_err();
        assert!(err.to_string().starts_with("REDIS_CLUSTER"), "{err}");
        let err = RedisConfig::from_url("redis://127.0.0.1:7000/3")
            .unwrap()
            .with_cluster(true)
            .unwrap_err();
        assert!(err.to_string().starts_with("REDIS_CLUSTER"), "{err}");
        assert!(
            RedisConfig::from_url("redis://127.0.0.1:7000/0")
                .unwrap()
                .with_cluster(true)
                .unwrap()
                .cluster()
        );
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        let c = RedisConfig::from_url("redis://127.0.0.1").unwrap();
        assert!(c.clone().with_prefix("a{b}").is_err());
        assert_eq!(c.with_prefix("t1:").unwrap().prefix(), "t1:");
    }
}
