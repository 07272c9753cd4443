//! What every handler shares: the port bundle, the wake-up signal, and access checks.

use flash_core::domain::RateDecision;
use flash_core::limits::{Door, Rate, RateKey};
use flash_core::ports::*;
use flash_core::{Classify, Context, ErrorKind, Principal, StoreError, Timestamp, UserId};
use std::sync::Arc;
use tokio::sync::Notify;

/// Every port, as the binaries wire them.
#[derive(Clone)]
pub struct Ports {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    pub random: Arc<dyn Random>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub queue: Arc<dyn QueueStore>,
    pub notifier: Arc<dyn QueueNotifier>,
    pub events: Arc<dyn EventStore>,
    pub orders: Arc<dyn OrderStore>,
    pub payments: Arc<dyn PaymentStore>,
    pub bus: Arc<dyn Bus>,
    pub ledger: Arc<dyn PaymentLedger>,
    pub timeline: Arc<dyn TimelineStore>,
}

/// A wake-up for a background task (promotion, outbox relay) so it runs now, not at its next tick.
#[derive(Clone, Default)]
pub struct Kick(Arc<Notify>);

impl Kick {
    pub fn kick(&self) {
        self.0.notify_one();
    }

    pub fn notify(&self) -> Arc<Notify> {
        self.0.clone()
    }
}

/// Counts a request at one door against its per-address limit, then its per-user limit.
///
/// The address is counted first, so a client refused there leaves no per-user counter behind;
/// the keys are [`RateKey`]s, built from the parsed address and a verified user id only.
#[derive(Clone)]
pub struct Doorman {
    limiter: Arc<dyn RateLimiter>,
    door: Door,
    per_addr: Rate,
    per_user: Rate,
}

impl Doorman {
    pub fn new(limiter: Arc<dyn RateLimiter>, door: Door, per_addr: Rate, per_user: Rate) -> Self {
        Doorman {
            limiter,
            door,
            per_addr,
            per_user,
        }
    }

    /// `Some(retry_after_ms)` when a limit refuses: the client's address, then `user` if given
    /// (one [`RateLimiter::hit_all`], so one round trip where the store allows it).
    pub async fn check(
        &self,
        cx: &Context,
        user: Option<UserId>,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let by_addr = RateKey::addr(self.door, cx.client_addr.as_deref());
        let by_user = user.map(|u| RateKey::user(self.door, u));
        let addr = rate_hit(&by_addr, self.per_addr);
        let both;
        let hits = match &by_user {
            Some(key) => {
                both = [addr, rate_hit(key, self.per_user)];
                &both[..]
            }
            None => std::slice::from_ref(&addr),
        };
        Ok(retry_after(self.limiter.hit_all(hits, now).await?))
    }

    /// Counts `user` only (a door whose address was counted already, or that has no address
    /// limit of its own).
    pub async fn check_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        self.hit(&RateKey::user(self.door, user), self.per_user, now)
            .await
    }

    async fn hit(
        &self,
        key: &RateKey,
        rate: Rate,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        Ok(retry_after(
            self.limiter.hit(key, rate.limit, rate.window, now).await?,
        ))
    }
}

/// A hit on `key` at `rate`.
fn rate_hit(key: &RateKey, rate: Rate) -> RateHit<'_> {
    RateHit {
        key,
        limit: rate.limit,
        window: rate.window,
    }
}

/// `Some(retry_after_ms)` for a refusal.
fn retry_after(decision: RateDecision) -> Option<u64> {
    match decision {
        RateDecision::Allowed => None,
        RateDecision::Limited { retry_after_ms } => Some(retry_after_ms),
    }
}

/// Access failures shared by every authenticated handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    #[error("Unauthorized")]
    Unauthenticated,
    #[error("Forbidden resource")]
    NotAdmin,
}

impl Classify for AccessDenied {
    fn kind(&self) -> ErrorKind {
        match self {
            AccessDenied::Unauthenticated => ErrorKind::Unauthorized,
            AccessDenied::NotAdmin => ErrorKind::Forbidden,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            AccessDenied::Unauthenticated => "unauthorized",
            AccessDenied::NotAdmin => "forbidden",
        }
    }
    fn public_message(&self) -> String {
        self.to_string()
    }
}

pub fn caller(cx: &Context) -> Result<&Principal, AccessDenied> {
    cx.principal.as_ref().ok_or(AccessDenied::Unauthenticated)
}

pub fn admin(cx: &Context) -> Result<&Principal, AccessDenied> {
    let p = caller(cx)?;
    if p.is_admin() {
        Ok(p)
    } else {
        Err(AccessDenied::NotAdmin)
    }
}

/// The public text of a store failure: a dependency outage is named as such, anything else is
/// an internal error whose text stays in the logs.
pub fn store_message(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(_) => "Service temporarily unavailable, please retry".to_owned(),
        StoreError::Conflict(_) => "Conflict with the current state, please retry".to_owned(),
        StoreError::Internal(_) => "Internal server error".to_owned(),
    }
}

pub fn store_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::Unavailable(_) => "dependency_unavailable",
        StoreError::Conflict(_) => "conflict",
        StoreError::Internal(_) => "internal",
    }
}

/// Implements `Classify` for an error enum whose variants are listed with their kind, code and
/// message; a `Store(StoreError)` variant and an `Access(AccessDenied)` variant are delegated.
#[macro_export]
macro_rules! classify {
    ($ty:ident { $($var:ident $( ( $($pat:tt)* ) )? => $kind:ident, $code:literal;)* } $(store: $store:ident)? $(access: $access:ident)? $(retry: $retry:ident)?) => {
        impl flash_core::Classify for $ty {
            fn kind(&self) -> flash_core::ErrorKind {
                match self {
                    $( $ty::$var $( ( $($pat)* ) )? => flash_core::ErrorKind::$kind, )*
                    $( $ty::$store(e) => e.kind(), )?
                    $( $ty::$access(e) => flash_core::Classify::kind(e), )?
                }
            }
            fn code(&self) -> &'static str {
                match self {
                    $( $ty::$var $( ( $($pat)* ) )? => $code, )*
                    $( $ty::$store(e) => $crate::common::store_code(e), )?
                    $( $ty::$access(e) => flash_core::Classify::code(e), )?
                }
            }
            fn public_message(&self) -> String {
                match self {
                    $( $ty::$store(e) => $crate::common::store_message(e), )?
                    other => other.to_string(),
                }
            }
            $(
            fn retry_after_ms(&self) -> Option<u64> {
                match self {
                    $ty::$retry(ms) => Some(*ms),
                    _ => None,
                }
            }
            )?
        }
    };
}
