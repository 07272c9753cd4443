//! The waiting queue.

use crate::fenwick::Fenwick;
use crate::{Faults, lock};
use async_trait::async_trait;
use flash_core::domain::{
    Enqueued, LinePhase, LineReading, Place, QueueScope, QueueStats, Ticket, TicketState,
};
use flash_core::ports::{QueueStore, StoreResult};
use flash_core::{StoreError, TicketId, Timestamp, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

crate::fault::with_faults!(MemoryQueueStore);

/// How long a finished (ORDERED/EXPIRED) ticket stays readable before it is forgotten.
pub const DEFAULT_TICKET_RETENTION: Duration = Duration::from_secs(3600);
/// The window of [`QueueStats::recent_admissions`].
pub const RECENT_ADMISSIONS_WINDOW: Duration = Duration::from_secs(60);

/// Below this many dead sequence numbers the Fenwick prefix is not worth cutting.
const COMPACT_MIN: u64 = 64;

/// One scope's line.
#[derive(Debug)]
struct Line {
    next_seq: u64,
    /// 1 at each QUEUED ticket's sequence number: a position is a prefix sum.
    waiting: Fenwick,
    /// QUEUED tickets in arrival order (promotion takes from the front).
    queued: BTreeMap<u64, TicketId>,
    /// READY/USED tickets by `expires_at`, so stale admissions are found from the front.
    admitted: BTreeSet<(Timestamp, TicketId)>,
    /// How many of `admitted` are USED (entered).
    used: u64,
    /// The live ticket of each user, for idempotent enqueue and `admission`.
    live_by_user: HashMap<UserId, TicketId>,
    /// Admission instants within the stats window, oldest first.
    recent: VecDeque<Timestamp>,
    /// The admissions as an exponentially decaying count (time constant: the stats window), as
    /// of `decayed_at`.
    decayed: f64,
    decayed_at: Timestamp,
    /// Promotion admits only while open.
    phase: LinePhase,
    /// Whether `phase` was ever given (a fresh line reads OPEN but may still enter a pre-queue).
    phase_set: bool,
    /// Pre-queue tickets by (draw, id), not yet in `queued` (their `seq` is 0): drawn into the
    /// line, in this order and ahead of any arrival, when the line leaves its pre-queue.
    lottery: BTreeSet<(u64, TicketId)>,
    /// The draw of each ticket in `lottery`.
    draws: HashMap<TicketId, u64>,
}

impl Line {
    fn new() -> Self {
        Line {
            next_seq: 1,
            waiting: Fenwick::new(1),
            queued: BTreeMap::new(),
            admitted: BTreeSet::new(),
            used: 0,
            live_by_user: HashMap::new(),
            recent: VecDeque::new(),
            decayed: 0.0,
            decayed_at: Timestamp(0),
            phase: LinePhase::Open,
            phase_set: false,
            lottery: BTreeSet::new(),
            draws: HashMap::new(),
        }
    }

    /// Puts the lottery into the line in draw order, each ticket given its sequence number.
    /// O(k log k) once for k pre-queue tickets.
    fn draw(&mut self, tickets: &mut HashMap<TicketId, Ticket>) {
        for (_, id) in std::mem::take(&mut self.lottery) {
            let seq = self.append(id);
            if let Some(t) = tickets.get_mut(&id) {
                t.seq = seq;
            }
        }
        self.draws.clear();
    }

    /// QUEUED tickets, in the line or in the lottery.
    fn waiting(&self) -> usize {
        self.queued.len() + self.lottery.len()
    }

    fn append(&mut self, id: TicketId) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        debug_assert_eq!(self.waiting.end(), seq);
        self.waiting.push(1);
        self.queued.insert(seq, id);
        seq
    }

    fn dequeue(&mut self, id: TicketId, seq: u64) {
        if let Some(draw) = self.draws.remove(&id) {
            self.lottery.remove(&(draw, id));
            return;
        }
        if self.queued.remove(&seq).is_some() {
            self.waiting.add(seq, -1);
        }
        self.compact();
    }

    /// Cuts the Fenwick prefix before the oldest QUEUED ticket once it is half the tree: the
    /// rebuild costs at most what was cut, so it is O(1) amortised per ticket.
    fn compact(&mut self) {
        let head = self
            .queued
            .first_key_value()
            .map_or(self.next_seq, |(s, _)| *s);
        let dead = head - self.waiting.base();
        if dead >= COMPACT_MIN && dead * 2 >= self.waiting.len() as u64 {
            self.waiting = Fenwick::rebuild(head, self.next_seq, self.queued.keys().copied());
        }
    }

    /// The decaying admission count brought forward to `now` (never back: a caller's clock
    /// behind the last admission's leaves it as it is).
    fn decayed_as_of(&self, now: Timestamp) -> f64 {
        let tau = RECENT_ADMISSIONS_WINDOW.as_millis() as f64;
        let elapsed = now.millis().saturating_sub(self.decayed_at.millis()) as f64;
        self.decayed * (-elapsed / tau).exp()
    }

    fn prune_recent(&mut self, now: Timestamp) {
        while let Some(t) = self.recent.front() {
            if t.plus(RECENT_ADMISSIONS_WINDOW) > now {
                break;
            }
            self.recent.pop_front();
        }
    }

    fn busy(&self) -> bool {
        self.waiting() > 0 || !self.admitted.is_empty()
    }
}

#[derive(Debug, Default)]
struct QueueState {
    tickets: HashMap<TicketId, Ticket>,
    lines: HashMap<QueueScope, Line>,
    /// (finished_at, id) of ORDERED/EXPIRED tickets, forgotten after the retention period.
    finished: VecDeque<(Timestamp, TicketId)>,
}

impl QueueState {
    fn sweep(&mut self, now: Timestamp, retention: Duration) {
        while let Some(&(at, id)) = self.finished.front() {
            if at.plus(retention) > now {
                break;
            }
            self.finished.pop_front();
            if self.tickets.get(&id).is_some_and(|t| !t.state.is_live()) {
                self.tickets.remove(&id);
            }
        }
    }

    /// Moves a ticket already taken out of `queued`/`admitted` to a final state.
    fn finish(&mut self, id: TicketId, state: TicketState, now: Timestamp) {
        let Some(t) = self.tickets.get_mut(&id) else {
            return;
        };
        let was_used = t.state == TicketState::Used;
        t.state = state;
        t.expires_at = None;
        if let Some(line) = self.lines.get_mut(&t.scope) {
            if was_used {
                line.used = line.used.saturating_sub(1);
            }
            if line.live_by_user.get(&t.user) == Some(&id) {
                line.live_by_user.remove(&t.user);
            }
        }
        self.finished.push_back((now, id));
    }

    /// Takes a live ticket out of its line (queued or admitted) and finishes it.
    fn retire(&mut self, id: TicketId, state: TicketState, now: Timestamp) {
        let Some(t) = self.tickets.get(&id) else {
            return;
        };
        if let Some(line) = self.lines.get_mut(&t.scope) {
            match t.state {
                TicketState::Queued => line.dequeue(id, t.seq),
                TicketState::Ready | TicketState::Used => {
                    if let Some(exp) = t.expires_at {
                        line.admitted.remove(&(exp, id));
                    }
                }
                // Finished, or states that are only ever reported.
                TicketState::Ordered
                | TicketState::Expired
                | TicketState::Prequeue
                | TicketState::SoldOut
                | TicketState::Closed => return,
            }
        }
        self.finish(id, state, now);
    }

    /// The lazy half of admission expiry: an admission past `expires_at` reads as EXPIRED and
    /// frees its slot the moment anyone looks at it.
    fn refresh(&mut self, id: TicketId, now: Timestamp) {
        let stale = self
            .tickets
            .get(&id)
            .is_some_and(|t| t.state.is_admitted() && t.expires_at.is_none_or(|e| e <= now));
        if stale {
            self.retire(id, TicketState::Expired, now);
        }
    }

    fn expire_admissions(&mut self, scope: QueueScope, now: Timestamp) {
        loop {
            let Some(line) = self.lines.get_mut(&scope) else {
                return;
            };
            let Some(&(exp, id)) = line.admitted.first() else {
                return;
            };
            if exp > now {
                return;
            }
            line.admitted.pop_first();
            self.finish(id, TicketState::Expired, now);
        }
    }
}

/// The waiting queue in memory: one mutex, O(log n) per operation (positions from a Fenwick
/// tree, ordered sets for arrival order and admission expiry). Finished tickets are forgotten
/// [`DEFAULT_TICKET_RETENTION`] after they finish, swept on every write.
#[derive(Debug)]
pub struct MemoryQueueStore {
    state: Mutex<QueueState>,
    retention: Duration,
    faults: Faults,
}

impl Default for MemoryQueueStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueueStore {
    pub fn new() -> Self {
        MemoryQueueStore {
            state: Mutex::new(QueueState::default()),
            retention: DEFAULT_TICKET_RETENTION,
            faults: Faults::default(),
        }
    }

    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Tickets still remembered, finished ones included (for tests of retention).
    pub fn remembered(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.tickets.len())
            .unwrap_or_default()
    }

    fn write(&self, now: Timestamp) -> StoreResult<std::sync::MutexGuard<'_, QueueState>> {
        self.faults.check("queue store")?;
        let mut s = lock(&self.state, "queue store")?;
        s.sweep(now, self.retention);
        Ok(s)
    }
}

#[async_trait]
impl QueueStore for MemoryQueueStore {
    async fn enqueue_at(
        &self,
        ticket: TicketId,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
        place: Place,
    ) -> StoreResult<Enqueued> {
        let mut s = self.write(now)?;
        let existing = s
            .lines
            .get(&scope)
            .and_then(|l| l.live_by_user.get(&user))
            .copied();
        if let Some(id) = existing {
            s.refresh(id, now);
            if let Some(t) = s.tickets.get(&id)
                && t.state.is_live()
            {
                return Ok(Enqueued {
                    ticket: t.clone(),
                    created: false,
                });
            }
        }
        if s.tickets.contains_key(&ticket) {
            return Err(StoreError::Conflict(format!(
                "ticket {ticket} already exists"
            )));
        }
        let QueueState { tickets, lines, .. } = &mut *s;
        let line = lines.entry(scope).or_insert_with(Line::new);
        if let Place::Lottery { starts_at, .. } = place
            && !line.phase_set
        {
            line.phase = LinePhase::Prequeue { starts_at };
            line.phase_set = true;
        }
        let seq = match place {
            Place::Lottery { draw, .. } if matches!(line.phase, LinePhase::Prequeue { .. }) => {
                line.lottery.insert((draw, ticket));
                line.draws.insert(ticket, draw);
                0
            }
            // An arrival, or a join that read a stale start after the line left its pre-queue:
            // behind the whole pre-queue.
            Place::Arrival | Place::Lottery { .. } => {
                line.draw(tickets);
                line.append(ticket)
            }
        };
        line.live_by_user.insert(user, ticket);
        let t = Ticket {
            id: ticket,
            user,
            scope,
            state: TicketState::Queued,
            seq,
            created_at: now,
            admitted_at: None,
            expires_at: None,
        };
        s.tickets.insert(ticket, t.clone());
        Ok(Enqueued {
            ticket: t,
            created: true,
        })
    }

    async fn ticket(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<Ticket>> {
        let mut s = self.write(now)?;
        s.refresh(id, now);
        Ok(s.tickets.get(&id).cloned())
    }

    async fn position(&self, ticket: &Ticket) -> StoreResult<Option<u64>> {
        self.faults.check("queue store")?;
        let s = lock(&self.state, "queue store")?;
        // The caller's copy may be stale: answer from the stored ticket.
        let Some(t) = s.tickets.get(&ticket.id) else {
            return Ok(None);
        };
        if t.state != TicketState::Queued {
            return Ok(None);
        }
        let Some(line) = s.lines.get(&t.scope) else {
            return Ok(None);
        };
        if line.draws.contains_key(&t.id) {
            // In the lottery: no place until it is drawn.
            return Ok(None);
        }
        Ok(u64::try_from(line.waiting.count_through(t.seq)).ok())
    }

    async fn stats(&self, scope: QueueScope, now: Timestamp) -> StoreResult<QueueStats> {
        let mut s = self.write(now)?;
        s.expire_admissions(scope, now);
        let window_ms = RECENT_ADMISSIONS_WINDOW.as_millis() as u64;
        let Some(line) = s.lines.get_mut(&scope) else {
            return Ok(QueueStats {
                window_ms,
                ..QueueStats::default()
            });
        };
        line.prune_recent(now);
        Ok(QueueStats {
            queued: line.waiting() as u64,
            admitted: line.admitted.len() as u64,
            used: line.used,
            recent_admissions: line.recent.len() as u64,
            window_ms,
            phase: line.phase,
            decayed_admissions_milli: (line.decayed_as_of(now) * 1000.0).round() as u64,
        })
    }

    async fn promote_counting(
        &self,
        scope: QueueScope,
        capacity: u64,
        reading: Option<LineReading>,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Vec<Ticket>> {
        let mut s = self.write(now)?;
        s.expire_admissions(scope, now);
        let QueueState { tickets, lines, .. } = &mut *s;
        let Some(line) = lines.get_mut(&scope).filter(|l| l.phase == LinePhase::Open) else {
            return Ok(Vec::new());
        };
        let expires_at = now.plus(ttl);
        let mut admitted = Vec::new();
        let since_reading = |r: &LineReading| {
            let later = line.recent.iter().rev().take_while(|t| **t > r.at).count();
            r.admitted + later as u64
        };
        let mut counted =
            (line.admitted.len() as u64).max(reading.as_ref().map_or(0, since_reading));
        while counted < capacity {
            let Some((seq, id)) = line.queued.pop_first() else {
                break;
            };
            line.waiting.add(seq, -1);
            let Some(t) = tickets.get_mut(&id) else {
                continue;
            };
            t.state = TicketState::Ready;
            t.admitted_at = Some(now);
            t.expires_at = Some(expires_at);
            line.admitted.insert((expires_at, id));
            line.recent.push_back(now);
            admitted.push(t.clone());
            counted += 1;
        }
        if !admitted.is_empty() {
            line.decayed = line.decayed_as_of(now) + admitted.len() as f64;
            line.decayed_at = now;
        }
        line.compact();
        line.prune_recent(now);
        Ok(admitted)
    }

    async fn set_phase(
        &self,
        scope: QueueScope,
        phase: LinePhase,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut s = self.write(now)?;
        let QueueState { tickets, lines, .. } = &mut *s;
        let line = lines.entry(scope).or_insert_with(Line::new);
        let changed = line.phase != phase;
        line.phase = phase;
        line.phase_set = true;
        if !matches!(phase, LinePhase::Prequeue { .. }) {
            line.draw(tickets);
        }
        Ok(changed)
    }

    async fn enter(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Option<Ticket>> {
        let mut s = self.write(now)?;
        s.refresh(id, now);
        let QueueState { tickets, lines, .. } = &mut *s;
        let Some(t) = tickets.get_mut(&id) else {
            return Ok(None);
        };
        if t.state == TicketState::Ready && t.user == user {
            let expires_at = now.plus(ttl);
            if let Some(line) = lines.get_mut(&t.scope) {
                if let Some(old) = t.expires_at {
                    line.admitted.remove(&(old, id));
                }
                line.admitted.insert((expires_at, id));
                line.used += 1;
            }
            t.state = TicketState::Used;
            t.expires_at = Some(expires_at);
        }
        Ok(Some(t.clone()))
    }

    async fn leave(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let mut s = self.write(now)?;
        s.refresh(id, now);
        if s.tickets.get(&id).is_none_or(|t| t.user != user) {
            return Ok(None);
        }
        s.retire(id, TicketState::Expired, now);
        Ok(s.tickets.get(&id).cloned())
    }

    async fn admission(
        &self,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>> {
        let mut s = self.write(now)?;
        let Some(id) = s
            .lines
            .get(&scope)
            .and_then(|l| l.live_by_user.get(&user))
            .copied()
        else {
            return Ok(None);
        };
        s.refresh(id, now);
        Ok(s.tickets
            .get(&id)
            .filter(|t| t.state.is_admitted())
            .cloned())
    }

    async fn consume(&self, id: TicketId, now: Timestamp) -> StoreResult<bool> {
        let mut s = self.write(now)?;
        s.refresh(id, now);
        if s.tickets.get(&id).is_some_and(|t| t.state.is_admitted()) {
            s.retire(id, TicketState::Ordered, now);
            return Ok(true);
        }
        Ok(false)
    }

    async fn active_scopes(&self) -> StoreResult<Vec<QueueScope>> {
        self.faults.check("queue store")?;
        let s = lock(&self.state, "queue store")?;
        let mut scopes: Vec<QueueScope> = s
            .lines
            .iter()
            .filter(|(_, l)| l.busy())
            .map(|(scope, _)| *scope)
            .collect();
        scopes.sort();
        Ok(scopes)
    }
}
