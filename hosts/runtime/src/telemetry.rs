//! Logging set-up: `tracing` with an `EnvFilter`, as text or JSON lines.

use crate::config::{LogFormat, TelemetryConfig};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Returns whether this call installed it: a second call (tests,
/// or a binary that initialised logging itself) leaves the first subscriber in place.
pub fn init(config: &TelemetryConfig) -> bool {
    // The filter was validated when the configuration was parsed; a hand-built config with a bad
    // filter still gets logs rather than silence.
    let (filter, rejected) = match EnvFilter::try_new(config.filter()) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let installed = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            // Event fields at the top level and the current span (which carries the request or
            // message id) alongside, so log shippers index them without unnesting.
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
            .is_ok(),
    };
    if let Some(e) = rejected {
        tracing::warn!(filter = config.filter(), error = %e, "invalid log filter; using info");
    }
    installed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_args_ignoring_env;

    #[test]
    fn init_is_idempotent() {
        // `off`: the subscriber installed here is global and writes past the test harness's
        // capture, so it must not echo other tests' logs.
        let json: TelemetryConfig =
            parse_args_ignoring_env(&["--log-format", "json", "--log-level", "off"]).unwrap();
        let text: TelemetryConfig = parse_args_ignoring_env(&["--log-level", "off"]).unwrap();
        // Another test of this binary may have installed the subscriber first; what matters is
        // that at most one call installs it and none panics.
        let first = init(&json);
        let second = init(&text);
        assert!(!second || !first);
        assert!(!init(&json));
    }
}
