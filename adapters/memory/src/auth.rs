//! Accounts, refresh-token sessions and rate-limit counters.

use crate::{Faults, lock};
use async_trait::async_trait;
use flash_core::budget::Budget;
use flash_core::domain::{LoginName, RateDecision, RefreshSession, Rotation, User};
use flash_core::limits::RateKey;
use flash_core::ports::{RateLimiter, SessionStore, StoreResult, UserStore};
use flash_core::{FamilyId, StoreError, Timestamp, TokenId, UserId};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

crate::fault::with_faults!(MemoryUserStore, MemorySessionStore, MemoryRateLimiter);

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<UserId, User>,
    by_login: HashMap<LoginName, UserId>,
}

/// Accounts, unique by login name and by id.
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    state: Mutex<Users>,
    faults: Faults,
}

impl MemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registered accounts.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.by_id.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn create(&self, user: User) -> StoreResult<()> {
        self.faults.check("user store")?;
        let mut s = lock(&self.state, "user store")?;
        if s.by_login.contains_key(&user.login) {
            return Err(StoreError::Conflict(format!(
                "login {} already exists",
                user.login
            )));
        }
        if s.by_id.contains_key(&user.id) {
            return Err(StoreError::Conflict(format!(
                "user {} already exists",
                user.id
            )));
        }
        s.by_login.insert(user.login.clone(), user.id);
        s.by_id.insert(user.id, user);
        Ok(())
    }

    async fn by_login(&self, login: &LoginName) -> StoreResult<Option<User>> {
        self.faults.check("user store")?;
        let s = lock(&self.state, "user store")?;
        Ok(s.by_login
            .get(login)
            .and_then(|id| s.by_id.get(id))
            .cloned())
    }

    async fn by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        self.faults.check("user store")?;
        let s = lock(&self.state, "user store")?;
        Ok(s.by_id.get(&id).cloned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spend {
    Unspent,
    Spent,
    Revoked,
}

#[derive(Debug)]
struct Session {
    session: RefreshSession,
    spend: Spend,
}

#[derive(Debug, Default)]
struct Family {
    revoked: bool,
    /// Tokens of the family still remembered; the family is forgotten with its last token.
    tokens: usize,
}

#[derive(Debug, Default)]
struct Sessions {
    tokens: HashMap<TokenId, Session>,
    families: HashMap<FamilyId, Family>,
    /// (expires_at, jti): tokens are forgotten once expired, oldest first.
    expiry: BTreeSet<(Timestamp, TokenId)>,
}

impl Sessions {
    fn sweep(&mut self, now: Timestamp) {
        while let Some(&(at, jti)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(gone) = self.tokens.remove(&jti) {
                let family = gone.session.family;
                let empty = self.families.get_mut(&family).is_some_and(|f| {
                    f.tokens = f.tokens.saturating_sub(1);
                    f.tokens == 0
                });
                if empty {
                    self.families.remove(&family);
                }
            }
        }
    }
}

/// Refresh tokens with rotation and family-wide revocation on reuse. Expired tokens are
/// forgotten on the next rotation (they read as `Unknown` either way).
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    state: Mutex<Sessions>,
    faults: Faults,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn issue(&self, session: RefreshSession) -> StoreResult<()> {
        self.faults.check("session store")?;
        let mut s = lock(&self.state, "session store")?;
        if s.tokens.contains_key(&session.jti) {
            return Err(StoreError::Conflict(format!(
                "refresh token {} already issued",
                session.jti
            )));
        }
        s.families.entry(session.family).or_default().tokens += 1;
        s.expiry.insert((session.expires_at, session.jti));
        s.tokens.insert(
            session.jti,
            Session {
                session,
                spend: Spend::Unspent,
            },
        );
        Ok(())
    }

    async fn rotate(&self, jti: TokenId, now: Timestamp) -> StoreResult<Rotation> {
        self.faults.check("session store")?;
        let mut s = lock(&self.state, "session store")?;
        s.sweep(now);
        let Sessions {
            tokens, families, ..
        } = &mut *s;
        let Some(token) = tokens.get_mut(&jti) else {
            return Ok(Rotation::Unknown);
        };
        if token.session.expires_at <= now {
            return Ok(Rotation::Unknown);
        }
        let family = families.entry(token.session.family).or_default();
        match token.spend {
            Spend::Unspent if !family.revoked => {
                token.spend = Spend::Spent;
                Ok(Rotation::Rotated(token.session.clone()))
            }
            Spend::Unspent | Spend::Spent | Spend::Revoked => {
                // Reuse of a spent token means it leaked: every token of the family dies.
                family.revoked = true;
                token.spend = Spend::Revoked;
                Ok(Rotation::Reused {
                    family: token.session.family,
                })
            }
        }
    }

    async fn revoke_family(&self, family: FamilyId) -> StoreResult<()> {
        self.faults.check("session store")?;
        let mut s = lock(&self.state, "session store")?;
        if let Some(f) = s.families.get_mut(&family) {
            f.revoked = true;
        }
        Ok(())
    }

    /// An unknown family (never issued, or every token expired and forgotten) was never
    /// revoked, and none of its tokens can be rotated any more.
    async fn family_alive(&self, family: FamilyId) -> StoreResult<bool> {
        self.faults.check("session store")?;
        let s = lock(&self.state, "session store")?;
        Ok(s.families.get(&family).is_none_or(|f| !f.revoked))
    }
}

#[derive(Debug)]
struct Window {
    ends_at: Timestamp,
    hits: u32,
}

#[derive(Debug, Default)]
struct Windows {
    by_key: HashMap<RateKey, Window>,
    /// (ends_at, key) of every open window, so ended ones are dropped without a scan.
    ends: BTreeSet<(Timestamp, RateKey)>,
}

/// Most windows kept at once unless configured: ~200 B each, so ~20 MiB at most.
pub const DEFAULT_RATE_LIMIT_MAX_KEYS: usize = 100_000;

/// Fixed windows per key; a window is forgotten once it has ended.
///
/// Bounded (SPEC §11) by its [`Budget`]: when a new key arrives with the budget full, the window
/// closest to its end is forgotten first — the one with the least protection left to give — and
/// counted as evicted. Its key then starts a fresh window when it comes back.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    state: Mutex<Windows>,
    budget: Arc<Budget>,
    faults: Faults,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::with_budget(Budget::new("rate_limit_keys", DEFAULT_RATE_LIMIT_MAX_KEYS))
    }

    /// A limiter keeping at most `budget.max()` windows.
    pub fn with_budget(budget: Arc<Budget>) -> Self {
        MemoryRateLimiter {
            state: Mutex::default(),
            budget,
            faults: Faults::default(),
        }
    }

    pub fn budget(&self) -> Arc<Budget> {
        self.budget.clone()
    }

    /// Open windows (for tests of expiry).
    pub fn tracked_keys(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.by_key.len())
            .unwrap_or_default()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(
        &self,
        key: &RateKey,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<RateDecision> {
        self.faults.check("rate limiter")?;
        let mut s = lock(&self.state, "rate limiter")?;
        while let Some((ends_at, _)) = s.ends.first() {
            if *ends_at > now {
                break;
            }
            if let Some((_, k)) = s.ends.pop_first() {
                s.by_key.remove(&k);
            }
        }
        self.budget.set_used(s.by_key.len());
        if !s.by_key.contains_key(key) {
            while self.budget.is_full(s.by_key.len()) {
                let Some((_, k)) = s.ends.pop_first() else {
                    break;
                };
                s.by_key.remove(&k);
                self.budget.count_evicted(1);
            }
        }
        let ends_at = match s.by_key.get_mut(key) {
            Some(w) => {
                w.hits = w.hits.saturating_add(1);
                if w.hits <= limit {
                    return Ok(RateDecision::Allowed);
                }
                w.ends_at
            }
            None => {
                let ends_at = now.plus(window);
                s.by_key.insert(key.clone(), Window { ends_at, hits: 1 });
                s.ends.insert((ends_at, key.clone()));
                self.budget.set_used(s.by_key.len());
                if limit >= 1 {
                    return Ok(RateDecision::Allowed);
                }
                ends_at
            }
        };
        let wait = now.until(ends_at).as_millis();
        Ok(RateDecision::Limited {
            retry_after_ms: u64::try_from(wait).unwrap_or(u64::MAX).max(1),
        })
    }
}
