//! Every `flash-testkit` contract of the ports this crate implements, against the real Redis on
//! 127.0.0.1:6379 (`REDIS_URL` overrides it), plus what the contracts cannot see: a TTL on every
//! key, capacity under many promoters over a long line, and outages mapped to `Unavailable`.
//!
//! Each test works under its own key prefix, so tests never see each other's keys.

#[macro_use]
mod common;

use common::{
    assert_unavailable, closed_port, enqueue, every_port_is_unavailable_within_the_timeout,
    inspector, keys_under, local_url, prefixed, ticket_id, user,
};
use flash_adapter_redis::*;
use flash_core::domain::{QueueScope, RefreshSession, TicketState, Verdict};
use flash_core::limits::{Door, RateKey};
use flash_core::ports::{PaymentLedger, QueueStore, RateLimiter, SessionStore};
use flash_core::{EventId, FamilyId, PaymentId, TicketId, TokenId};
use flash_testkit::T0;
use flash_testkit::fixtures::status_of;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A configuration with a prefix no other test uses.
fn config() -> (RedisConfig, String) {
    prefixed(&local_url(), false)
}

fn redis() -> Redis {
    Redis::open(&config().0).unwrap_or_else(|e| panic!("redis: {e}"))
}

redis_contracts!(redis());

/// Fails if any key under `prefix` has no TTL; returns how many keys there are.
async fn assert_all_expire(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    after: &str,
) -> usize {
    let keys = keys_under(conn, prefix).await;
    let mut without = Vec::new();
    for key in &keys {
        let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap();
        // -2: gone between SCAN and PTTL (fine); -1: no TTL (a leak).
        if pttl == -1 {
            without.push(key.clone());
        }
    }
    assert!(
        without.is_empty(),
        "after {after}: keys without a TTL: {without:?}"
    );
    keys.len()
}

/// Checked after every single operation, so that a later one cannot hide a leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_written_has_a_ttl() {
    let (config, prefix) = config();
    let redis = Redis::open(&config).unwrap();
    let mut conn = inspector().await;
    let q = RedisQueueStore::new(redis.clone());
    let ttl = Duration::from_secs(60);
    let now = T0;
    let later = now.plus(ttl);
    macro_rules! step {
        ($what:literal, $op:expr) => {{
            let out = $op.await.unwrap();
            assert_all_expire(&mut conn, &prefix, $what).await;
            out
        }};
    }
    for scope in [
        QueueScope::Global,
        QueueScope::Event(EventId(Uuid::new_v4())),
    ] {
        let mut tickets = Vec::new();
        for _ in 0..6 {
            tickets.push(step!("enqueue", q.enqueue(ticket_id(), user(), scope, now)).ticket);
        }
        step!("stats", q.stats(scope, now));
        step!(
            "a repeated enqueue",
            q.enqueue(ticket_id(), tickets[0].user, scope, now)
        );
        let admitted = step!("promote", q.promote(scope, 3, now, ttl));
        assert_eq!(admitted.len(), 3);
        step!("enter", q.enter(admitted[0].id, admitted[0].user, now, ttl));
        step!("consume", q.consume(admitted[1].id, now));
        step!("leave", q.leave(tickets[4].id, tickets[4].user, now));
        step!("position", q.position(&tickets[5]));
        step!("status", q.status(tickets[5].id, now));
        step!("admission", q.admission(admitted[0].user, scope, now));
        step!("stats", q.stats(scope, now));
        step!("a lapsed read", q.ticket(admitted[2].id, later));
        step!("a lapsed status", q.status(admitted[0].id, later));
        step!("promote", q.promote(scope, 10, later, ttl));
        for t in &tickets {
            step!("leave", q.leave(t.id, t.user, later));
        }
        step!("read a finished ticket", q.ticket(tickets[4].id, later));
        step!(
            "status of a finished ticket",
            q.status(tickets[3].id, later)
        );
        step!("stats of an idle scope", q.stats(scope, later));
        step!("promote an idle scope", q.promote(scope, 10, later, ttl));
        step!("active scopes", q.active_scopes());
    }
    let limiter = RedisRateLimiter::new(redis.clone());
    for _ in 0..3 {
        step!(
            "rate limit",
            limiter.hit(
                &RateKey::addr(Door::Login, Some("127.0.0.1")),
                2,
                Duration::from_secs(10),
                now
            )
        );
    }
    let sessions = RedisSessionStore::new(redis.clone());
    let family = FamilyId(Uuid::new_v4());
    for _ in 0..2 {
        let s = RefreshSession {
            jti: TokenId(Uuid::new_v4()),
            family,
            user: user(),
            expires_at: now.plus(Duration::from_secs(7 * 86_400)),
        };
        step!("issue", sessions.issue(s.clone()));
        step!("rotate", sessions.rotate(s.jti, now));
        step!("reuse", sessions.rotate(s.jti, now));
        step!("revoke", sessions.revoke_family(s.family));
    }
    let ledger = RedisPaymentLedger::new(redis.clone());
    let p = PaymentId(Uuid::new_v4());
    step!("decide", ledger.decide(p, Verdict::Ok));
    step!("mark published", ledger.mark_published(p));
    let keys = assert_all_expire(&mut conn, &prefix, "the workload").await;
    assert!(
        keys >= 20,
        "expected the workload to write keys, found {keys}"
    );
}

/// Two queue stores on one prefix (two instances of a pod), the prefix and a fresh line.
fn two_instances() -> (RedisQueueStore, RedisQueueStore, String, QueueScope) {
    let (config, prefix) = config();
    let here = RedisQueueStore::new(Redis::open(&config).unwrap());
    let there = RedisQueueStore::new(Redis::open(&config).unwrap());
    (
        here,
        there,
        prefix,
        QueueScope::Event(EventId(Uuid::new_v4())),
    )
}

/// Runs one command of the test's own on the inspection connection (a crash's leftovers).
async fn meddle(conn: &mut redis::aio::MultiplexedConnection, cmd: &redis::Cmd) {
    let _: () = cmd.query_async(conn).await.unwrap();
}

/// A status read on an instance that never saw the ticket finds its scope through the index;
/// a ticket whose data is gone reads as unknown on every instance and its index entry goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_is_answered_by_any_instance_and_forgets_vanished_tickets() {
    let (here, there, prefix, scope) = two_instances();
    let first = enqueue(&here, scope).await;
    let second = enqueue(&here, scope).await;
    for q in [&here, &there] {
        let v = status_of(q, second.id, T0, "known everywhere").await;
        assert_eq!(
            (v.ticket.id, v.position, v.stats.queued),
            (second.id, Some(2), 2)
        );
    }
    let mut conn = inspector().await;
    let hash = format!("{prefix}q:{{{scope}}}:t:{}", first.id);
    let index = format!("{prefix}q:ticket:{}", first.id);
    meddle(&mut conn, redis::cmd("DEL").arg(&hash)).await;
    for q in [&here, &there] {
        assert_eq!(q.status(first.id, T0).await.unwrap(), None);
    }
    let left: i64 = redis::cmd("EXISTS")
        .arg(&index)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the index entry of a vanished ticket stayed");
}

/// What an enqueue writes besides its script (the index entry, the active set) goes out in the
/// same round trip; what a crash left out is written again by the next enqueue, and an id the
/// enqueue did not use (the user was in line already) leaves no index entry behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enqueue_heals_the_global_keys_and_indexes_only_the_ticket_it_returns() {
    let (here, there, prefix, scope) = two_instances();
    let buyer = user();
    let first = here.enqueue(ticket_id(), buyer, scope, T0).await.unwrap();
    assert!(first.created);
    let mut conn = inspector().await;
    let index = |id: TicketId| format!("{prefix}q:ticket:{id}");
    let active = format!("{prefix}q:active");
    let scope_of = async |conn: &mut redis::aio::MultiplexedConnection, id| -> Option<String> {
        redis::cmd("GET")
            .arg(index(id))
            .query_async(conn)
            .await
            .unwrap()
    };
    assert_eq!(
        scope_of(&mut conn, first.ticket.id).await,
        Some(scope.to_string())
    );
    assert!(here.active_scopes().await.unwrap().contains(&scope));

    // A crash after the script: neither global key was written.
    meddle(&mut conn, redis::cmd("DEL").arg(index(first.ticket.id))).await;
    meddle(
        &mut conn,
        redis::cmd("SREM").arg(&active).arg(scope.to_string()),
    )
    .await;
    let unused = ticket_id();
    let again = here.enqueue(unused, buyer, scope, T0).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.ticket.id, first.ticket.id);
    assert_eq!(
        scope_of(&mut conn, first.ticket.id).await,
        Some(scope.to_string()),
        "the returned ticket's index entry was not written again"
    );
    assert_eq!(
        scope_of(&mut conn, unused).await,
        None,
        "the unused id kept an index entry"
    );
    assert!(
        here.active_scopes().await.unwrap().contains(&scope),
        "the busy line was not listed again"
    );
    // An instance that never saw the ticket finds it through the index.
    let v = status_of(&there, first.ticket.id, T0, "through the healed index").await;
    assert_eq!(v.position, Some(1));

    // Another buyer's enqueue of a busy line that lost its active-set entry lists it again.
    meddle(
        &mut conn,
        redis::cmd("SREM").arg(&active).arg(scope.to_string()),
    )
    .await;
    let second = here.enqueue(ticket_id(), user(), scope, T0).await.unwrap();
    assert!(second.created);
    assert!(here.active_scopes().await.unwrap().contains(&scope));
    assert_eq!(
        scope_of(&mut conn, second.ticket.id).await,
        Some(scope.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_tickets_are_kept_for_the_retention_only() {
    let (config, prefix) = config();
    let redis = Redis::open(&config).unwrap();
    let tuning = QueueTuning::default();
    let q = RedisQueueStore::with_tuning(redis, tuning);
    let scope = QueueScope::Event(EventId(Uuid::new_v4()));
    let t = enqueue(&q, scope).await;
    let left = q.leave(t.id, t.user, T0).await.unwrap().unwrap();
    assert_eq!(left.state, TicketState::Expired);
    let mut conn = inspector().await;
    for key in [
        format!("{prefix}q:{{{scope}}}:t:{}", t.id),
        format!("{prefix}q:ticket:{}", t.id),
    ] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let retention = i64::try_from(tuning.retention.as_millis()).unwrap();
        assert!(
            pttl > 0 && pttl <= retention,
            "{key}: TTL {pttl}ms is not within the retention of a finished ticket"
        );
    }
    assert!(
        !q.active_scopes().await.unwrap().contains(&scope),
        "the emptied scope is still active"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_racing_promoters_over_500_tickets_never_exceed_capacity() {
    let q = Arc::new(RedisQueueStore::new(redis()));
    let scope = QueueScope::Event(EventId(Uuid::new_v4()));
    let capacity = 37;
    let ttl = Duration::from_secs(600);
    let now = T0;
    let enqueues: Vec<_> = (0..500)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.enqueue(ticket_id(), user(), scope, now).await })
        })
        .collect();
    let mut seqs = HashSet::new();
    for e in enqueues {
        let e = e.await.unwrap().unwrap();
        assert!(e.created);
        assert!(
            seqs.insert(e.ticket.seq),
            "sequence {} given twice",
            e.ticket.seq
        );
    }
    assert_eq!(q.stats(scope, now).await.unwrap().queued, 500);

    // Rounds of 8 racing promoters; between rounds some admissions are used up, freeing slots.
    let mut ever_admitted = HashSet::new();
    let mut holding = Vec::new();
    let mut queued_left = 500u64;
    for round in 0..50u64 {
        let at = now.plus(Duration::from_millis(round));
        let batches: Vec<_> = (0..8)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.promote(scope, capacity, at, ttl).await })
            })
            .collect();
        let mut this_round = Vec::new();
        for b in batches {
            this_round.extend(b.await.unwrap().unwrap());
        }
        let free = capacity - holding.len() as u64;
        assert_eq!(
            this_round.len() as u64,
            free.min(queued_left),
            "round {round}: racing promoters filled {} of {free} free slots",
            this_round.len()
        );
        for t in &this_round {
            assert!(ever_admitted.insert(t.id), "ticket {} admitted twice", t.id);
        }
        queued_left -= this_round.len() as u64;
        holding.extend(this_round);
        let stats = q.stats(scope, at).await.unwrap();
        assert_eq!(
            (stats.admitted, stats.queued),
            (holding.len() as u64, queued_left),
            "round {round}"
        );
        assert!(stats.admitted <= capacity);
        for t in holding.drain(..holding.len().min(11)) {
            assert!(q.consume(t.id, at).await.unwrap());
        }
    }
    assert_eq!(queued_left, 0, "the line was not drained");
    assert_eq!(ever_admitted.len(), 500);
}

/// The active set lives outside the scope's slot and is settled after the scripts: a scope that
/// goes idle while someone enqueues must still end up listed, and leave the set once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_active_set_follows_racing_enqueues_and_departures() {
    let q = Arc::new(RedisQueueStore::new(redis()));
    let ttl = Duration::from_secs(60);
    for _ in 0..40 {
        let scope = QueueScope::Event(EventId(Uuid::new_v4()));
        let first = enqueue(&q, scope).await;
        q.promote(scope, 1, T0, ttl).await.unwrap();
        let consume = {
            let q = q.clone();
            tokio::spawn(async move { q.consume(first.id, T0).await })
        };
        let enqueue = {
            let q = q.clone();
            tokio::spawn(async move { q.enqueue(ticket_id(), user(), scope, T0).await })
        };
        assert!(consume.await.unwrap().unwrap());
        let second = enqueue.await.unwrap().unwrap().ticket;
        assert!(
            q.active_scopes().await.unwrap().contains(&scope),
            "a scope with a QUEUED ticket is missing from the active set"
        );
        q.leave(second.id, second.user, T0).await.unwrap();
        assert!(
            !q.active_scopes().await.unwrap().contains(&scope),
            "an idle scope stayed in the active set"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_unavailable_within_the_timeout() {
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{}", closed_port()))
        .unwrap()
        .with_command_timeout(Duration::from_millis(500));
    every_port_is_unavailable_within_the_timeout(&config, 1).await;
}

/// A server that accepts connections and never answers: the timeout, not the OS, ends the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_is_unavailable_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .with_command_timeout(Duration::from_millis(300));
    let q = RedisQueueStore::new(Redis::open(&config).unwrap());
    let started = Instant::now();
    let err = q.active_scopes().await.unwrap_err();
    assert_unavailable(&err);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    hold.abort();
}
