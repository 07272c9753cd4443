//! A master of the local Redis Cluster dies mid-sale (`SHUTDOWN NOSAVE NOW`: no hand-over, no
//! waiting for its replica), its replica is promoted by the cluster itself, and the queue goes
//! on: while the slot has no master every call fails fast with `Unavailable` (a clear 503, never
//! `Internal`), then calls succeed again on the promoted replica; no ticket acknowledged after
//! the promotion is lost, and of those acknowledged before the kill at most one per writer (what
//! async replication had not yet shipped) may be. Afterwards the dead node is started again
//! (`integration/redis-cluster.sh`) and rejoins as a replica, so the cluster is healthy for the
//! next run.
//!
//! Its own test binary: the failover would disturb tests running beside it, and cargo runs test
//! binaries one at a time. It only kills a node of a loopback cluster (`REDIS_CLUSTER_URL`,
//! default `redis://127.0.0.1:7000`, the one `.ci/test` starts).

mod common;

use common::{endpoint, keyslot, node, prefixed, shard_of, until, url};
use flash_adapter_redis::*;
use flash_core::domain::{QueueScope, TicketState};
use flash_core::ports::QueueStore;
use flash_core::{EventId, StoreError, TicketId, UserId};
use flash_testkit::T0;
use redis::Value;
use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const WRITERS: usize = 4;

/// How often the failover's progress is polled for.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Outcome {
    /// Acknowledged, and whether the promotion had been seen before the call started.
    Queued(TicketId, bool),
    Unavailable,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_mid_sale_gives_clear_unavailable_then_the_line_goes_on_on_its_replica() {
    let (config, prefix) = prefixed(&url(), true);
    let q = Arc::new(RedisQueueStore::new(Redis::open(&config).unwrap()));
    let scope = QueueScope::Event(EventId(Uuid::new_v4()));
    let mut probe = node(&endpoint())
        .await
        .unwrap_or_else(|e| panic!("no Redis Cluster at {} ({e})", endpoint()));
    let slot = keyslot(&mut probe, &format!("{prefix}q:{{{scope}}}:meta")).await;
    let shard = shard_of(&endpoint(), slot)
        .await
        .expect("the slot is served");
    let master = shard.master.clone();
    let replica = shard
        .replicas
        .first()
        .cloned()
        .expect("the master has a replica");
    assert!(
        master.starts_with("127.0.0.1:") && replica.starts_with("127.0.0.1:"),
        "only a loopback cluster's node is killed here: {master}"
    );

    // Writers enqueue buyers without pause, through the kill and the promotion.
    let promoted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    // Per writer: calls acknowledged that started after the promotion was seen.
    let acked_after: Arc<Vec<AtomicUsize>> =
        Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (q, promoted, stop, acked, acked_after) = (
                q.clone(),
                promoted.clone(),
                stop.clone(),
                acked.clone(),
                acked_after.clone(),
            );
            tokio::spawn(async move {
                let mut log = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let after = promoted.load(Ordering::SeqCst);
                    let id = TicketId(Uuid::new_v4());
                    match q.enqueue(id, UserId(Uuid::new_v4()), scope, T0).await {
                        Ok(e) => {
                            assert!(e.created);
                            acked.fetch_add(1, Ordering::SeqCst);
                            if after {
                                acked_after[w].fetch_add(1, Ordering::SeqCst);
                            }
                            log.push(Outcome::Queued(e.ticket.id, after));
                        }
                        Err(StoreError::Unavailable(_)) => log.push(Outcome::Unavailable),
                        Err(other) => panic!("a failover must read as Unavailable: {other:?}"),
                    }
                }
                log
            })
        })
        .collect();
    until(
        "writes before the kill",
        Duration::from_secs(30),
        POLL,
        async || (acked.load(Ordering::SeqCst) >= 100).then_some(()),
    )
    .await;

    // The kill: no hand-over to the replica, no wait for it to catch up.
    let mut doomed = node(&master).await.unwrap();
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .arg("NOW")
        .arg("FORCE")
        .query_async::<Value>(&mut doomed)
        .await;
    let killed_at = Instant::now();
    until(
        "the replica promoted",
        Duration::from_secs(60),
        POLL,
        async || (shard_of(&replica, slot).await?.master == replica).then_some(()),
    )
    .await;
    promoted.store(true, Ordering::SeqCst);
    let promoted_after = killed_at.elapsed();
    until(
        "25 writes of every writer after the promotion",
        Duration::from_secs(60),
        POLL,
        async || {
            acked_after
                .iter()
                .all(|n| n.load(Ordering::SeqCst) >= 25)
                .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }

    // Every writer got through after the promotion.
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.iter().any(|o| matches!(o, Outcome::Queued(_, true))),
            "writer {i} never succeeded after the promotion"
        );
    }
    let unavailable: usize = logs
        .iter()
        .flatten()
        .filter(|o| matches!(o, Outcome::Unavailable))
        .count();
    let tickets: Vec<(TicketId, bool)> = logs
        .iter()
        .flatten()
        .filter_map(|o| match o {
            Outcome::Queued(id, after) => Some((*id, *after)),
            Outcome::Unavailable => None,
        })
        .collect();
    let mut lost_before = Vec::new();
    let mut readable = 0u64;
    for (id, after) in &tickets {
        match q.status(*id, T0).await.unwrap() {
            Some(v) => {
                assert_eq!(v.ticket.state, TicketState::Queued);
                readable += 1;
            }
            None if *after => panic!("ticket {id}, acknowledged after the promotion, is lost"),
            None => lost_before.push(*id),
        }
    }
    assert!(
        lost_before.len() <= WRITERS,
        "{} tickets acknowledged before the kill are lost (bound: one per writer)",
        lost_before.len()
    );
    // The line itself is consistent: what it counts is what can be read, up to the tickets whose
    // index entry (another slot) died with the master while their line entry survived.
    let stats = q.stats(scope, T0).await.unwrap();
    assert!(
        stats.queued >= readable && stats.queued <= readable + WRITERS as u64,
        "the line counts {} QUEUED, {readable} readable",
        stats.queued
    );
    let distinct: HashSet<_> = tickets.iter().map(|(id, _)| *id).collect();
    assert_eq!(distinct.len(), tickets.len());
    eprintln!(
        "failover: replica promoted {promoted_after:?} after the kill; {} acknowledged, \
         {unavailable} Unavailable, {} lost from before the kill",
        tickets.len(),
        lost_before.len()
    );

    // Heal: the dead node starts again on its nodes.conf and rejoins as a replica.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../integration/redis-cluster.sh"
    );
    let status = Command::new("bash")
        .arg(script)
        .arg("start")
        .status()
        .unwrap();
    assert!(status.success(), "{script} could not heal the cluster");
    let now = shard_of(&endpoint(), slot).await.unwrap();
    assert_eq!(now.master, replica);
    assert!(
        now.replicas.contains(&master),
        "{master} did not rejoin as a replica: {now:?}"
    );
}
