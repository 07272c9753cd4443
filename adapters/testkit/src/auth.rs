//! Contracts of `UserStore`, `SessionStore` and `RateLimiter`.

use crate::fixtures::{count, race, unique, user};
use flash_core::domain::{LoginName, RateDecision, RefreshSession, Role, Rotation, User};
use flash_core::limits::{Door, RateKey};
use flash_core::ports::{RateHit, RateLimiter, SessionStore, UserStore};
use flash_core::{FamilyId, StoreError, Timestamp, TokenId, UserId};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn account(login: &LoginName, now: Timestamp) -> User {
    User {
        id: user(),
        login: login.clone(),
        password_hash: "$2b$10$abcdefghijklmnopqrstuuPGGtWJ0YQ3T0kM4m6DUK1J/2jXmPbk2".into(),
        role: Role::User,
        created_at: now,
    }
}

fn login() -> LoginName {
    LoginName::trusted(unique("user"))
}

pub async fn users_created_user_is_found_by_login_and_id(
    users: Arc<dyn UserStore>,
    now: Timestamp,
) {
    let u = account(&login(), now);
    users.create(u.clone()).await.unwrap();
    assert_eq!(users.by_login(&u.login).await.unwrap(), Some(u.clone()));
    assert_eq!(users.by_id(u.id).await.unwrap(), Some(u));
    assert_eq!(users.by_login(&login()).await.unwrap(), None);
    assert_eq!(users.by_id(user()).await.unwrap(), None);
}

/// `create` MUST fail with `Conflict` when the login name exists.
pub async fn users_duplicate_login_conflicts(users: Arc<dyn UserStore>, now: Timestamp) {
    let name = login();
    let first = account(&name, now);
    users.create(first.clone()).await.unwrap();
    let second = account(&name, now);
    let err = users.create(second.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "expected Conflict, got {err:?}"
    );
    assert_eq!(users.by_id(second.id).await.unwrap(), None);
    assert_eq!(users.by_login(&name).await.unwrap(), Some(first));
}

/// Two concurrent creations of one name: exactly one succeeds.
pub async fn users_concurrent_creations_of_one_name_one_wins(
    users: Arc<dyn UserStore>,
    now: Timestamp,
) {
    let name = login();
    let results = race(16, |_| {
        let (users, u) = (users.clone(), account(&name, now));
        async move { users.create(u).await }
    })
    .await;
    let won = count(&results, |r| r.is_ok());
    assert_eq!(won, 1, "{won} concurrent creations of one login succeeded");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))),
        "losers must get Conflict: {results:?}"
    );
}

fn session(family: FamilyId, now: Timestamp) -> RefreshSession {
    RefreshSession {
        jti: TokenId(Uuid::new_v4()),
        family,
        user: user(),
        expires_at: now.plus(Duration::from_secs(7 * 86_400)),
    }
}

fn family() -> FamilyId {
    FamilyId(Uuid::new_v4())
}

pub async fn sessions_first_rotation_rotates_the_token(
    sessions: Arc<dyn SessionStore>,
    now: Timestamp,
) {
    let s = session(family(), now);
    sessions.issue(s.clone()).await.unwrap();
    assert_eq!(
        sessions.rotate(s.jti, now).await.unwrap(),
        Rotation::Rotated(s.clone())
    );
    assert!(sessions.family_alive(s.family).await.unwrap());
}

/// A new family whose first token was spent on rotation and whose successor was issued:
/// (family, first, successor).
async fn rotated_once(
    sessions: &Arc<dyn SessionStore>,
    now: Timestamp,
) -> (FamilyId, RefreshSession, RefreshSession) {
    let fam = family();
    let first = session(fam, now);
    sessions.issue(first.clone()).await.unwrap();
    assert!(matches!(
        sessions.rotate(first.jti, now).await.unwrap(),
        Rotation::Rotated(_)
    ));
    let next = session(fam, now);
    sessions.issue(next.clone()).await.unwrap();
    (fam, first, next)
}

/// A token already spent MUST yield `Reused` and revoke every token of its family.
pub async fn sessions_reuse_revokes_family(sessions: Arc<dyn SessionStore>, now: Timestamp) {
    let (fam, first, next) = rotated_once(&sessions, now).await;
    assert_eq!(
        sessions.rotate(first.jti, now).await.unwrap(),
        Rotation::Reused { family: fam }
    );
    assert!(
        !sessions.family_alive(fam).await.unwrap(),
        "family still alive after reuse"
    );
    assert_eq!(
        sessions.rotate(next.jti, now).await.unwrap(),
        Rotation::Reused { family: fam },
        "the unspent sibling must die with its family"
    );
    let other = session(family(), now);
    sessions.issue(other.clone()).await.unwrap();
    assert!(sessions.family_alive(other.family).await.unwrap());
}

/// `rotate` MUST be atomic: of concurrent rotations of one token exactly one gets `Rotated`.
pub async fn sessions_concurrent_rotations_one_wins(
    sessions: Arc<dyn SessionStore>,
    now: Timestamp,
) {
    let s = session(family(), now);
    sessions.issue(s.clone()).await.unwrap();
    let results = race(16, |_| {
        let sessions = sessions.clone();
        async move { sessions.rotate(s.jti, now).await.unwrap() }
    })
    .await;
    let rotated = count(&results, |r| matches!(r, Rotation::Rotated(_)));
    assert_eq!(rotated, 1, "{rotated} concurrent rotations succeeded");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Rotation::Rotated(_) | Rotation::Reused { .. })),
        "{results:?}"
    );
}

/// An unknown or expired token is `Unknown`.
pub async fn sessions_unknown_or_expired_token_is_unknown(
    sessions: Arc<dyn SessionStore>,
    now: Timestamp,
) {
    assert_eq!(
        sessions.rotate(TokenId(Uuid::new_v4()), now).await.unwrap(),
        Rotation::Unknown
    );
    let mut s = session(family(), now);
    s.expires_at = now.plus(Duration::from_secs(60));
    sessions.issue(s.clone()).await.unwrap();
    assert_eq!(
        sessions
            .rotate(s.jti, now.plus(Duration::from_secs(60)))
            .await
            .unwrap(),
        Rotation::Unknown,
        "an expired token rotated"
    );
}

/// `revoke_family` (logout) kills every token of the family, the rotated ones' successors
/// included, and no other family; revoking twice or an unknown family is harmless.
pub async fn sessions_logout_revokes_the_family(sessions: Arc<dyn SessionStore>, now: Timestamp) {
    let (fam, _, next) = rotated_once(&sessions, now).await;
    let other = session(family(), now);
    sessions.issue(other.clone()).await.unwrap();

    sessions.revoke_family(fam).await.unwrap();
    sessions.revoke_family(fam).await.unwrap();
    sessions.revoke_family(family()).await.unwrap();

    assert!(!sessions.family_alive(fam).await.unwrap());
    assert_eq!(
        sessions.rotate(next.jti, now).await.unwrap(),
        Rotation::Reused { family: fam },
        "the newest token of a logged-out family still rotates"
    );
    assert!(sessions.family_alive(other.family).await.unwrap());
    assert!(matches!(
        sessions.rotate(other.jti, now).await.unwrap(),
        Rotation::Rotated(_)
    ));
}

/// A key no other test uses.
fn unique_key(door: Door) -> RateKey {
    RateKey::user(door, UserId(Uuid::new_v4()))
}

/// At most `limit` hits per window, and how long until the window ends when refusing.
pub async fn rate_limiter_refuses_over_limit(limiter: Arc<dyn RateLimiter>, now: Timestamp) {
    let key = unique_key(Door::Login);
    let window = Duration::from_secs(10);
    for i in 0..3 {
        assert_eq!(
            limiter.hit(&key, 3, window, now).await.unwrap(),
            RateDecision::Allowed,
            "hit {i} refused"
        );
    }
    match limiter.hit(&key, 3, window, now).await.unwrap() {
        RateDecision::Limited { retry_after_ms } => {
            assert!((1..=10_000).contains(&retry_after_ms), "{retry_after_ms}")
        }
        RateDecision::Allowed => panic!("fourth hit of a limit of 3 allowed"),
    }
    match limiter
        .hit(&key, 3, window, now.plus(Duration::from_secs(4)))
        .await
        .unwrap()
    {
        RateDecision::Limited { retry_after_ms } => assert!(
            (1..=6_000).contains(&retry_after_ms),
            "retry after {retry_after_ms}ms with 6s of the window left"
        ),
        RateDecision::Allowed => panic!("hit within the window allowed"),
    }
}

/// Counters MUST expire on their own: the next window starts afresh.
pub async fn rate_limiter_window_ends_on_its_own(limiter: Arc<dyn RateLimiter>, now: Timestamp) {
    let key = unique_key(Door::Enqueue);
    let window = Duration::from_secs(1);
    for _ in 0..2 {
        limiter.hit(&key, 2, window, now).await.unwrap();
    }
    assert!(matches!(
        limiter.hit(&key, 2, window, now).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        limiter
            .hit(&key, 2, window, now.plus(window))
            .await
            .unwrap(),
        RateDecision::Allowed,
        "the window did not end"
    );
}

pub async fn rate_limiter_keys_are_counted_apart(limiter: Arc<dyn RateLimiter>, now: Timestamp) {
    let (a, b) = (unique_key(Door::Order), unique_key(Door::Order));
    let window = Duration::from_secs(10);
    limiter.hit(&a, 1, window, now).await.unwrap();
    assert!(matches!(
        limiter.hit(&a, 1, window, now).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        limiter.hit(&b, 1, window, now).await.unwrap(),
        RateDecision::Allowed
    );
}

/// `hit_all` counts its keys in order and stops at the first refusal: the keys after it are not
/// counted, and the refusal says when its own window ends.
pub async fn rate_limiter_hit_all_stops_at_the_first_refusal(
    limiter: Arc<dyn RateLimiter>,
    now: Timestamp,
) {
    let (a, b, c) = (
        unique_key(Door::Enqueue),
        unique_key(Door::Enqueue),
        unique_key(Door::Enqueue),
    );
    let (short, long) = (Duration::from_secs(5), Duration::from_secs(60));
    let hit = |key, limit, window| RateHit { key, limit, window };
    assert_eq!(
        limiter
            .hit_all(&[hit(&a, 1, short), hit(&b, 2, long)], now)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    // b refuses on its third hit, with its own (long) window.
    limiter.hit(&b, 2, long, now).await.unwrap();
    match limiter
        .hit_all(&[hit(&c, 5, short), hit(&b, 2, long)], now)
        .await
        .unwrap()
    {
        RateDecision::Limited { retry_after_ms } => assert!(
            (5_001..=60_000).contains(&retry_after_ms),
            "retry after {retry_after_ms} ms: not b's 60 s window"
        ),
        RateDecision::Allowed => panic!("b's third hit of 2 allowed"),
    }
    // a refuses first: c, after it, is not counted.
    assert!(matches!(
        limiter
            .hit_all(&[hit(&a, 1, short), hit(&c, 2, short)], now)
            .await
            .unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        limiter.hit(&c, 2, short, now).await.unwrap(),
        RateDecision::Allowed,
        "c was counted after a refused"
    );
    assert!(matches!(
        limiter.hit(&c, 2, short, now).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        limiter.hit_all(&[], now).await.unwrap(),
        RateDecision::Allowed
    );
}

/// At most `limit` hits per window, also when they race.
pub async fn rate_limiter_concurrent_hits_never_exceed_limit(
    limiter: Arc<dyn RateLimiter>,
    now: Timestamp,
) {
    let key = unique_key(Door::Payment);
    let results = race(64, |_| {
        let (limiter, key) = (limiter.clone(), key.clone());
        async move {
            limiter
                .hit(&key, 10, Duration::from_secs(30), now)
                .await
                .unwrap()
        }
    })
    .await;
    let allowed = results
        .iter()
        .filter(|d| **d == RateDecision::Allowed)
        .count();
    assert_eq!(
        allowed, 10,
        "{allowed} of 64 racing hits allowed with a limit of 10"
    );
}
