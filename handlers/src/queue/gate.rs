//! Gate tokens: signed, stateless proof of an admission, bound to ticket, user, scope and expiry.
//!
//! Format: `g1.<ticket>.<user>.<scope>.<expires_ms>.<hmac-sha256 hex>`; deterministic, so every
//! status read of one admission returns the same token.

use flash_core::domain::QueueScope;
use flash_core::{TicketId, Timestamp, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// What a valid gate token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePass {
    pub ticket: TicketId,
    pub user: UserId,
    pub scope: QueueScope,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("malformed gate token")]
    Malformed,
    #[error("bad gate token signature")]
    BadSignature,
    #[error("gate token expired")]
    Expired,
}

#[derive(Clone)]
pub struct GateTokens {
    key: Arc<Vec<u8>>,
}

impl GateTokens {
    pub fn new(secret: &[u8]) -> Self {
        GateTokens {
            key: Arc::new(secret.to_vec()),
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        m.update(payload.as_bytes());
        m
    }

    pub fn sign(&self, pass: &GatePass) -> String {
        let payload = format!(
            "g1.{}.{}.{}.{}",
            pass.ticket,
            pass.user,
            pass.scope,
            pass.expires_at.millis()
        );
        let sig = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    pub fn verify(&self, token: &str, now: Timestamp) -> Result<GatePass, GateError> {
        let (payload, sig) = token.rsplit_once('.').ok_or(GateError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| GateError::Malformed)?;
        self.mac(payload)
            .verify_slice(&sig)
            .map_err(|_| GateError::BadSignature)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [version, ticket, user, scope, exp] = parts.as_slice() else {
            return Err(GateError::Malformed);
        };
        if *version != "g1" {
            return Err(GateError::Malformed);
        }
        let pass = GatePass {
            ticket: ticket.parse().map_err(|_| GateError::Malformed)?,
            user: user.parse().map_err(|_| GateError::Malformed)?,
            scope: QueueScope::parse(scope).ok_or(GateError::Malformed)?,
            expires_at: Timestamp(exp.parse().map_err(|_| GateError::Malformed)?),
        };
        if pass.expires_at <= now {
            return Err(GateError::Expired);
        }
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> GatePass {
        GatePass {
            ticket: TicketId(uuid::Uuid::new_v4()),
            user: UserId(uuid::Uuid::new_v4()),
            scope: QueueScope::Global,
            expires_at: Timestamp(10_000),
        }
    }

    #[test]
    fn a_signed_pass_verifies_until_it_expires() {
        let g = GateTokens::new(b"secret");
        let p = pass();
        let t = g.sign(&p);
        assert_eq!(g.sign(&p), t, "deterministic");
        assert_eq!(g.verify(&t, Timestamp(9_999)), Ok(p));
        assert_eq!(g.verify(&t, Timestamp(10_000)), Err(GateError::Expired));
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let g = GateTokens::new(b"secret");
        let p = pass();
        let t = g.sign(&p);
        let other_user = t.replacen(&p.user.to_string(), &uuid::Uuid::new_v4().to_string(), 1);
        assert_eq!(
            g.verify(&other_user, Timestamp(0)),
            Err(GateError::BadSignature)
        );
        assert_eq!(
            GateTokens::new(b"other").verify(&t, Timestamp(0)),
            Err(GateError::BadSignature)
        );
        assert_eq!(
            g.verify("nonsense", Timestamp(0)),
            Err(GateError::Malformed)
        );
    }
}
