//! The business settings of the handlers: one `clap::Args` group per area, each option declared
//! once, with its environment variable (the legacy name), its default and its validation. Hosts
//! flatten [`Settings`] into their configuration and hand it to [`crate::Handlers::new`] as
//! parsed; nothing copies the fields in between. Adding a setting is one field here.
//!
//! Every option has a long flag and a variable of the legacy name, so `--help` lists each one
//! with its variable and default, and an invalid value stops the process before anything is
//! served, with a message that names the variable (the flag's value name *is* the variable
//! name). Secrets are [`SecretString`]s: `Debug` prints `[REDACTED]` and `--help` never shows
//! their current value.

pub mod values;

use clap::{ArgAction, Args};
use flash_core::limits::{DoorLimits, Rate};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;
use values::*;

/// Every business setting, in its groups.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub queue: QueueSettings,
    #[command(flatten)]
    pub orders: OrderSettings,
    #[command(flatten)]
    pub payments: PaymentSettings,
    #[command(flatten)]
    pub pay: PaySettings,
}

/// Tokens, passwords and login limits.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Auth", about = None, long_about = None)]
pub struct AuthSettings {
    /// HMAC key of access tokens. Required by the pods; `flash up` makes a random one when unset.
    #[arg(
        long = "jwt-access-secret",
        env = "JWT_ACCESS_SECRET",
        value_name = "JWT_ACCESS_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub access_secret: Option<SecretString>,

    /// HMAC key of refresh tokens. Required by the gateway; `flash up` makes a random one.
    #[arg(
        long = "jwt-refresh-secret",
        env = "JWT_REFRESH_SECRET",
        value_name = "JWT_REFRESH_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub refresh_secret: Option<SecretString>,

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
    pub admin_secret: Option<SecretString>,

    /// bcrypt cost of new password hashes (4..=31); existing hashes verify at their own cost.
    #[arg(long, env, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Login attempts allowed per user id (N/min, N/s, N/h or N/<duration>).
    #[arg(
        long = "login-rate-limit-per-user",
        env = "LOGIN_RATE_LIMIT_PER_USER",
        value_name = "LOGIN_RATE_LIMIT_PER_USER",
        default_value = "10/min",
        value_parser = parse_rate_limit
    )]
    pub login_per_user: Rate,

    /// Login attempts allowed per client address (high: load tests and offices share addresses).
    #[arg(
        long = "login-rate-limit-per-ip",
        env = "LOGIN_RATE_LIMIT_PER_IP",
        value_name = "LOGIN_RATE_LIMIT_PER_IP",
        default_value = "300/min",
        value_parser = parse_rate_limit
    )]
    pub login_per_addr: Rate,

    /// Registrations allowed per client address (each costs a password hash).
    #[arg(
        long = "register-rate-limit-per-ip",
        env = "REGISTER_RATE_LIMIT_PER_IP",
        value_name = "REGISTER_RATE_LIMIT_PER_IP",
        default_value = "60/min",
        value_parser = parse_rate_limit
    )]
    pub register_per_addr: Rate,

    /// Password hashes computed at once on the blocking pool (default: number of CPUs), so a
    /// login storm cannot starve queue and order requests.
    #[arg(
        long = "password-hash-concurrency",
        env = "PASSWORD_HASH_CONCURRENCY",
        value_name = "PASSWORD_HASH_CONCURRENCY",
        default_value_t = default_hash_concurrency(),
        value_parser = parse_positive_usize
    )]
    pub hash_concurrency: usize,

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
        long,
        env,
        default_value = "false",
        action = ArgAction::Set,
        value_parser = bool_parser()
    )]
    pub socket_token_in_query: bool,
}

/// The waiting queue and admission.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Queue", about = None, long_about = None)]
pub struct QueueSettings {
    /// Most admitted (READY or USED) tickets per event at any instant.
    #[arg(
        long = "queue-ready-capacity",
        env = "QUEUE_READY_CAPACITY",
        value_name = "QUEUE_READY_CAPACITY",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub capacity: u64,

    /// Lifetime of an admission and its gate token.
    #[arg(
        long = "queue-gate-token-ttl-ms",
        env = "QUEUE_GATE_TOKEN_TTL_MS",
        value_name = "QUEUE_GATE_TOKEN_TTL_MS",
        default_value = "120000",
        value_parser = parse_positive_millis
    )]
    pub gate_ttl: Duration,

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
        default_value = "30/min",
        value_parser = parse_rate_limit
    )]
    pub enqueue_per_user: Rate,

    /// Enqueue calls allowed per client address.
    #[arg(
        long = "enqueue-rate-limit-per-ip",
        env = "ENQUEUE_RATE_LIMIT_PER_IP",
        value_name = "ENQUEUE_RATE_LIMIT_PER_IP",
        default_value = "600/min",
        value_parser = parse_rate_limit
    )]
    pub enqueue_per_addr: Rate,
}

/// Orders.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Orders", about = None, long_about = None)]
pub struct OrderSettings {
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
        default_value = "30/min",
        value_parser = parse_rate_limit
    )]
    pub order_per_user: Rate,

    /// POST /orders calls allowed per client address.
    #[arg(
        long = "order-rate-limit-per-ip",
        env = "ORDER_RATE_LIMIT_PER_IP",
        value_name = "ORDER_RATE_LIMIT_PER_IP",
        default_value = "600/min",
        value_parser = parse_rate_limit
    )]
    pub order_per_addr: Rate,
}

/// Payments on the api side, and the bus they travel on.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Payments", about = None, long_about = None)]
pub struct PaymentSettings {
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
        default_value = "30/min",
        value_parser = parse_rate_limit
    )]
    pub payment_per_user: Rate,

    /// POST /payments calls allowed per client address.
    #[arg(
        long = "payment-rate-limit-per-ip",
        env = "PAYMENT_RATE_LIMIT_PER_IP",
        value_name = "PAYMENT_RATE_LIMIT_PER_IP",
        default_value = "600/min",
        value_parser = parse_rate_limit
    )]
    pub payment_per_addr: Rate,

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
    #[arg(long, env, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub bus_max_attempts: u32,
}

/// The mock payment processor.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pay worker", about = None, long_about = None)]
pub struct PaySettings {
    /// Probability of an OK verdict, clamped into [0, 1].
    #[arg(
        long = "payment-success-rate",
        env = "PAYMENT_SUCCESS_RATE",
        value_name = "PAYMENT_SUCCESS_RATE",
        default_value = "0.85",
        value_parser = parse_probability
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
    pub min_latency: Duration,

    /// Longest simulated processing time; the minimum when below it (the legacy forced
    /// max ≥ min rather than fail).
    #[arg(
        long = "payment-processing-max-ms",
        env = "PAYMENT_PROCESSING_MAX_MS",
        value_name = "PAYMENT_PROCESSING_MAX_MS",
        default_value = "4000",
        value_parser = parse_millis
    )]
    pub max_latency: Duration,

    /// Payment requests processed at once.
    #[arg(
        long = "pay-concurrency",
        env = "PAY_CONCURRENCY",
        value_name = "PAY_CONCURRENCY",
        default_value_t = 256,
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

/// Domain-separation label of the derived gate-token key. Changing it invalidates every gate
/// token in flight, so it carries a version.
const GATE_KEY_LABEL: &[u8] = b"flash-tickets/queue-gate-token/v1";

impl Settings {
    /// The hits allowed on each door (SPEC §11), from the groups' rate-limit options.
    pub fn limits(&self) -> DoorLimits {
        DoorLimits {
            register_per_addr: self.auth.register_per_addr,
            login_per_user: self.auth.login_per_user,
            login_per_addr: self.auth.login_per_addr,
            enqueue_per_user: self.queue.enqueue_per_user,
            enqueue_per_addr: self.queue.enqueue_per_addr,
            order_per_user: self.orders.order_per_user,
            order_per_addr: self.orders.order_per_addr,
            payment_per_user: self.payments.payment_per_user,
            payment_per_addr: self.payments.payment_per_addr,
        }
    }

    /// `QUEUE_GATE_SECRET`, or the key derived from the access secret (see the option's help).
    pub fn gate_secret(&self) -> SecretString {
        if let Some(s) = &self.queue.gate_secret {
            return s.clone();
        }
        let access = self
            .auth
            .access_secret
            .as_ref()
            .map_or(&[][..], |s| s.expose_secret().as_bytes());
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the signature
        // infallible without an `expect`.
        match Hmac::<Sha256>::new_from_slice(access) {
            Ok(mut mac) => {
                mac.update(GATE_KEY_LABEL);
                SecretString::from(hex::encode(mac.finalize().into_bytes()))
            }
            Err(_) => secret_or_random(None),
        }
    }

    /// Makes every unset token secret a random one of this process (the embedded default, and
    /// the functions that never see a token), so the handlers always have keys.
    pub fn with_random_secrets(mut self) -> Settings {
        let auth = &mut self.auth;
        auth.access_secret = Some(secret_or_random(auth.access_secret.take()));
        auth.refresh_secret = Some(secret_or_random(auth.refresh_secret.take()));
        self
    }

    /// The defaults with the given secrets (tests).
    pub fn with_secrets(access: &str, refresh: &str, gate: &str) -> Settings {
        let mut s = Settings::default();
        s.auth.access_secret = Some(access.into());
        s.auth.refresh_secret = Some(refresh.into());
        s.queue.gate_secret = Some(gate.into());
        s
    }
}

macro_rules! defaults_from_the_options {
    ($($group:ty),*) => {$(
        impl Default for $group {
            /// The `default_value` of every option.
            fn default() -> Self {
                built_in_defaults()
            }
        }
    )*};
}

defaults_from_the_options!(
    Settings,
    AuthSettings,
    QueueSettings,
    OrderSettings,
    PaymentSettings,
    PaySettings
);

/// The bytes of a secret, `None` when it is unset.
pub(crate) fn secret_bytes(s: &Option<SecretString>) -> Option<Vec<u8>> {
    s.as_ref().map(|s| s.expose_secret().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_spec_section_10() {
        let s = Settings::default();
        assert!(s.auth.access_secret.is_none());
        assert_eq!(s.auth.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(s.auth.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(s.auth.bcrypt_cost, 10);
        assert_eq!(s.auth.login_per_user, Rate::per_minute(10));
        assert_eq!(s.auth.login_per_addr, Rate::per_minute(300));
        assert_eq!(s.auth.hash_concurrency, default_hash_concurrency());

        assert_eq!(s.queue.capacity, 50);
        assert_eq!(s.queue.gate_ttl, Duration::from_millis(120_000));
        assert_eq!(s.queue.promotion_interval, Duration::from_millis(3000));
        assert_eq!(s.queue.ws_refresh, Duration::from_millis(3000));
        assert!(s.queue.enforce_admission);
        assert_eq!(s.queue.enqueue_per_user, Rate::per_minute(30));
        // SPEC §11's doors.
        let doors = s.limits();
        assert_eq!(doors.register_per_addr, Rate::per_minute(60));
        assert_eq!(doors.enqueue_per_addr, Rate::per_minute(600));
        assert_eq!(doors.payment_per_user, Rate::per_minute(30));
        assert_eq!(doors.order_per_addr, Rate::per_minute(600));

        assert_eq!(s.orders.hold_ttl, Duration::from_millis(300_000));
        assert_eq!(s.orders.idempotency_ttl, Duration::from_secs(86_400));

        assert_eq!(s.payments.timeout, Duration::from_millis(60_000));
        assert!(!s.payments.allow_owner_callback);
        assert_eq!(s.payments.request_queue, "payments_request");
        assert_eq!(s.payments.result_queue, "payments_result");
        assert_eq!(s.payments.bus_max_attempts, 5);

        assert_eq!(s.pay.success_rate, 0.85);
        assert_eq!(s.pay.min_latency, Duration::from_millis(1000));
        assert_eq!(s.pay.max_latency, Duration::from_millis(4000));
        assert_eq!(s.pay.concurrency, 256);
        assert_eq!(s.pay.health_port, 3100);

        assert!(s.payments.callback_secret.is_none());
    }

    #[test]
    fn rate_limits_round_trip() {
        for text in ["10/min", "5/s", "100/h", "20/30s"] {
            let rate = parse_rate_limit(text).unwrap();
            assert_eq!(format_rate_limit(rate), text);
        }
        assert_eq!(parse_rate_limit("7").unwrap(), Rate::per_minute(7));
        for bad in ["0/min", "x/min", "5/fortnight", "-1", ""] {
            assert!(parse_rate_limit(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_gate_key_is_derived_stably_and_differs_from_the_access_key() {
        let mut a = Settings::default();
        a.auth.access_secret = Some("access".into());
        let b = a.clone();
        let key = a.gate_secret();
        assert_eq!(key.expose_secret(), b.gate_secret().expose_secret());
        assert_ne!(key.expose_secret(), "access");
        a.queue.gate_secret = Some("own".into());
        assert_eq!(a.gate_secret().expose_secret(), "own");
    }

    #[test]
    fn random_secrets_fill_only_what_is_unset() {
        let mut s = Settings::default();
        s.auth.access_secret = Some("kept".into());
        let s = s.with_random_secrets();
        assert_eq!(s.auth.access_secret.unwrap().expose_secret(), "kept");
        let fresh = Settings::default().with_random_secrets();
        let other = Settings::default().with_random_secrets();
        assert_ne!(
            fresh.auth.refresh_secret.unwrap().expose_secret(),
            other.auth.refresh_secret.unwrap().expose_secret()
        );
    }
}
