//! The business settings of the handlers, built from the validated configuration groups.

use crate::config::{AuthConfig, OrderConfig, PayConfig, PaymentConfig, QueueConfig};
use flash_core::limits::DoorLimits;
use flash_handlers::Settings;
use flash_handlers::settings::{
    AuthSettings, OrderSettings, PaySettings, PaymentSettings, QueueSettings,
};
use secrecy::{ExposeSecret, SecretString};

/// The configuration groups every host parses.
pub struct Groups<'a> {
    pub auth: &'a AuthConfig,
    pub queue: &'a QueueConfig,
    pub orders: &'a OrderConfig,
    pub payments: &'a PaymentConfig,
    pub pay: &'a PayConfig,
}

/// `access` / `refresh` are the resolved JWT secrets (required by the pods, random in `flash up`).
pub fn build(g: &Groups<'_>, access: &SecretString, refresh: &SecretString) -> Settings {
    let gate = g.queue.effective_gate_secret(access);
    let bytes = |s: &SecretString| s.expose_secret().as_bytes().to_vec();
    Settings {
        auth: AuthSettings {
            access_secret: bytes(access),
            refresh_secret: bytes(refresh),
            access_ttl: g.auth.access_ttl,
            refresh_ttl: g.auth.refresh_ttl,
            admin_secret: g.auth.admin_register_secret.as_ref().map(bytes),
            bcrypt_cost: g.auth.bcrypt_cost,
            hash_concurrency: g.auth.password_hash_concurrency,
            session_check: g.auth.session_check,
            socket_token_in_query: g.auth.socket_token_in_query,
        },
        queue: QueueSettings {
            capacity: g.queue.ready_capacity,
            gate_ttl: g.queue.gate_token_ttl,
            gate_secret: bytes(&gate),
            enforce_admission: g.queue.enforce_admission,
        },
        orders: OrderSettings {
            hold_ttl: g.orders.hold_ttl,
            idempotency_ttl: g.orders.idempotency_ttl,
        },
        payments: PaymentSettings {
            timeout: g.payments.timeout,
            callback_secret: g.payments.callback_secret.as_ref().map(bytes),
            allow_owner_callback: g.payments.allow_owner_callback,
            request_queue: g.payments.request_queue.clone(),
            result_queue: g.payments.result_queue.clone(),
        },
        pay: PaySettings {
            success_rate: g.pay.success_rate,
            min_latency: g.pay.processing_min(),
            max_latency: g.pay.processing_max(),
            result_queue: g.payments.result_queue.clone(),
        },
        limits: DoorLimits {
            register_per_addr: g.auth.register_rate_limit_per_ip.rate(),
            login_per_user: g.auth.login_rate_limit_per_user.rate(),
            login_per_addr: g.auth.login_rate_limit_per_ip.rate(),
            enqueue_per_user: g.queue.enqueue_rate_limit_per_user.rate(),
            enqueue_per_addr: g.queue.enqueue_rate_limit_per_ip.rate(),
            order_per_user: g.orders.order_rate_limit_per_user.rate(),
            order_per_addr: g.orders.order_rate_limit_per_ip.rate(),
            payment_per_user: g.payments.payment_rate_limit_per_user.rate(),
            payment_per_addr: g.payments.payment_rate_limit_per_ip.rate(),
        },
    }
}
