//! Accounts (`users`) and refresh-token sessions (`refresh_tokens`, `refresh_token_families`).

use crate::error::db;
use crate::row::{self, get, get_ts, ts};
use async_trait::async_trait;
use flash_core::domain::{LoginName, RefreshSession, Role, Rotation, User};
use flash_core::ports::{SessionStore, StoreResult, UserStore};
use flash_core::{FamilyId, StoreError, Timestamp, TokenId, UserId};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

/// Accounts in the legacy `users` table; the login name is its `user_id` column.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
}

impl PgUserStore {
    pub fn new(pool: PgPool) -> Self {
        PgUserStore { pool }
    }
}

const USER_COLUMNS: &str = "id, user_id, password_hash, role::text AS role, created_at";

fn user(row: &PgRow) -> StoreResult<User> {
    let role: String = get(row, "role")?;
    Ok(User {
        id: UserId(get(row, "id")?),
        login: LoginName::trusted(get::<String>(row, "user_id")?),
        password_hash: get(row, "password_hash")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Internal(format!("users.role: unknown value {role:?}")))?,
        created_at: get_ts(row, "created_at")?,
    })
}

#[async_trait]
impl UserStore for PgUserStore {
    /// The unique constraint on `user_id` makes concurrent creations of one name race safely:
    /// the losers get a unique violation, reported as `Conflict`.
    async fn create(&self, u: User) -> StoreResult<()> {
        let at = ts(u.created_at)?;
        sqlx::query(
            "INSERT INTO users (id, user_id, password_hash, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4::text::user_role, $5, $5)",
        )
        .bind(u.id.as_uuid())
        .bind(u.login.as_str())
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| db("create user", e))?;
        Ok(())
    }

    async fn by_login(&self, login: &LoginName) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_id = $1");
        let query = sqlx::query(&sql).bind(login.as_str());
        row::fetch_optional(query, &self.pool, "user by login", user).await
    }

    async fn by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let query = sqlx::query(&sql).bind(id.as_uuid());
        row::fetch_optional(query, &self.pool, "user by id", user).await
    }
}

/// Refresh tokens with rotation and family-wide revocation on reuse.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    pub fn new(pool: PgPool) -> Self {
        PgSessionStore { pool }
    }

    /// Forgets tokens that expired at or before `now` (they read as `Unknown` either way) and
    /// families left without tokens. Returns how many tokens were removed.
    pub async fn purge(&self, now: Timestamp) -> StoreResult<u64> {
        // The family check reads the statement's snapshot, which still shows the tokens being
        // deleted; they all expired, so only live tokens keep a family.
        let removed: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM refresh_tokens WHERE expires_at <= $1 RETURNING family_id), \
                  families AS ( \
                      DELETE FROM refresh_token_families f \
                      USING (SELECT DISTINCT family_id FROM gone) g \
                      WHERE f.id = g.family_id \
                        AND NOT EXISTS (SELECT 1 FROM refresh_tokens t \
                                        WHERE t.family_id = f.id AND t.expires_at > $1)) \
             SELECT count(*) FROM gone",
        )
        .bind(ts(now)?)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db("purge refresh tokens", e))?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn issue(&self, s: RefreshSession) -> StoreResult<()> {
        // The family row is created with its first token, in the same statement.
        sqlx::query(
            "WITH family AS ( \
                 INSERT INTO refresh_token_families (id, user_id) VALUES ($2, $3) \
                 ON CONFLICT (id) DO NOTHING) \
             INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(s.jti.as_uuid())
        .bind(s.family.as_uuid())
        .bind(s.user.as_uuid())
        .bind(ts(s.expires_at)?)
        .execute(&self.pool)
        .await
        .map_err(|e| db("issue refresh token", e))?;
        Ok(())
    }

    async fn rotate(&self, jti: TokenId, now: Timestamp) -> StoreResult<Rotation> {
        let at = ts(now)?;
        // One conditional UPDATE spends the token: of concurrent rotations exactly one matches
        // `spent_at IS NULL`; the others wait for its row lock, re-check, and fall through.
        let spent = sqlx::query(
            "UPDATE refresh_tokens t SET spent_at = $2 \
             FROM refresh_token_families f \
             WHERE t.jti = $1 AND f.id = t.family_id AND t.spent_at IS NULL \
               AND t.revoked_at IS NULL AND t.expires_at > $2 AND f.revoked_at IS NULL \
             RETURNING t.jti, t.family_id, t.user_id, t.expires_at",
        )
        .bind(jti.as_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("rotate refresh token", e))?;
        if let Some(row) = spent {
            return Ok(Rotation::Rotated(RefreshSession {
                jti: TokenId(get(&row, "jti")?),
                family: FamilyId(get(&row, "family_id")?),
                user: UserId(get(&row, "user_id")?),
                expires_at: get_ts(&row, "expires_at")?,
            }));
        }
        let known = sqlx::query("SELECT family_id, expires_at FROM refresh_tokens WHERE jti = $1")
            .bind(jti.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("read refresh token", e))?;
        let Some(row) = known else {
            return Ok(Rotation::Unknown);
        };
        if get_ts(&row, "expires_at")? <= now {
            return Ok(Rotation::Unknown);
        }
        // Spent, revoked, or of a revoked family: the token leaked, so its family dies.
        let family = FamilyId(get(&row, "family_id")?);
        sqlx::query(
            "WITH family AS ( \
                 UPDATE refresh_token_families SET revoked_at = COALESCE(revoked_at, $2) \
                 WHERE id = $1) \
             UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE family_id = $1",
        )
        .bind(family.as_uuid())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| db("revoke refresh token family", e))?;
        Ok(Rotation::Reused { family })
    }

    async fn revoke_family(&self, family: FamilyId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_token_families SET revoked_at = COALESCE(revoked_at, now()) \
             WHERE id = $1",
        )
        .bind(family.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(|e| db("revoke refresh token family", e))?;
        Ok(())
    }

    /// An unknown family (never issued, or purged) was never revoked.
    async fn family_alive(&self, family: FamilyId) -> StoreResult<bool> {
        let revoked: Option<bool> = sqlx::query_scalar(
            "SELECT revoked_at IS NOT NULL FROM refresh_token_families WHERE id = $1",
        )
        .bind(family.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db("read refresh token family", e))?;
        Ok(revoked != Some(true))
    }
}
