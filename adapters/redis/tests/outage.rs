//! A Redis outage, simulated by a TCP proxy in front of the real Redis that the test can cut and
//! restore: requests fail fast with `Unavailable` while it is down, and the shared connection and
//! notice subscriptions come back by themselves.

mod common;

use common::{Proxy, assert_unavailable, until};
use flash_adapter_redis::*;
use flash_core::domain::{Notice, QueueNotice, QueueScope, TicketState};
use flash_core::ports::{HealthCheck, QueueNotifier, QueueStore};
use flash_core::{TicketId, UserId};
use flash_testkit::T0;
use std::time::{Duration, Instant};
use uuid::Uuid;

const UPSTREAM: &str = "127.0.0.1:6379";

/// How often a recovery is polled for.
const POLL: Duration = Duration::from_millis(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_gives_quick_unavailable_and_everything_recovers_by_itself() {
    let mut proxy = Proxy::to(UPSTREAM.to_owned());
    let prefix = format!("test-{}:", Uuid::new_v4().simple());
    let via_proxy = RedisConfig::from_url(&proxy.url())
        .unwrap()
        .with_prefix(prefix.clone())
        .unwrap()
        .with_command_timeout(Duration::from_millis(500));
    let redis = Redis::open(&via_proxy).unwrap();
    let health = RedisHealth::new(redis.clone());
    let queue = RedisQueueStore::new(redis.clone());
    let notifier = RedisQueueNotifier::new(redis.clone());
    // Announces go straight to Redis, so they are sent while the proxy is down too.
    let direct = RedisConfig::from_url(&format!("redis://{UPSTREAM}"))
        .unwrap()
        .with_prefix(prefix)
        .unwrap();
    let announcer = RedisQueueNotifier::new(Redis::open(&direct).unwrap());

    health.ping().await.unwrap();
    let mut sub = notifier.subscribe().await.unwrap();
    let (user, scope) = (UserId(Uuid::new_v4()), QueueScope::Global);
    let t = queue
        .enqueue(TicketId(Uuid::new_v4()), user, scope, T0)
        .await
        .unwrap()
        .ticket;

    proxy.cut().await;
    for _ in 0..3 {
        let started = Instant::now();
        let err = queue.ticket(t.id, T0).await.unwrap_err();
        assert_unavailable(&err);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an outage took {:?} to report",
            started.elapsed()
        );
    }
    // The subscription keeps trying in the background of `next()`.
    let listener = tokio::spawn(async move {
        loop {
            match sub.next().await {
                Some(Notice::Ticket(n)) if n.state == TicketState::Ready => return n,
                Some(_) => continue,
                None => panic!("the subscription ended instead of resubscribing"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.restore();
    let read = until(
        "queue reads again",
        Duration::from_secs(10),
        POLL,
        async || queue.ticket(t.id, T0).await.ok().flatten(),
    )
    .await;
    assert_eq!(read.state, TicketState::Queued);

    let notice = QueueNotice {
        ticket_id: t.id,
        user_id: user,
        scope: scope.to_string(),
        state: TicketState::Ready,
        expires_at: None,
    };
    // Notices sent before the resubscription are lost (best effort): keep announcing.
    let got = until(
        "a notice after resubscribing",
        Duration::from_secs(15),
        POLL,
        async || {
            announcer
                .announce(Notice::Ticket(notice.clone()))
                .await
                .unwrap();
            if listener.is_finished() {
                Some(())
            } else {
                None
            }
        },
    )
    .await;
    let _: () = got;
    assert_eq!(listener.await.unwrap(), notice);
}
