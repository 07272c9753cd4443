mod common;

use common::*;
use flash_core::domain::LoginName;
use flash_core::{Classify, ErrorKind};
use flash_handlers::auth::{
    AccessError, LoginError, LoginRequest, RefreshError, RegisterError, RegisterRequest, TokenPair,
};

fn reg(login: &str, admin: Option<&str>) -> RegisterRequest {
    RegisterRequest {
        login: LoginName::parse(login).unwrap(),
        password: "testtest".into(),
        admin_secret: admin.map(str::to_owned),
    }
}

/// Registers `user` (password `testtest`) and logs them in.
async fn signed_up(w: &World, user: &str) -> TokenPair {
    w.h.register.handle(&cx(), reg(user, None)).await.unwrap();
    w.h.login
        .handle(&cx(), login(user, "testtest"))
        .await
        .unwrap()
}

fn login(login: &str, password: &str) -> LoginRequest {
    LoginRequest {
        login: login.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn a_registered_user_logs_in_and_gets_a_token_pair_for_their_account() {
    let w = world();
    let pair = signed_up(&w, "test0001").await;
    let p =
        w.h.tokens
            .verify_access(&pair.access_token, w.now())
            .unwrap();
    assert_eq!(p.login.as_str(), "test0001");
    assert!(!p.is_admin());
}

#[tokio::test]
async fn registering_a_taken_name_is_a_conflict() {
    let w = world();
    w.h.register
        .handle(&cx(), reg("test0001", None))
        .await
        .unwrap();
    let e =
        w.h.register
            .handle(&cx(), reg("test0001", None))
            .await
            .unwrap_err();
    assert!(matches!(e, RegisterError::Taken));
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.public_message(), "User ID already registered");
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_one_account() {
    let w = world();
    let c = cx();
    let (a, b) = tokio::join!(
        w.h.register.handle(&c, reg("race01", None)),
        w.h.register.handle(&c, reg("race01", None))
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1);
}

#[tokio::test]
async fn admin_registration_needs_the_admin_secret() {
    let w = world();
    let e =
        w.h.register
            .handle(&cx(), reg("boss01", Some("guess")))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(e.public_message(), "Invalid admin secret");
    w.h.register
        .handle(&cx(), reg("boss01", Some("admin-secret")))
        .await
        .unwrap();
    let pair =
        w.h.login
            .handle(&cx(), login("boss01", "testtest"))
            .await
            .unwrap();
    assert!(
        w.h.tokens
            .verify_access(&pair.access_token, w.now())
            .unwrap()
            .is_admin()
    );
}

#[tokio::test]
async fn admin_registration_is_refused_when_no_secret_is_configured() {
    let mut s = settings();
    s.auth.admin_secret = None;
    let w = world_with(s);
    let e =
        w.h.register
            .handle(&cx(), reg("boss01", Some("x")))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_the_same_invalid_credentials() {
    let w = world();
    w.h.register
        .handle(&cx(), reg("test0001", None))
        .await
        .unwrap();
    for req in [
        login("test0001", "wrongpass"),
        login("nobody00", "testtest"),
        login("x", "y"),
    ] {
        let e = w.h.login.handle(&cx(), req).await.unwrap_err();
        assert!(matches!(e, LoginError::InvalidCredentials));
        assert_eq!(e.public_message(), "Invalid credentials");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
    }
}

#[tokio::test]
async fn logins_are_rate_limited_per_user_with_a_retry_after() {
    let mut s = settings();
    s.auth.login_per_user.limit = 3;
    let w = world_with(s);
    for name in ["test0001", "test0002"] {
        w.h.register.handle(&cx(), reg(name, None)).await.unwrap();
    }
    for _ in 0..3 {
        let _ = w.h.login.handle(&cx(), login("test0001", "x")).await;
    }
    let e =
        w.h.login
            .handle(&cx(), login("test0001", "testtest"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.retry_after_ms().unwrap() > 0);
    // Another user is not affected.
    let e =
        w.h.login
            .handle(&cx(), login("test0002", "x"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn logins_are_rate_limited_per_client_address() {
    let mut s = settings();
    s.auth.login_per_addr.limit = 2;
    let w = world_with(s);
    let mut c = cx();
    c.client_addr = Some("10.0.0.9".into());
    let _ = w.h.login.handle(&c, login("a0000001", "x")).await;
    let _ = w.h.login.handle(&c, login("a0000002", "x")).await;
    let e =
        w.h.login
            .handle(&c, login("a0000003", "x"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let w = world();
    let first = signed_up(&w, "test0001").await;
    let second =
        w.h.refresh
            .handle(&cx(), &first.refresh_token)
            .await
            .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    // The spent token is presented again: someone copied it.
    let e =
        w.h.refresh
            .handle(&cx(), &first.refresh_token)
            .await
            .unwrap_err();
    assert!(matches!(e, RefreshError::Invalid));
    assert_eq!(e.public_message(), "Invalid refresh token");
    // ...and the legitimate latest token of that family is dead too.
    assert!(
        w.h.refresh
            .handle(&cx(), &second.refresh_token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_access_token_is_never_a_refresh_token() {
    let w = world();
    let pair = signed_up(&w, "test0001").await;
    let e =
        w.h.refresh
            .handle(&cx(), &pair.access_token)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        w.h.tokens
            .verify_access(&pair.refresh_token, w.now())
            .is_err()
    );
}

#[tokio::test]
async fn logout_with_any_token_of_the_session_ends_the_whole_session() {
    let w = world();
    let first = signed_up(&w, "test0001").await;
    let latest =
        w.h.refresh
            .handle(&cx(), &first.refresh_token)
            .await
            .unwrap();
    let elsewhere =
        w.h.login
            .handle(&cx(), login("test0001", "testtest"))
            .await
            .unwrap();
    assert!(w.h.access.verify(&latest.access_token).await.is_ok());

    // The first, already rotated refresh token logs the session out (SPEC §11).
    w.h.logout
        .handle(&cx(), &first.refresh_token)
        .await
        .unwrap();
    assert!(
        w.h.refresh
            .handle(&cx(), &latest.refresh_token)
            .await
            .is_err(),
        "the newest refresh token of a logged-out session still rotates"
    );
    for token in [&first.access_token, &latest.access_token] {
        assert!(matches!(
            w.h.access.verify(token).await,
            Err(AccessError::Revoked)
        ));
    }
    // Another session of the same user is untouched.
    assert!(w.h.access.verify(&elsewhere.access_token).await.is_ok());
    assert!(w.h.logout.handle(&cx(), "not-a-jwt").await.is_err());
}

#[tokio::test]
async fn access_tokens_of_a_family_revoked_by_reuse_are_refused_at_once() {
    let w = world();
    let first = signed_up(&w, "test0001").await;
    let second =
        w.h.refresh
            .handle(&cx(), &first.refresh_token)
            .await
            .unwrap();
    assert!(w.h.access.verify(&second.access_token).await.is_ok());
    assert!(
        w.h.refresh
            .handle(&cx(), &first.refresh_token)
            .await
            .is_err()
    );
    assert!(matches!(
        w.h.access.verify(&second.access_token).await,
        Err(AccessError::Revoked)
    ));
}

#[tokio::test]
async fn a_logout_on_one_instance_reaches_another_within_the_session_check() {
    let w = world();
    // A second instance over the same stores, with the default check period.
    let other = flash_handlers::Handlers::new(&w.ports, settings());
    assert_eq!(
        settings().auth.session_check,
        std::time::Duration::from_secs(1)
    );
    let pair = signed_up(&w, "test0001").await;
    let grant = other.access.verify(&pair.access_token).await.unwrap();
    w.h.logout.handle(&cx(), &pair.refresh_token).await.unwrap();

    // This instance refuses at once; the other trusts its answer for at most the check period.
    assert!(w.h.access.verify(&pair.access_token).await.is_err());
    assert!(other.access.verify(&pair.access_token).await.is_ok());
    w.advance(1_000);
    assert!(matches!(
        other.access.verify(&pair.access_token).await,
        Err(AccessError::Revoked)
    ));
    assert!(!other.access.still_valid(&grant).await.unwrap());
}

#[tokio::test]
async fn a_grant_lapses_when_its_access_token_expires() {
    let w = world();
    let pair = signed_up(&w, "test0001").await;
    let grant = w.h.access.verify(&pair.access_token).await.unwrap();
    assert!(w.h.access.still_valid(&grant).await.unwrap());
    w.advance(15 * 60 * 1000);
    assert!(!w.h.access.still_valid(&grant).await.unwrap());
    assert!(matches!(
        w.h.access.verify(&pair.access_token).await,
        Err(AccessError::Invalid(_))
    ));
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let w = world();
    let pair = signed_up(&w, "test0001").await;
    w.advance(8 * 24 * 3600 * 1000);
    assert!(
        w.h.refresh
            .handle(&cx(), &pair.refresh_token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_user_store_outage_is_reported_as_unavailable() {
    let w = world();
    w.faults.set(true);
    let e =
        w.h.login
            .handle(&cx(), login("test0001", "testtest"))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
