//! Access tokens checked against their session (SPEC §11): a token of a family revoked by logout
//! or by refresh-token reuse is refused at once on the instance that revoked it, and on every
//! other instance within `session_check` (the time an answer of the session store is trusted).

use super::tokens::{TokenError, Tokens};
use flash_core::ports::{Clock, SessionStore};
use flash_core::{FamilyId, Principal, StoreError, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Families remembered per instance before the oldest answers are dropped (each is a few dozen
/// bytes; only signed tokens create entries).
const REMEMBERED_FAMILIES: usize = 100_000;

/// A verified access token: who, which session, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: Principal,
    /// `None` for tokens issued before access tokens named their family (they expire on time).
    pub family: Option<FamilyId>,
    pub expires_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("invalid access token")]
    Invalid(#[from] TokenError),
    #[error("session revoked")]
    Revoked,
    #[error(transparent)]
    Store(StoreError),
}

#[derive(Debug, Clone, Copy)]
struct Known {
    alive: bool,
    checked_at: Timestamp,
}

/// Verifies access tokens and whether their session still stands. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    tokens: Tokens,
    sessions: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    session_check: Duration,
    access_ttl: Duration,
    known: Arc<RwLock<HashMap<FamilyId, Known>>>,
}

impl Access {
    pub fn new(
        tokens: Tokens,
        sessions: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        session_check: Duration,
        access_ttl: Duration,
    ) -> Self {
        Access {
            tokens,
            sessions,
            clock,
            session_check,
            access_ttl,
            known: Arc::default(),
        }
    }

    /// The grant of `token` if it is a valid, unexpired access token of a live session.
    pub async fn verify(&self, token: &str) -> Result<Grant, AccessError> {
        let now = self.clock.now();
        let grant = self.tokens.verify_grant(token, now)?;
        if self
            .session_alive(&grant, now)
            .await
            .map_err(AccessError::Store)?
        {
            Ok(grant)
        } else {
            Err(AccessError::Revoked)
        }
    }

    /// Whether `grant` still stands now: unexpired and its session not revoked (long-lived
    /// connections re-check with this).
    pub async fn still_valid(&self, grant: &Grant) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if grant.expires_at <= now {
            return Ok(false);
        }
        self.session_alive(grant, now).await
    }

    /// Records that `family` was revoked here, so this instance refuses its tokens at once.
    pub fn revoked(&self, family: FamilyId) {
        let now = self.clock.now();
        self.remember(
            family,
            Known {
                alive: false,
                checked_at: now,
            },
            now,
        );
    }

    async fn session_alive(&self, grant: &Grant, now: Timestamp) -> Result<bool, StoreError> {
        let Some(family) = grant.family else {
            return Ok(true);
        };
        let cached = self.read().get(&family).copied();
        match cached {
            // A revoked family never comes back.
            Some(k) if !k.alive => return Ok(false),
            Some(k) if now < k.checked_at.plus(self.session_check) => return Ok(true),
            _ => {}
        }
        let alive = self.sessions.family_alive(family).await?;
        self.remember(
            family,
            Known {
                alive,
                checked_at: now,
            },
            now,
        );
        Ok(alive)
    }

    fn remember(&self, family: FamilyId, known: Known, now: Timestamp) {
        let mut map = self.known.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= REMEMBERED_FAMILIES && !map.contains_key(&family) {
            // Alive answers past their check period are worthless; revocations matter only
            // while the family's access tokens can still be valid.
            let (check, ttl) = (self.session_check, self.access_ttl);
            map.retain(|_, k| {
                if k.alive {
                    now < k.checked_at.plus(check)
                } else {
                    now < k.checked_at.plus(ttl)
                }
            });
            if map.len() >= REMEMBERED_FAMILIES {
                map.retain(|_, k| !k.alive);
            }
            if map.len() >= REMEMBERED_FAMILIES {
                // Only revocations left: the store still has them, so forgetting costs a read.
                map.clear();
            }
        }
        // A revocation is never overwritten by an older "alive" answer.
        let keep_revoked = map.get(&family).is_some_and(|k| !k.alive) && known.alive;
        if !keep_revoked {
            map.insert(family, known);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<FamilyId, Known>> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }
}
