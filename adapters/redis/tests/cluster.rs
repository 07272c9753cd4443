//! Every `flash-testkit` contract of this crate's ports again, on a Redis Cluster: the local
//! 3-master, 3-replica cluster that `integration/redis-cluster.sh` starts and `.ci/test` runs
//! (`REDIS_CLUSTER_URL` names its configuration endpoint; default `redis://127.0.0.1:7000`).
//! No cluster answering is a failure, never a skip: start one with
//! `bash integration/redis-cluster.sh`.
//!
//! Beyond the contracts: lines of events whose slots sit on each of the three masters all work,
//! every key written on every node has a TTL, no operation is refused for crossing slots, READY
//! notices published on one node reach a subscriber on another (a replica), and a subscription
//! whose node is gone resubscribes on another node of the cluster.

#[macro_use]
mod common;

use common::{
    Proxy, assert_unavailable, closed_port, endpoint, every_port_is_unavailable_within_the_timeout,
    keys_under, keyslot, prefixed, shards, ticket_id, url, user,
};
use flash_adapter_redis::*;
use flash_core::domain::{Notice, QueueNotice, QueueScope, RefreshSession, TicketState, Verdict};
use flash_core::limits::{Door, RateKey};
use flash_core::ports::{PaymentLedger, QueueNotifier, QueueStore, RateLimiter, SessionStore};
use flash_core::{EventId, FamilyId, PaymentId, TicketId, TokenId};
use flash_testkit::T0;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn cluster_config(url: &str) -> (RedisConfig, String) {
    prefixed(url, true)
}

fn config() -> (RedisConfig, String) {
    cluster_config(&url())
}

fn redis() -> Redis {
    let redis = Redis::open(&config().0).unwrap_or_else(|e| panic!("redis cluster: {e}"));
    assert!(redis.is_cluster());
    redis
}

redis_contracts!(redis());

/// A plain connection to one node, for inspecting it.
async fn node(addr: &str) -> MultiplexedConnection {
    common::node(addr).await.unwrap_or_else(|e| {
        panic!("no Redis Cluster node at {addr} ({e}): run bash integration/redis-cluster.sh")
    })
}

/// The cluster's shards as its endpoint sees them.
async fn layout() -> Vec<common::Shard> {
    shards(&endpoint()).await.unwrap_or_else(|e| {
        panic!(
            "no Redis Cluster at {} ({e}): run bash integration/redis-cluster.sh",
            endpoint()
        )
    })
}

fn master_of(layout: &[common::Shard], slot: u16) -> String {
    layout
        .iter()
        .find(|s| s.serves(slot))
        .map(|s| s.master.clone())
        .unwrap_or_else(|| panic!("slot {slot} is not served"))
}

#[tokio::test]
async fn the_endpoint_is_a_healthy_cluster_of_three_masters_with_a_replica_each() {
    let mut conn = node(&endpoint()).await;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    let layout = layout().await;
    assert_eq!(layout.len(), 3, "{layout:?}");
    assert!(layout.iter().all(|s| s.replicas.len() == 1), "{layout:?}");
}

/// Every key under `prefix` on `addr`, with its TTL.
async fn keys_on(addr: &str, prefix: &str) -> BTreeMap<String, i64> {
    let mut conn = node(addr).await;
    let mut keys = BTreeMap::new();
    for key in keys_under(&mut conn, prefix).await {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.insert(key, pttl);
    }
    keys
}

/// One event line per master (events drawn until each master owns one's hash tag), a whole
/// journey on each line, then every node inspected: each line's keys sit on its master only, and
/// every key written anywhere has a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lines_on_every_master_work_and_every_key_on_every_node_expires() {
    let (config, prefix) = config();
    let redis = Redis::open(&config).unwrap();
    let layout = layout().await;
    let mut conn = node(&endpoint()).await;
    let mut lines: BTreeMap<String, QueueScope> = BTreeMap::new();
    let masters: BTreeSet<_> = layout.iter().map(|s| s.master.clone()).collect();
    while lines.len() < masters.len() {
        let scope = QueueScope::Event(EventId(Uuid::new_v4()));
        let slot = keyslot(&mut conn, &format!("{prefix}q:{{{scope}}}:meta")).await;
        lines.entry(master_of(&layout, slot)).or_insert(scope);
    }
    let q = RedisQueueStore::new(redis.clone());
    let ttl = Duration::from_secs(60);
    for scope in lines.values().copied() {
        let mut tickets = Vec::new();
        for _ in 0..5 {
            tickets.push(
                q.enqueue(ticket_id(), user(), scope, T0)
                    .await
                    .unwrap()
                    .ticket,
            );
        }
        assert!(q.active_scopes().await.unwrap().contains(&scope));
        let admitted = q.promote(scope, 2, T0, ttl).await.unwrap();
        assert_eq!(admitted.len(), 2);
        let used = q
            .enter(admitted[0].id, admitted[0].user, T0, ttl)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used.state, TicketState::Used);
        assert!(q.consume(admitted[1].id, T0).await.unwrap());
        let view = q.status(tickets[4].id, T0).await.unwrap().unwrap();
        assert_eq!((view.position, view.stats.queued), (Some(3), 3));
        assert_eq!(q.position(&tickets[3]).await.unwrap(), Some(2));
        assert!(
            q.admission(admitted[0].user, scope, T0)
                .await
                .unwrap()
                .is_some()
        );
        q.leave(tickets[2].id, tickets[2].user, T0).await.unwrap();
        // Draining the line: the scope goes idle and leaves the active set (settled across
        // slots without a cross-slot command).
        for t in &tickets[3..] {
            q.leave(t.id, t.user, T0).await.unwrap();
        }
        q.leave(used.id, used.user, T0).await.unwrap();
        assert!(!q.active_scopes().await.unwrap().contains(&scope));
    }
    let limiter = RedisRateLimiter::new(redis.clone());
    for _ in 0..3 {
        limiter
            .hit(
                &RateKey::addr(Door::Login, Some("127.0.0.1")),
                2,
                Duration::from_secs(10),
                T0,
            )
            .await
            .unwrap();
    }
    let sessions = RedisSessionStore::new(redis.clone());
    let s = RefreshSession {
        jti: TokenId(Uuid::new_v4()),
        family: FamilyId(Uuid::new_v4()),
        user: user(),
        expires_at: T0.plus(Duration::from_secs(7 * 86_400)),
    };
    sessions.issue(s.clone()).await.unwrap();
    sessions.rotate(s.jti, T0).await.unwrap();
    sessions.revoke_family(s.family).await.unwrap();
    RedisPaymentLedger::new(redis.clone())
        .decide(PaymentId(Uuid::new_v4()), Verdict::Ok)
        .await
        .unwrap();

    let mut total = 0;
    for master in &masters {
        let keys = keys_on(master, &prefix).await;
        let without: Vec<_> = keys.iter().filter(|(_, ttl)| **ttl == -1).collect();
        assert!(
            without.is_empty(),
            "{master}: keys without a TTL: {without:?}"
        );
        for (owner, scope) in &lines {
            let tag = format!("{{{scope}}}");
            let here = keys.keys().filter(|k| k.contains(&tag)).count();
            if owner == master {
                assert!(here >= 3, "{master}: only {here} keys of its line {scope}");
            } else {
                assert_eq!(here, 0, "{master} holds keys of {scope}, owned by {owner}");
            }
        }
        total += keys.len();
    }
    assert!(
        total >= 15,
        "expected the workload to write keys, found {total}"
    );
}

fn ready(scope: QueueScope) -> QueueNotice {
    QueueNotice {
        ticket_id: ticket_id(),
        user_id: user(),
        scope: scope.to_string(),
        state: TicketState::Ready,
        expires_at: None,
    }
}

/// The notice with `ticket`'s id, skipping others (other tests share the channel only under
/// their own prefixes, but a subscription may still see anything published on it).
async fn next_notice(
    sub: &mut Box<dyn flash_core::ports::QueueSubscription>,
    ticket: TicketId,
) -> QueueNotice {
    loop {
        match sub.next().await {
            Some(Notice::Ticket(n)) if n.ticket_id == ticket => return n,
            Some(_) => continue,
            None => panic!("the subscription ended"),
        }
    }
}

async fn within<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}

/// A subscriber whose endpoint is a replica hears notices announced through the cluster and
/// published on every master by hand: `PUBLISH` on a cluster reaches every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notices_published_on_any_node_reach_a_subscriber_on_a_replica() {
    let layout = layout().await;
    let replica = layout[0].replicas[0].clone();
    let (on_replica, prefix) = cluster_config(&format!("redis://{replica}"));
    let listener = RedisQueueNotifier::new(Redis::open(&on_replica).unwrap());
    let mut sub = listener.subscribe().await.unwrap();
    let (through_cluster, _) = cluster_config(&url());
    let announcer = RedisQueueNotifier::new(
        Redis::open(&through_cluster.with_prefix(prefix.clone()).unwrap()).unwrap(),
    );
    assert_eq!(announcer.channel(), listener.channel());

    let sent = ready(QueueScope::Global);
    announcer
        .announce(Notice::Ticket(sent.clone()))
        .await
        .unwrap();
    let got = within(
        "an announced notice",
        Duration::from_secs(10),
        next_notice(&mut sub, sent.ticket_id),
    )
    .await;
    assert_eq!(got, sent);

    for master in layout.iter().map(|s| s.master.clone()) {
        let sent = ready(QueueScope::Event(EventId(Uuid::new_v4())));
        let mut conn = node(&master).await;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(listener.channel())
            .arg(serde_json::to_string(&Notice::Ticket(sent.clone())).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
        let got = within(
            &format!("a notice published on {master}"),
            Duration::from_secs(10),
            next_notice(&mut sub, sent.ticket_id),
        )
        .await;
        assert_eq!(got, sent);
    }
}

/// The subscription's node vanishes (the proxy standing for it is cut, as a killed master's
/// connections are): `next()` resubscribes on another node from the slot map and hears notices
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_whose_node_is_gone_resubscribes_on_another_node() {
    let mut proxy = Proxy::to(endpoint());
    let (via_proxy, prefix) = cluster_config(&format!("redis://{}", proxy.addr));
    let via_proxy = via_proxy.with_command_timeout(Duration::from_millis(500));
    let notifier = RedisQueueNotifier::new(Redis::open(&via_proxy).unwrap());
    // The shared connection learns the real node addresses from the slot map.
    notifier
        .announce(Notice::Ticket(ready(QueueScope::Global)))
        .await
        .unwrap();
    let mut sub = notifier.subscribe().await.unwrap();
    let (direct, _) = cluster_config(&url());
    let announcer =
        RedisQueueNotifier::new(Redis::open(&direct.with_prefix(prefix).unwrap()).unwrap());
    let sent = ready(QueueScope::Global);
    announcer
        .announce(Notice::Ticket(sent.clone()))
        .await
        .unwrap();
    within(
        "a notice before the cut",
        Duration::from_secs(10),
        next_notice(&mut sub, sent.ticket_id),
    )
    .await;

    proxy.cut().await;
    let sent = ready(QueueScope::Global);
    let ticket = sent.ticket_id;
    let listener = tokio::spawn(async move { next_notice(&mut sub, ticket).await });
    // Notices sent before the resubscription are lost (best effort): keep announcing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !listener.is_finished() {
        assert!(
            Instant::now() < deadline,
            "no notice after the subscription's node went away"
        );
        announcer
            .announce(Notice::Ticket(sent.clone()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listener.await.unwrap(), sent);
}

/// A cluster endpoint nothing listens on: every port fails fast with `Unavailable`, as on one
/// node, and the client keeps trying in the background instead of giving up for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_unavailable_within_the_timeout() {
    let (config, _) = cluster_config(&format!("redis://127.0.0.1:{}", closed_port()));
    let config = config.with_command_timeout(Duration::from_millis(500));
    every_port_is_unavailable_within_the_timeout(&config, 3).await;
}

/// A host starts while the cluster cannot be reached (its endpoint not yet listening): calls
/// are `Unavailable`, and once the endpoint answers, the same connection finds the cluster by
/// itself, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_that_comes_up_after_the_host_is_found_without_a_restart() {
    let addr: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (config, _) = cluster_config(&format!("redis://{addr}"));
    let config = config.with_command_timeout(Duration::from_millis(500));
    let q = RedisQueueStore::new(Redis::open(&config).unwrap());
    let err = q
        .enqueue(ticket_id(), user(), QueueScope::Global, T0)
        .await
        .unwrap_err();
    assert_unavailable(&err);
    let mut proxy = Proxy::on(addr, endpoint());
    let deadline = Instant::now() + Duration::from_secs(30);
    let t = loop {
        match q.enqueue(ticket_id(), user(), QueueScope::Global, T0).await {
            Ok(e) => break e.ticket,
            Err(flash_core::StoreError::Unavailable(_)) => {
                assert!(Instant::now() < deadline, "the cluster was never found");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(
        q.ticket(t.id, T0).await.unwrap().map(|t| t.state),
        Some(TicketState::Queued)
    );
    proxy.cut().await;
}
