//! JWT access and refresh tokens (HS256, legacy claims plus `typ` and `jti`).
//!
//! Expiry is checked against the `Clock` port, not the system clock, so tests are deterministic.

use super::access::Grant;
use crate::settings::{AuthSettings, secret_bytes};
use flash_core::domain::{LoginName, RefreshSession, Role, User};
use flash_core::{FamilyId, Principal, Timestamp, TokenId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims of both token types. `fam` names the session family (absent from access tokens
/// issued before access tokens carried it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub typ: TokenType,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

/// A freshly issued pair, as `POST /auth/login` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// A verified refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    pub jti: TokenId,
    pub family: FamilyId,
    pub user: UserId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("expired token")]
    Expired,
    #[error("token of the wrong type")]
    WrongType,
}

struct Keys {
    access_enc: EncodingKey,
    access_dec: DecodingKey,
    refresh_enc: EncodingKey,
    refresh_dec: DecodingKey,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

/// Issues and verifies tokens. Cheap to clone.
#[derive(Clone)]
pub struct Tokens(Arc<Keys>);

impl Tokens {
    pub fn new(s: &AuthSettings) -> Self {
        // Hosts resolve both secrets before building the handlers (required, or random for
        // the embedded default); an unset one here signs with the empty key of a test world.
        let access = secret_bytes(&s.access_secret).unwrap_or_default();
        let refresh = secret_bytes(&s.refresh_secret).unwrap_or_default();
        Tokens(Arc::new(Keys {
            access_enc: EncodingKey::from_secret(&access),
            access_dec: DecodingKey::from_secret(&access),
            refresh_enc: EncodingKey::from_secret(&refresh),
            refresh_dec: DecodingKey::from_secret(&refresh),
            access_ttl: s.access_ttl,
            refresh_ttl: s.refresh_ttl,
        }))
    }

    /// Signs an access token and a refresh token of `family`; returns the session to record.
    pub fn issue(
        &self,
        user: &User,
        family: FamilyId,
        access_jti: TokenId,
        refresh_jti: TokenId,
        now: Timestamp,
    ) -> Result<(TokenPair, RefreshSession), TokenError> {
        let claims = |typ: TokenType, jti: TokenId, ttl: Duration, fam: Option<String>| Claims {
            sub: user.id.to_string(),
            user_id: user.login.to_string(),
            role: user.role.as_str().to_owned(),
            iat: now.unix_seconds(),
            exp: now.plus(ttl).unix_seconds(),
            typ,
            jti: jti.to_string(),
            fam,
        };
        let header = Header::new(Algorithm::HS256);
        let access = encode(
            &header,
            &claims(
                TokenType::Access,
                access_jti,
                self.0.access_ttl,
                Some(family.to_string()),
            ),
            &self.0.access_enc,
        )
        .map_err(|_| TokenError::Invalid)?;
        let refresh = encode(
            &header,
            &claims(
                TokenType::Refresh,
                refresh_jti,
                self.0.refresh_ttl,
                Some(family.to_string()),
            ),
            &self.0.refresh_enc,
        )
        .map_err(|_| TokenError::Invalid)?;
        Ok((
            TokenPair {
                access_token: access,
                refresh_token: refresh,
            },
            RefreshSession {
                jti: refresh_jti,
                family,
                user: user.id,
                expires_at: now.plus(self.0.refresh_ttl),
            },
        ))
    }

    /// Verifies an access token statelessly (no store read) and returns its principal.
    pub fn verify_access(&self, token: &str, now: Timestamp) -> Result<Principal, TokenError> {
        self.verify_grant(token, now).map(|g| g.principal)
    }

    /// Verifies an access token statelessly; [`super::Access`] adds the session check.
    pub fn verify_grant(&self, token: &str, now: Timestamp) -> Result<Grant, TokenError> {
        let c = self.decode(token, &self.0.access_dec, TokenType::Access, now)?;
        let family = match c.fam.as_deref() {
            Some(f) => Some(f.parse().map_err(|_| TokenError::Invalid)?),
            None => None,
        };
        Ok(Grant {
            principal: Principal {
                user: c.sub.parse().map_err(|_| TokenError::Invalid)?,
                login: LoginName::trusted(c.user_id),
                role: Role::parse(&c.role).ok_or(TokenError::Invalid)?,
            },
            family,
            expires_at: Timestamp::from_millis(c.exp.saturating_mul(1000)),
        })
    }

    pub fn verify_refresh(&self, token: &str, now: Timestamp) -> Result<RefreshClaims, TokenError> {
        let c = self.decode(token, &self.0.refresh_dec, TokenType::Refresh, now)?;
        Ok(RefreshClaims {
            jti: c.jti.parse().map_err(|_| TokenError::Invalid)?,
            family: c
                .fam
                .as_deref()
                .ok_or(TokenError::Invalid)?
                .parse()
                .map_err(|_| TokenError::Invalid)?,
            user: c.sub.parse().map_err(|_| TokenError::Invalid)?,
        })
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        typ: TokenType,
        now: Timestamp,
    ) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the Clock port.
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = decode::<Claims>(token, key, &v).map_err(|_| TokenError::Invalid)?;
        if data.claims.typ != typ {
            return Err(TokenError::WrongType);
        }
        if data.claims.exp <= now.unix_seconds() {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn user() -> User {
        User {
            id: UserId(uuid::Uuid::new_v4()),
            login: LoginName::trusted("test0001"),
            password_hash: String::new(),
            role: Role::User,
            created_at: Timestamp(0),
        }
    }

    fn tokens(same_secrets: bool) -> Tokens {
        let s = if same_secrets {
            Settings::with_secrets("same", "same", "g")
        } else {
            Settings::with_secrets("a", "r", "g")
        };
        Tokens::new(&s.auth)
    }

    fn id<T: From<uuid::Uuid>>() -> T {
        T::from(uuid::Uuid::new_v4())
    }

    #[test]
    fn access_token_carries_legacy_claims_and_verifies() {
        let t = tokens(false);
        let u = user();
        let now = Timestamp(1_762_149_814_000);
        let (pair, session) = t.issue(&u, id(), id(), id(), now).unwrap();
        let p = t.verify_access(&pair.access_token, now).unwrap();
        assert_eq!(p.user, u.id);
        assert_eq!(p.login.as_str(), "test0001");
        assert_eq!(session.expires_at, now.plus(Duration::from_secs(7 * 86400)));
        let r = t.verify_refresh(&pair.refresh_token, now).unwrap();
        assert_eq!(r.jti, session.jti);
    }

    #[test]
    fn token_types_are_never_interchangeable_even_with_equal_secrets() {
        let t = tokens(true);
        let now = Timestamp(1_000_000);
        let (pair, _) = t.issue(&user(), id(), id(), id(), now).unwrap();
        assert_eq!(
            t.verify_refresh(&pair.access_token, now),
            Err(TokenError::WrongType)
        );
        assert_eq!(
            t.verify_access(&pair.refresh_token, now).unwrap_err(),
            TokenError::WrongType
        );
    }

    #[test]
    fn expiry_follows_the_clock_port() {
        let t = tokens(false);
        let now = Timestamp(1_000_000);
        let (pair, _) = t.issue(&user(), id(), id(), id(), now).unwrap();
        let later = now.plus(Duration::from_secs(15 * 60));
        assert_eq!(
            t.verify_access(&pair.access_token, later).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let now = Timestamp(1_000_000);
        let (pair, _) = tokens(false).issue(&user(), id(), id(), id(), now).unwrap();
        let other = Tokens::new(&Settings::with_secrets("x", "y", "z").auth);
        assert_eq!(
            other.verify_access(&pair.access_token, now).unwrap_err(),
            TokenError::Invalid
        );
    }
}
