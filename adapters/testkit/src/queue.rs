//! Contracts of `QueueStore` and `QueueNotifier`.

use crate::fixtures::{
    assert_count, count, distinct, event_id, race, status_of, ticket_id, user, within,
};
use flash_core::domain::{
    LineNotice, LinePhase, LineReading, Notice, Place, QueueNotice, QueueScope, Ticket, TicketState,
};
use flash_core::ports::{QueueNotifier, QueueStore};
use flash_core::{TicketId, Timestamp, UserId};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

/// A scope no other test uses.
fn scope() -> QueueScope {
    QueueScope::Event(event_id())
}

async fn join(q: &Arc<dyn QueueStore>, who: UserId, scope: QueueScope, now: Timestamp) -> Ticket {
    let e = q.enqueue(ticket_id(), who, scope, now).await.unwrap();
    assert!(e.created, "a first enqueue must create a ticket");
    e.ticket
}

async fn read(q: &Arc<dyn QueueStore>, t: &Ticket, now: Timestamp) -> Ticket {
    q.ticket(t.id, now)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("ticket {} vanished", t.id))
}

async fn admitted(q: &Arc<dyn QueueStore>, scope: QueueScope, now: Timestamp) -> u64 {
    q.stats(scope, now).await.unwrap().admitted
}

/// Server-assigned sequence numbers in arrival order.
pub async fn queue_enqueue_assigns_increasing_sequence(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let mut last = None;
    for _ in 0..5 {
        let t = join(&q, user(), s, now).await;
        assert_eq!(t.state, TicketState::Queued);
        assert_eq!(t.scope, s);
        assert_eq!(t.created_at, now);
        assert!(t.admitted_at.is_none() && t.expires_at.is_none());
        if let Some(prev) = last {
            assert!(t.seq > prev, "seq {} after {prev}", t.seq);
        }
        last = Some(t.seq);
    }
}

/// A user's live (QUEUED/READY/USED) ticket is returned again with `created = false`.
pub async fn queue_enqueue_is_idempotent_per_user_and_scope(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let (s, other_scope, u) = (scope(), scope(), user());
    let first = join(&q, u, s, now).await;
    let again = q.enqueue(ticket_id(), u, s, now).await.unwrap();
    assert!(!again.created, "second enqueue created a ticket");
    assert_eq!(again.ticket.id, first.id);
    let elsewhere = q.enqueue(ticket_id(), u, other_scope, now).await.unwrap();
    assert!(elsewhere.created, "another scope must get its own ticket");
    assert_ne!(elsewhere.ticket.id, first.id);
    q.promote(s, 1, now, TTL).await.unwrap();
    let ready = q.enqueue(ticket_id(), u, s, now).await.unwrap();
    assert!(
        !ready.created,
        "a READY ticket is live and must be returned"
    );
    assert_eq!(ready.ticket.id, first.id);
    assert_eq!(ready.ticket.state, TicketState::Ready);
    q.enter(first.id, u, now, TTL).await.unwrap();
    let used = q.enqueue(ticket_id(), u, s, now).await.unwrap();
    assert!(!used.created && used.ticket.state == TicketState::Used);
}

/// Atomic per (user, scope): concurrent enqueues yield one ticket.
pub async fn queue_concurrent_enqueues_yield_one_ticket(q: Arc<dyn QueueStore>, now: Timestamp) {
    let (s, u) = (scope(), user());
    let results = race(16, |_| {
        let q = q.clone();
        async move { q.enqueue(ticket_id(), u, s, now).await.unwrap() }
    })
    .await;
    let ids: HashSet<_> = results.iter().map(|e| e.ticket.id).collect();
    assert_eq!(
        ids.len(),
        1,
        "concurrent enqueues made {} tickets",
        ids.len()
    );
    assert_eq!(count(&results, |e| e.created), 1);
    assert_eq!(q.stats(s, now).await.unwrap().queued, 1);
}

/// Only a live ticket is returned again: after leaving, the user gets a new one at the back.
pub async fn queue_enqueue_after_leaving_creates_a_new_ticket(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let (s, u) = (scope(), user());
    let first = join(&q, u, s, now).await;
    join(&q, user(), s, now).await;
    q.leave(first.id, u, now).await.unwrap();
    let again = q.enqueue(ticket_id(), u, s, now).await.unwrap();
    assert!(again.created, "an EXPIRED ticket was returned as live");
    assert!(again.ticket.seq > first.seq);
    assert_eq!(q.position(&again.ticket).await.unwrap(), Some(2));
}

/// `position` = QUEUED tickets ahead + 1; `None` once not QUEUED.
pub async fn queue_position_counts_queued_ahead(q: Arc<dyn QueueStore>, now: Timestamp) {
    let (s, tickets) = line(&q, 5, now).await;
    for (i, t) in tickets.iter().enumerate() {
        assert_eq!(q.position(t).await.unwrap(), Some(i as u64 + 1));
    }
    q.leave(tickets[1].id, tickets[1].user, now).await.unwrap();
    assert_eq!(
        q.position(&tickets[1]).await.unwrap(),
        None,
        "a left ticket has a position"
    );
    assert_eq!(q.position(&tickets[2]).await.unwrap(), Some(2));
    let admitted = q.promote(s, 1, now, TTL).await.unwrap();
    assert_eq!(admitted.len(), 1);
    assert_eq!(admitted[0].id, tickets[0].id);
    assert_eq!(
        q.position(&tickets[0]).await.unwrap(),
        None,
        "a READY ticket has a position"
    );
    assert_eq!(q.position(&tickets[2]).await.unwrap(), Some(1));
    assert_eq!(q.position(&tickets[4]).await.unwrap(), Some(3));
}

/// The ids of the tickets one promotion of `s` up to `capacity` admits.
async fn promoted(
    q: &Arc<dyn QueueStore>,
    s: QueueScope,
    capacity: u64,
    now: Timestamp,
) -> Vec<TicketId> {
    q.promote(s, capacity, now, TTL)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// A fresh scope with `n` tickets of fresh users, in arrival order.
async fn line(q: &Arc<dyn QueueStore>, n: usize, now: Timestamp) -> (QueueScope, Vec<Ticket>) {
    let s = scope();
    let mut tickets = Vec::new();
    for _ in 0..n {
        tickets.push(join(q, user(), s, now).await);
    }
    (s, tickets)
}

/// Promotion admits QUEUED tickets in sequence order until `capacity` are admitted.
pub async fn queue_promote_admits_in_arrival_order_up_to_capacity(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let (s, tickets) = line(&q, 5, now).await;
    let admitted = q.promote(s, 2, now, TTL).await.unwrap();
    let ids: Vec<_> = admitted.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        vec![tickets[0].id, tickets[1].id],
        "not in arrival order"
    );
    for t in &admitted {
        assert_eq!(t.state, TicketState::Ready);
        assert_eq!(t.admitted_at, Some(now));
        assert_eq!(t.expires_at, Some(now.plus(TTL)));
        assert_eq!(read(&q, t, now).await.state, TicketState::Ready);
    }
    assert!(
        q.promote(s, 2, now, TTL).await.unwrap().is_empty(),
        "capacity exceeded"
    );
    let stats = q.stats(s, now).await.unwrap();
    assert_eq!((stats.queued, stats.admitted), (3, 2));
    let more = q.promote(s, 3, now, TTL).await.unwrap();
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].id, tickets[2].id);
}

/// `promote_counting` counts the admitted tickets as at least the caller's earlier reading plus
/// every admission since: an admission spent after the reading (ordered) does not free a slot,
/// nor does one made after it and spent; a reading never hides the line's own count.
pub async fn queue_promote_counts_admissions_spent_since_the_callers_reading(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let (s, tickets) = line(&q, 5, now).await;
    assert_eq!(q.promote(s, 2, now, TTL).await.unwrap().len(), 2);
    let later = now.plus(Duration::from_millis(5));
    let read = LineReading {
        admitted: q.stats(s, later).await.unwrap().admitted,
        at: later,
    };
    assert_eq!(read.admitted, 2);
    let reading = Some(read);
    // The promotions run after the reading, and their admissions are stamped after it.
    let after = later.plus(Duration::from_millis(5));
    let promote = |capacity: u64, reading: Option<LineReading>| {
        let q = q.clone();
        async move {
            let admitted = q.promote_counting(s, capacity, reading, after, TTL).await;
            admitted.unwrap().iter().map(|t| t.id).collect::<Vec<_>>()
        }
    };
    // One of the two orders between the caller's reading and its promotion.
    q.consume(tickets[0].id, after).await.unwrap();
    assert_eq!(
        promote(2, reading).await,
        vec![],
        "the spent admission's slot was given away against the earlier reading"
    );
    assert_eq!(
        promote(1, None).await,
        vec![],
        "the line's own admitted count was ignored"
    );
    assert_eq!(
        promote(3, reading).await,
        vec![tickets[2].id],
        "room is capacity minus the reading"
    );
    // Admitted after the reading and spent at once: it still counts against that reading.
    q.consume(tickets[2].id, after).await.unwrap();
    assert_eq!(
        promote(3, reading).await,
        vec![],
        "an admission made and spent since the reading freed a slot"
    );
    assert_eq!(promote(4, reading).await, vec![tickets[3].id]);
}

/// MUST be one atomic step: racing promoters never admit more than `capacity`.
pub async fn queue_promote_never_exceeds_capacity_with_racing_promoters(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let s = scope();
    for _ in 0..50 {
        join(&q, user(), s, now).await;
    }
    let batches = race(32, |_| {
        let q = q.clone();
        async move { q.promote(s, 7, now, TTL).await.unwrap() }
    })
    .await;
    let ids = distinct(&batches, |t| t.id, "a ticket was admitted twice");
    assert_count(&ids, 7, "admitted by racing promoters with capacity 7");
    assert_eq!(admitted(&q, s, now).await, 7);
    assert_eq!(q.stats(s, now).await.unwrap().queued, 43);
}

/// An admission whose `expires_at <= now` reads as EXPIRED and frees its slot.
pub async fn queue_expired_admission_reads_expired_and_frees_slot(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let s = scope();
    let a = join(&q, user(), s, now).await;
    let b = join(&q, user(), s, now).await;
    q.promote(s, 1, now, TTL).await.unwrap();
    let just_before = now.plus(TTL).minus(Duration::from_millis(1));
    assert_eq!(read(&q, &a, just_before).await.state, TicketState::Ready);
    let end = now.plus(TTL);
    let expired = read(&q, &a, end).await;
    assert_eq!(
        expired.state,
        TicketState::Expired,
        "a lapsed admission read as live"
    );
    assert_eq!(q.admission(a.user, s, end).await.unwrap(), None);
    assert_eq!(
        admitted(&q, s, end).await,
        0,
        "the lapsed admission kept its slot"
    );
    let next = q.promote(s, 1, end, TTL).await.unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
}

/// Promotion expires stale admissions first, without anyone reading them.
pub async fn queue_promote_expires_stale_admissions_first(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let a = join(&q, user(), s, now).await;
    let b = join(&q, user(), s, now).await;
    q.promote(s, 1, now, Duration::from_secs(5)).await.unwrap();
    let later = now.plus(Duration::from_secs(6));
    let next = q.promote(s, 1, later, TTL).await.unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    assert_eq!(read(&q, &a, later).await.state, TicketState::Expired);
    assert_eq!(admitted(&q, s, later).await, 1);
}

/// READY → USED for its own user only, re-arming `expires_at`.
pub async fn queue_enter_marks_used_and_rearms_expiry(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let t = join(&q, user(), s, now).await;
    let waiting = join(&q, user(), s, now).await;
    q.promote(s, 1, now, TTL).await.unwrap();
    let stranger = q.enter(t.id, user(), now, TTL).await.unwrap().unwrap();
    assert_eq!(
        stranger.state,
        TicketState::Ready,
        "another user entered with the ticket"
    );
    let at = now.plus(Duration::from_secs(10));
    let ttl = Duration::from_secs(120);
    let used = q.enter(t.id, t.user, at, ttl).await.unwrap().unwrap();
    assert_eq!(used.state, TicketState::Used);
    assert_eq!(used.expires_at, Some(at.plus(ttl)));
    // Still admitted past the first expiry: the re-armed one counts.
    assert_eq!(
        read(&q, &t, now.plus(TTL)).await.state,
        TicketState::Used,
        "enter did not re-arm the expiry"
    );
    let again = q
        .enter(
            t.id,
            t.user,
            at.plus(ttl).minus(Duration::from_secs(1)),
            ttl,
        )
        .await;
    assert_eq!(
        again.unwrap().unwrap().expires_at,
        Some(at.plus(ttl)),
        "USED re-entered"
    );
    let queued = q
        .enter(waiting.id, waiting.user, now, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.state, TicketState::Queued, "a QUEUED ticket entered");
    assert_eq!(q.enter(ticket_id(), t.user, now, TTL).await.unwrap(), None);
}

/// Leave: any live state → EXPIRED, out of the line and its slot freed at once.
pub async fn queue_leave_frees_slot_and_dequeues(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let a = join(&q, user(), s, now).await;
    let b = join(&q, user(), s, now).await;
    let c = join(&q, user(), s, now).await;
    q.promote(s, 1, now, TTL).await.unwrap();
    let left = q.leave(a.id, a.user, now).await.unwrap().unwrap();
    assert_eq!(left.state, TicketState::Expired);
    assert_eq!(admitted(&q, s, now).await, 0, "leaving kept the slot");
    let next = q.promote(s, 1, now, TTL).await.unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    let gone = q.leave(c.id, c.user, now).await.unwrap().unwrap();
    assert_eq!(gone.state, TicketState::Expired);
    assert_eq!(q.position(&c).await.unwrap(), None);
    assert_eq!(
        q.stats(s, now).await.unwrap().queued,
        0,
        "the left ticket is still in line"
    );
    assert!(
        q.promote(s, 5, now, TTL).await.unwrap().is_empty(),
        "a left ticket was admitted"
    );
    let twice = q.leave(a.id, a.user, now).await.unwrap().unwrap();
    assert_eq!(twice.state, TicketState::Expired);
}

/// `leave` is `None` for another user's ticket, which stays as it was.
pub async fn queue_leave_refuses_other_users_ticket(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let t = join(&q, user(), s, now).await;
    assert_eq!(q.leave(t.id, user(), now).await.unwrap(), None);
    assert_eq!(q.leave(ticket_id(), t.user, now).await.unwrap(), None);
    assert_eq!(read(&q, &t, now).await.state, TicketState::Queued);
    assert_eq!(q.position(&t).await.unwrap(), Some(1));
}

/// `admission` is the user's READY/USED unexpired ticket in that scope only.
pub async fn queue_admission_returns_only_live_admissions(q: Arc<dyn QueueStore>, now: Timestamp) {
    let (s, other) = (scope(), scope());
    let t = join(&q, user(), s, now).await;
    assert_eq!(
        q.admission(t.user, s, now).await.unwrap(),
        None,
        "QUEUED is no admission"
    );
    q.promote(s, 1, now, TTL).await.unwrap();
    let a = q
        .admission(t.user, s, now)
        .await
        .unwrap()
        .expect("admitted");
    assert_eq!((a.id, a.state), (t.id, TicketState::Ready));
    assert_eq!(q.admission(t.user, other, now).await.unwrap(), None);
    assert_eq!(q.admission(user(), s, now).await.unwrap(), None);
    q.enter(t.id, t.user, now, TTL).await.unwrap();
    let used = q
        .admission(t.user, s, now)
        .await
        .unwrap()
        .expect("USED is admitted");
    assert_eq!(used.state, TicketState::Used);
    assert_eq!(
        q.admission(t.user, s, now.plus(TTL)).await.unwrap(),
        None,
        "expired"
    );
}

/// READY/USED → ORDERED frees the slot; a no-op on any other state.
pub async fn queue_consume_orders_admitted_tickets_only(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let a = join(&q, user(), s, now).await;
    let b = join(&q, user(), s, now).await;
    assert!(
        !q.consume(a.id, now).await.unwrap(),
        "consumed a QUEUED ticket"
    );
    assert_eq!(read(&q, &a, now).await.state, TicketState::Queued);
    q.promote(s, 1, now, TTL).await.unwrap();
    assert!(q.consume(a.id, now).await.unwrap());
    assert_eq!(read(&q, &a, now).await.state, TicketState::Ordered);
    assert!(!q.consume(a.id, now).await.unwrap(), "consumed twice");
    assert_eq!(
        admitted(&q, s, now).await,
        0,
        "an ORDERED ticket kept its slot"
    );
    let next = q.promote(s, 1, now, TTL).await.unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    let late = now.plus(TTL);
    assert!(
        !q.consume(b.id, late).await.unwrap(),
        "consumed an expired admission"
    );
    assert_eq!(read(&q, &b, late).await.state, TicketState::Expired);
    assert!(!q.consume(ticket_id(), now).await.unwrap());
}

/// Stats count QUEUED, admitted and the admissions of the recent window.
pub async fn queue_stats_count_queued_admitted_and_recent(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let empty = q.stats(s, now).await.unwrap();
    assert_eq!(
        (empty.queued, empty.admitted, empty.recent_admissions),
        (0, 0, 0)
    );
    for _ in 0..4 {
        join(&q, user(), s, now).await;
    }
    let long = Duration::from_secs(3600);
    q.promote(s, 2, now, long).await.unwrap();
    let stats = q.stats(s, now).await.unwrap();
    assert_eq!(
        (stats.queued, stats.admitted, stats.recent_admissions),
        (2, 2, 2)
    );
    assert!(stats.window_ms > 0);
    let after_window = now.plus(Duration::from_millis(stats.window_ms));
    let later = q.stats(s, after_window).await.unwrap();
    assert_eq!(
        later.recent_admissions, 0,
        "admissions outside the window counted"
    );
    assert_eq!((later.queued, later.admitted), (2, 2));
}

/// The decaying admission count: every admission adds one, and it fades by e over each window, so
/// ÷ window it is the exponentially weighted mean admission rate (SPEC §4's estimated wait).
pub async fn queue_stats_decay_admissions_exponentially(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    assert_eq!(q.stats(s, now).await.unwrap().decayed_admissions_milli, 0);
    for _ in 0..20 {
        join(&q, user(), s, now).await;
    }
    let long = Duration::from_secs(3600);
    q.promote(s, 10, now, long).await.unwrap();
    let at_once = q.stats(s, now).await.unwrap();
    assert_eq!(at_once.decayed_admissions_milli, 10_000);
    let window = Duration::from_millis(at_once.window_ms);
    let one_window = now.plus(window);
    let faded = q
        .stats(s, one_window)
        .await
        .unwrap()
        .decayed_admissions_milli;
    assert!(
        faded.abs_diff(3_679) <= 2,
        "10 admissions one window ago read {faded} thousandths, not 10 e^-1"
    );
    // Five more then: the faded count plus five, and read at that instant by a status too.
    let more = q.promote(s, 15, one_window, long).await.unwrap();
    assert_eq!(more.len(), 5);
    let both = q
        .stats(s, one_window)
        .await
        .unwrap()
        .decayed_admissions_milli;
    assert!(both.abs_diff(8_679) <= 2, "read {both}");
    let waiting = join(&q, user(), s, one_window).await;
    let view = q.status(waiting.id, one_window).await.unwrap().unwrap();
    assert!(view.stats.decayed_admissions_milli.abs_diff(8_679) <= 2);
}

/// `used` counts entered admissions only, and drops when they finish.
pub async fn queue_stats_count_entered_admissions_as_used(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let (a, b) = (user(), user());
    let ta = join(&q, a, s, now).await;
    join(&q, b, s, now).await;
    q.promote(s, 2, now, TTL).await.unwrap();
    assert_eq!(q.stats(s, now).await.unwrap().used, 0);
    q.enter(ta.id, a, now, TTL).await.unwrap();
    let st = q.stats(s, now).await.unwrap();
    assert_eq!((st.admitted, st.used), (2, 1));
    q.consume(ta.id, now).await.unwrap();
    let st = q.stats(s, now).await.unwrap();
    assert_eq!((st.admitted, st.used), (1, 0));
}

/// `status` answers what `ticket`, `stats` and `position` answer, in every state: QUEUED with
/// its position, READY and USED without one, an overdue admission EXPIRED with its slot freed,
/// and `None` for an unknown ticket.
pub async fn queue_status_reads_ticket_stats_and_position(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    let (a, b, c) = (user(), user(), user());
    let ta = join(&q, a, s, now).await;
    let tb = join(&q, b, s, now).await;
    let tc = join(&q, c, s, now).await;
    let v = status_of(&*q, tc.id, now, "a queued ticket").await;
    assert_eq!((v.ticket.id, v.ticket.state), (tc.id, TicketState::Queued));
    assert_eq!(v.ticket.seq, tc.seq);
    assert_eq!(v.position, Some(3), "two QUEUED tickets ahead");
    assert_eq!((v.stats.queued, v.stats.admitted, v.stats.used), (3, 0, 0));

    q.promote(s, 2, now, TTL).await.unwrap();
    q.enter(ta.id, a, now, TTL).await.unwrap();
    let v = q.status(tc.id, now).await.unwrap().expect("still queued");
    assert_eq!(v.position, Some(1));
    assert_eq!(
        (
            v.stats.queued,
            v.stats.admitted,
            v.stats.used,
            v.stats.recent_admissions
        ),
        (1, 2, 1, 2)
    );
    assert_eq!(
        v.stats,
        q.stats(s, now).await.unwrap(),
        "status and stats disagree"
    );
    let ready = q.status(tb.id, now).await.unwrap().expect("an admission");
    assert_eq!(
        ready.ticket,
        read(&q, &tb, now).await,
        "status and ticket disagree"
    );
    assert_eq!(
        (ready.ticket.state, ready.position),
        (TicketState::Ready, None)
    );
    assert_eq!(ready.ticket.expires_at, Some(now.plus(TTL)));
    let used = status_of(&*q, ta.id, now, "an entered admission").await;
    assert_eq!(
        (used.ticket.state, used.position),
        (TicketState::Used, None)
    );

    let end = now.plus(TTL);
    let lapsed = status_of(&*q, tb.id, end, "kept once expired").await;
    assert_eq!(
        lapsed.ticket.state,
        TicketState::Expired,
        "a lapsed admission read as live"
    );
    assert_eq!(lapsed.position, None);
    assert_eq!(
        lapsed.stats.admitted, 0,
        "lapsed admissions kept their slots"
    );
    assert_eq!(q.status(ticket_id(), now).await.unwrap(), None);
}

/// `active_scopes` lists scopes with QUEUED or admitted tickets, and only those.
pub async fn queue_active_scopes_only_lists_busy_scopes(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    assert!(!q.active_scopes().await.unwrap().contains(&s));
    let t = join(&q, user(), s, now).await;
    assert!(
        q.active_scopes().await.unwrap().contains(&s),
        "QUEUED scope missing"
    );
    q.promote(s, 1, now, TTL).await.unwrap();
    assert!(
        q.active_scopes().await.unwrap().contains(&s),
        "admitted scope missing"
    );
    q.consume(t.id, now).await.unwrap();
    assert!(
        !q.active_scopes().await.unwrap().contains(&s),
        "a scope with nothing queued or admitted is still active"
    );
}

/// A line set SOLD_OUT or CLOSED admits nobody, whatever the free capacity; its QUEUED tickets
/// keep their places and, once it is OPEN again, are admitted in their old order. Only the call
/// that changes the phase reports a change, and the phase reads back in the stats and status.
pub async fn queue_phase_stops_promotion_and_keeps_places(q: Arc<dyn QueueStore>, now: Timestamp) {
    let s = scope();
    assert_eq!(q.stats(s, now).await.unwrap().phase, LinePhase::Open);
    let line: Vec<Ticket> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(join(&q, user(), s, now).await);
        }
        v
    };
    assert!(q.set_phase(s, LinePhase::SoldOut, now).await.unwrap());
    assert!(
        !q.set_phase(s, LinePhase::SoldOut, now).await.unwrap(),
        "setting the same phase again reported a change"
    );
    assert!(q.promote(s, 10, now, TTL).await.unwrap().is_empty());
    let stats = q.stats(s, now).await.unwrap();
    assert_eq!(
        (stats.phase, stats.queued, stats.admitted),
        (LinePhase::SoldOut, 4, 0)
    );
    let view = q.status(line[2].id, now).await.unwrap().unwrap();
    assert_eq!(view.stats.phase, LinePhase::SoldOut);
    assert_eq!(
        view.ticket.state,
        TicketState::Queued,
        "the store keeps the stored state"
    );
    assert_eq!(view.position, Some(3), "a sold-out line keeps its order");
    // Late arrivals still join, behind everyone.
    let late = join(&q, user(), s, now).await;
    assert_eq!(q.position(&late).await.unwrap(), Some(5));

    assert!(q.set_phase(s, LinePhase::Closed, now).await.unwrap());
    assert!(q.promote(s, 10, now, TTL).await.unwrap().is_empty());
    assert_eq!(q.stats(s, now).await.unwrap().phase, LinePhase::Closed);

    assert!(q.set_phase(s, LinePhase::Open, now).await.unwrap());
    let admitted = promoted(&q, s, 2, now).await;
    assert_eq!(
        admitted,
        vec![line[0].id, line[1].id],
        "re-opened out of order"
    );
    assert_eq!(q.stats(s, now).await.unwrap().phase, LinePhase::Open);
}

/// With many callers racing to set the same new phase, exactly one is told it changed it (so
/// exactly one announces it).
pub async fn queue_phase_change_is_reported_once_under_races(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let s = scope();
    join(&q, user(), s, now).await;
    let changed = race(16, |_| {
        let q = q.clone();
        async move { q.set_phase(s, LinePhase::SoldOut, now).await.unwrap() }
    })
    .await;
    assert_eq!(count(&changed, |c| *c), 1, "{changed:?}");
}

/// A lottery placement for a sale starting a TTL after `now`.
fn lottery(draw: u64, now: Timestamp) -> Place {
    Place::Lottery {
        draw,
        starts_at: now.plus(TTL),
    }
}

/// Pre-queue tickets are admitted in the order of their draws, not of their arrival, and ahead
/// of every arrival, also of one that came while the line still read PREQUEUE; a fresh line
/// enters the pre-queue with its first lottery ticket; once the line has left the pre-queue, a
/// lottery placement (a join that read a stale start) is an arrival.
pub async fn queue_lottery_is_drawn_in_draw_order_ahead_of_arrivals(
    q: Arc<dyn QueueStore>,
    now: Timestamp,
) {
    let s = scope();
    let draws = [u64::MAX - 1, 7, 1 << 40, u64::MAX / 2, 12_345];
    let mut drawn = Vec::new();
    for d in draws {
        let e = q
            .enqueue_at(ticket_id(), user(), s, now, lottery(d, now))
            .await
            .unwrap();
        assert!(e.created);
        drawn.push((d, e.ticket.id));
    }
    assert_eq!(
        q.stats(s, now).await.unwrap().phase,
        LinePhase::Prequeue {
            starts_at: now.plus(TTL)
        },
        "a fresh line enters the pre-queue with its first lottery ticket"
    );
    assert!(
        q.promote(s, 100, now, TTL).await.unwrap().is_empty(),
        "admitted in the pre-queue"
    );
    assert_eq!(q.stats(s, now).await.unwrap().queued, 5);
    // A late pod's arrival before the line opens, then the opening, then a later arrival.
    let early = join(&q, user(), s, now).await;
    q.set_phase(s, LinePhase::Open, now).await.unwrap();
    let late = join(&q, user(), s, now).await;
    let stale = q
        .enqueue_at(ticket_id(), user(), s, now, lottery(0, now))
        .await
        .unwrap()
        .ticket;
    drawn.sort();
    let mut expected: Vec<_> = drawn.iter().map(|(_, id)| *id).collect();
    expected.extend([early.id, late.id, stale.id]);
    let first = &q.status(expected[0], now).await.unwrap().unwrap();
    assert_eq!(
        first.position,
        Some(1),
        "the smallest draw is first in line"
    );
    let admitted = promoted(&q, s, 100, now).await;
    assert_eq!(admitted, expected);
}

/// The lottery's order is a uniform permutation when the draws are uniform: over many seeded
/// lines of six, each ticket lands in each place equally often (Pearson's chi-square over the
/// 6 × 6 table of join index × place, 25 degrees of freedom, refused above the 0.1 % critical
/// value 52.62).
pub async fn queue_lottery_order_is_a_uniform_permutation(q: Arc<dyn QueueStore>, now: Timestamp) {
    const N: usize = 6;
    const RUNS: usize = 600;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_1077);
    let mut counts = [[0u32; N]; N];
    for _ in 0..RUNS {
        let s = scope();
        q.set_phase(
            s,
            LinePhase::Prequeue {
                starts_at: now.plus(TTL),
            },
            now,
        )
        .await
        .unwrap();
        let mut ids = Vec::with_capacity(N);
        for _ in 0..N {
            let e = q
                .enqueue_at(ticket_id(), user(), s, now, lottery(rng.random(), now))
                .await
                .unwrap();
            ids.push(e.ticket.id);
        }
        q.set_phase(s, LinePhase::Open, now).await.unwrap();
        let order = q.promote(s, N as u64, now, TTL).await.unwrap();
        assert_eq!(order.len(), N);
        for (place, t) in order.iter().enumerate() {
            let joined = ids.iter().position(|id| *id == t.id).unwrap();
            counts[joined][place] += 1;
        }
    }
    let expected = RUNS as f64 / N as f64;
    let chi2: f64 = counts
        .iter()
        .flatten()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 52.62, "chi-square {chi2:.1} over {counts:?}");
}

fn notice() -> QueueNotice {
    QueueNotice {
        ticket_id: ticket_id(),
        user_id: user(),
        scope: event_id().to_string(),
        state: TicketState::Ready,
        expires_at: Some(1_762_164_060_000),
    }
}

/// The ticket notice a subscription yields for `sent`, skipping other tests' notices.
async fn next_ticket_notice(
    sub: &mut Box<dyn flash_core::ports::QueueSubscription>,
    sent: &QueueNotice,
) -> QueueNotice {
    loop {
        match sub.next().await {
            Some(Notice::Ticket(got)) if got.ticket_id == sent.ticket_id => break got,
            Some(_) => continue,
            None => panic!("subscription closed"),
        }
    }
}

/// Every current subscriber receives an announced notice.
pub async fn notifier_delivers_to_every_subscriber(n: Arc<dyn QueueNotifier>, _now: Timestamp) {
    let mut first = n.subscribe().await.unwrap();
    let mut second = n.subscribe().await.unwrap();
    let sent = notice();
    n.announce(Notice::Ticket(sent.clone())).await.unwrap();
    for sub in [&mut first, &mut second] {
        // Other tests may share the channel: skip their notices.
        let got = within("notice", next_ticket_notice(sub, &sent)).await;
        assert_eq!(got, sent);
    }
}

/// A line notice (sold out, re-opened) travels as itself, not mistaken for a ticket notice.
pub async fn notifier_delivers_line_notices(n: Arc<dyn QueueNotifier>, _now: Timestamp) {
    let mut sub = n.subscribe().await.unwrap();
    let sent = LineNotice {
        scope: event_id().to_string(),
        phase: LinePhase::SoldOut,
    };
    n.announce(Notice::Line(sent.clone())).await.unwrap();
    let got = within("line notice", async {
        loop {
            match sub.next().await {
                Some(Notice::Line(got)) if got.scope == sent.scope => break got,
                Some(_) => continue,
                None => panic!("subscription closed"),
            }
        }
    })
    .await;
    assert_eq!(got, sent);
}

/// Announcing with nobody listening is not an error (best effort).
pub async fn notifier_announce_without_subscribers_is_ok(
    n: Arc<dyn QueueNotifier>,
    _now: Timestamp,
) {
    n.announce(Notice::Ticket(notice())).await.unwrap();
    let mut late = n.subscribe().await.unwrap();
    let sent = notice();
    n.announce(Notice::Ticket(sent.clone())).await.unwrap();
    let got = within(
        "notice after a late subscribe",
        next_ticket_notice(&mut late, &sent),
    )
    .await;
    assert_eq!(got, sent);
}
