//! Accounts and tokens: register, admin register, login, refresh with rotation and reuse
//! detection, logout.

mod access;
mod password;
mod tokens;

pub use access::{Access, AccessError, Grant};
pub use password::{HashFailed, PasswordHasher};
pub use tokens::{Claims, RefreshClaims, TokenError, TokenPair, TokenType, Tokens};

use crate::classify;
use crate::settings::{AuthSettings, secret_bytes};
use crate::{Doorman, Ports};
use flash_core::domain::{LoginName, Role, Rotation, User};
use flash_core::ports::{Clock, Ids, SessionStore, UserStore};
use flash_core::{Context, FamilyId, StoreError, TokenId, UserId};
use std::sync::Arc;
use subtle::ConstantTimeEq;

// ---------------------------------------------------------------------------------------------
// Register

#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub login: LoginName,
    pub password: String,
    /// `Some` for `POST /auth/register/admin`.
    pub admin_secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("User ID already registered")]
    Taken,
    #[error("Invalid admin secret")]
    BadAdminSecret,
    #[error("Admin registration is disabled")]
    AdminDisabled,
    #[error("Too many attempts, retry later")]
    RateLimited(u64),
    #[error("Internal server error")]
    Hash(HashFailed),
    #[error(transparent)]
    Store(StoreError),
}

classify!(RegisterError {
    Taken => Conflict, "user_exists";
    BadAdminSecret => Unauthorized, "invalid_admin_secret";
    AdminDisabled => Forbidden, "admin_registration_disabled";
    RateLimited(_) => RateLimited, "rate_limited";
    Hash(_) => Internal, "internal";
} store: Store retry: RateLimited);

pub struct Register {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    users: Arc<dyn UserStore>,
    door: Doorman,
    hasher: PasswordHasher,
    admin_secret: Option<Vec<u8>>,
}

impl Register {
    /// `door` counts registrations per client address (each costs a password hash).
    pub fn new(p: &Ports, s: &AuthSettings, hasher: PasswordHasher, door: Doorman) -> Self {
        Register {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            users: p.users.clone(),
            door,
            hasher,
            admin_secret: secret_bytes(&s.admin_secret),
        }
    }

    pub async fn handle(&self, cx: &Context, req: RegisterRequest) -> Result<(), RegisterError> {
        let now = self.clock.now();
        // Every registration (and every guess at the admin secret) counts for its address.
        if let Some(wait) = self
            .door
            .check(cx, None, now)
            .await
            .map_err(RegisterError::Store)?
        {
            return Err(RegisterError::RateLimited(wait));
        }
        let role = match &req.admin_secret {
            None => Role::User,
            Some(given) => {
                let expected = self
                    .admin_secret
                    .as_ref()
                    .ok_or(RegisterError::AdminDisabled)?;
                if !bool::from(given.as_bytes().ct_eq(expected)) {
                    return Err(RegisterError::BadAdminSecret);
                }
                Role::Admin
            }
        };
        if self
            .users
            .by_login(&req.login)
            .await
            .map_err(RegisterError::Store)?
            .is_some()
        {
            return Err(RegisterError::Taken);
        }
        let hash = self
            .hasher
            .hash(req.password)
            .await
            .map_err(RegisterError::Hash)?;
        let user = User {
            id: UserId(self.ids.uuid()),
            login: req.login,
            password_hash: hash,
            role,
            created_at: now,
        };
        match self.users.create(user).await {
            Ok(()) => Ok(()),
            // Lost a race with a concurrent registration of the same name.
            Err(StoreError::Conflict(_)) => Err(RegisterError::Taken),
            Err(e) => Err(RegisterError::Store(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Login

#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("Invalid credentials")]
    InvalidCredentials,
    #[error("Too many login attempts, retry later")]
    RateLimited(u64),
    #[error("Internal server error")]
    Hash(HashFailed),
    #[error("Internal server error")]
    Token(TokenError),
    #[error(transparent)]
    Store(StoreError),
}

impl flash_core::Classify for LoginError {
    fn kind(&self) -> flash_core::ErrorKind {
        use flash_core::ErrorKind;
        match self {
            LoginError::InvalidCredentials => ErrorKind::Unauthorized,
            LoginError::RateLimited(_) => ErrorKind::RateLimited,
            LoginError::Hash(_) | LoginError::Token(_) => ErrorKind::Internal,
            LoginError::Store(e) => e.kind(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            LoginError::InvalidCredentials => "invalid_credentials",
            LoginError::RateLimited(_) => "rate_limited",
            LoginError::Hash(_) | LoginError::Token(_) => "internal",
            LoginError::Store(e) => crate::common::store_code(e),
        }
    }
    fn public_message(&self) -> String {
        match self {
            LoginError::Store(e) => crate::common::store_message(e),
            LoginError::InvalidCredentials
            | LoginError::RateLimited(_)
            | LoginError::Hash(_)
            | LoginError::Token(_) => self.to_string(),
        }
    }
    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            LoginError::RateLimited(ms) => Some(*ms),
            LoginError::InvalidCredentials
            | LoginError::Hash(_)
            | LoginError::Token(_)
            | LoginError::Store(_) => None,
        }
    }
}

pub struct Login {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    door: Doorman,
    tokens: Tokens,
    hasher: PasswordHasher,
}

impl Login {
    /// `door` counts attempts per client address, then per account.
    pub fn new(p: &Ports, tokens: Tokens, hasher: PasswordHasher, door: Doorman) -> Self {
        Login {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            users: p.users.clone(),
            sessions: p.sessions.clone(),
            door,
            tokens,
            hasher,
        }
    }

    /// Attempts are counted per client address first; only attempts at an account that exists
    /// count for that account (by its id), so names that are invalid or unknown — a flood of
    /// distinct ones included — leave nothing behind but their address's counter.
    pub async fn handle(&self, cx: &Context, req: LoginRequest) -> Result<TokenPair, LoginError> {
        let now = self.clock.now();
        if let Some(wait) = self
            .door
            .check(cx, None, now)
            .await
            .map_err(LoginError::Store)?
        {
            return Err(LoginError::RateLimited(wait));
        }
        let user = match LoginName::parse(&req.login) {
            Ok(name) => self
                .users
                .by_login(&name)
                .await
                .map_err(LoginError::Store)?,
            Err(_) => None,
        };
        if let Some(u) = &user
            && let Some(wait) = self
                .door
                .check_user(u.id, now)
                .await
                .map_err(LoginError::Store)?
        {
            return Err(LoginError::RateLimited(wait));
        }
        let ok = self
            .hasher
            .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
            .await
            .map_err(LoginError::Hash)?;
        let user = match (ok, user) {
            (true, Some(u)) => u,
            (true, None) | (false, _) => return Err(LoginError::InvalidCredentials),
        };
        let family = FamilyId(self.ids.uuid());
        let (pair, session) = self
            .tokens
            .issue(
                &user,
                family,
                TokenId(self.ids.uuid()),
                TokenId(self.ids.uuid()),
                now,
            )
            .map_err(LoginError::Token)?;
        self.sessions
            .issue(session)
            .await
            .map_err(LoginError::Store)?;
        Ok(pair)
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh and logout

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("Invalid refresh token")]
    Invalid,
    #[error("Internal server error")]
    Token(TokenError),
    #[error(transparent)]
    Store(StoreError),
}

classify!(RefreshError {
    Invalid => Unauthorized, "invalid_refresh_token";
    Token(_) => Internal, "internal";
} store: Store);

pub struct Refresh {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    tokens: Tokens,
    access: Access,
}

impl Refresh {
    /// `access` learns of a family revoked by reuse, so its access tokens stop here at once.
    pub fn new(p: &Ports, tokens: Tokens, access: Access) -> Self {
        Refresh {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            users: p.users.clone(),
            sessions: p.sessions.clone(),
            tokens,
            access,
        }
    }

    /// Spends the refresh token and issues a new pair in the same family. A token presented a
    /// second time revokes its whole family (someone else holds a copy).
    pub async fn handle(
        &self,
        _cx: &Context,
        refresh_token: &str,
    ) -> Result<TokenPair, RefreshError> {
        let now = self.clock.now();
        let claims = self
            .tokens
            .verify_refresh(refresh_token, now)
            .map_err(|_| RefreshError::Invalid)?;
        match self
            .sessions
            .rotate(claims.jti, now)
            .await
            .map_err(RefreshError::Store)?
        {
            Rotation::Rotated(session) => {
                let user = self
                    .users
                    .by_id(session.user)
                    .await
                    .map_err(RefreshError::Store)?
                    .ok_or(RefreshError::Invalid)?;
                let (pair, next) = self
                    .tokens
                    .issue(
                        &user,
                        session.family,
                        TokenId(self.ids.uuid()),
                        TokenId(self.ids.uuid()),
                        now,
                    )
                    .map_err(RefreshError::Token)?;
                self.sessions
                    .issue(next)
                    .await
                    .map_err(RefreshError::Store)?;
                Ok(pair)
            }
            Rotation::Reused { family } => {
                tracing::warn!(%family, "refresh token reused: family revoked");
                self.access.revoked(family);
                Err(RefreshError::Invalid)
            }
            Rotation::Unknown => Err(RefreshError::Invalid),
        }
    }
}

pub struct Logout {
    clock: Arc<dyn Clock>,
    sessions: Arc<dyn SessionStore>,
    tokens: Tokens,
    access: Access,
}

impl Logout {
    pub fn new(p: &Ports, tokens: Tokens, access: Access) -> Self {
        Logout {
            clock: p.clock.clone(),
            sessions: p.sessions.clone(),
            tokens,
            access,
        }
    }

    /// Ends the whole session (SPEC §11): every refresh token of the family, the rotated ones'
    /// successors included, and every access token issued with them. Any refresh token of the
    /// session logs out, even one already spent.
    pub async fn handle(&self, _cx: &Context, refresh_token: &str) -> Result<(), RefreshError> {
        let claims = self
            .tokens
            .verify_refresh(refresh_token, self.clock.now())
            .map_err(|_| RefreshError::Invalid)?;
        self.sessions
            .revoke_family(claims.family)
            .await
            .map_err(RefreshError::Store)?;
        self.access.revoked(claims.family);
        Ok(())
    }
}

/// A bcrypt hash computed synchronously (seeding demo accounts at start-up).
pub fn hash_password(password: &str, cost: u32) -> Result<String, HashFailed> {
    bcrypt::hash(password, cost).map_err(|e| HashFailed(e.to_string()))
}
