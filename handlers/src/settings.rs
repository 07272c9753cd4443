//! Business settings handed to the handlers (parsed and validated by the host's configuration).

use flash_core::limits::DoorLimits;
use std::time::Duration;

#[derive(Clone)]
pub struct Settings {
    pub auth: AuthSettings,
    pub queue: QueueSettings,
    pub orders: OrderSettings,
    pub payments: PaymentSettings,
    pub pay: PaySettings,
    /// Hits allowed per user and per client address on each door (SPEC §11).
    pub limits: DoorLimits,
}

#[derive(Clone)]
pub struct AuthSettings {
    pub access_secret: Vec<u8>,
    pub refresh_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// `None` disables admin registration.
    pub admin_secret: Option<Vec<u8>>,
    pub bcrypt_cost: u32,
    /// Concurrent bcrypt computations (the bounded blocking pool).
    pub hash_concurrency: usize,
    /// How long a "session alive" answer of the session store is trusted before an access
    /// token of that session is checked again (zero: every request reads the store).
    pub session_check: Duration,
    /// Whether Socket.IO accepts the token from `?token=` (legacy clients; it lands in logs).
    pub socket_token_in_query: bool,
}

#[derive(Clone)]
pub struct QueueSettings {
    pub capacity: u64,
    pub gate_ttl: Duration,
    pub gate_secret: Vec<u8>,
    pub enforce_admission: bool,
}

#[derive(Clone)]
pub struct OrderSettings {
    pub hold_ttl: Duration,
    pub idempotency_ttl: Duration,
}

#[derive(Clone)]
pub struct PaymentSettings {
    pub timeout: Duration,
    /// HMAC key of `X-Signature` on provider callbacks; `None` accepts only admin callbacks.
    pub callback_secret: Option<Vec<u8>>,
    /// Legacy behaviour: the order owner may post the callback.
    pub allow_owner_callback: bool,
    pub request_queue: String,
    pub result_queue: String,
}

#[derive(Clone)]
pub struct PaySettings {
    pub success_rate: f64,
    pub min_latency: Duration,
    pub max_latency: Duration,
    pub result_queue: String,
}

impl Settings {
    /// Defaults of SPEC §3–§7 with the given secrets (tests and the embedded default).
    pub fn with_secrets(access: &[u8], refresh: &[u8], gate: &[u8]) -> Settings {
        Settings {
            auth: AuthSettings {
                access_secret: access.to_vec(),
                refresh_secret: refresh.to_vec(),
                access_ttl: Duration::from_secs(15 * 60),
                refresh_ttl: Duration::from_secs(7 * 24 * 3600),
                admin_secret: None,
                bcrypt_cost: 10,
                hash_concurrency: 2,
                session_check: Duration::from_secs(1),
                socket_token_in_query: false,
            },
            queue: QueueSettings {
                capacity: 50,
                gate_ttl: Duration::from_millis(120_000),
                gate_secret: gate.to_vec(),
                enforce_admission: true,
            },
            orders: OrderSettings {
                hold_ttl: Duration::from_millis(300_000),
                idempotency_ttl: Duration::from_secs(24 * 3600),
            },
            payments: PaymentSettings {
                timeout: Duration::from_millis(60_000),
                callback_secret: None,
                allow_owner_callback: false,
                request_queue: flash_core::messages::DEFAULT_REQUEST_QUEUE.to_owned(),
                result_queue: flash_core::messages::DEFAULT_RESULT_QUEUE.to_owned(),
            },
            pay: PaySettings {
                success_rate: 0.85,
                min_latency: Duration::from_millis(1000),
                max_latency: Duration::from_millis(4000),
                result_queue: flash_core::messages::DEFAULT_RESULT_QUEUE.to_owned(),
            },
            limits: DoorLimits::default(),
        }
    }
}
