//! The waiting queue: join, status, enter, leave, and promotion under the admission capacity.

mod gate;

pub use gate::{GateError, GatePass, GateTokens};

use crate::events::{EVENT_CACHE_TTL, EventCache};
use crate::settings::QueueSettings;
use crate::timeline::Tally;
use crate::{Doorman, Kick, Ports, classify};
use flash_core::domain::{
    EventStatus, LineNotice, LinePhase, LineReading, Notice, Place, QueueMode, QueueNotice,
    QueueScope, QueueStats, Ticket, TicketState, TicketView,
};
use flash_core::ports::{Clock, EventStore, Ids, QueueNotifier, QueueStore};
use flash_core::{Context, StoreError, TicketId, Timestamp};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{AccessDenied, caller};

// ---------------------------------------------------------------------------------------------
// Join (enqueue)

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("Event not found")]
    EventNotFound,
    #[error("Event is not on sale")]
    EventClosed,
    #[error("Queue is not open yet")]
    NotOpenYet,
    #[error("Too many queue requests, retry later")]
    RateLimited(u64),
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

classify!(JoinError {
    EventNotFound => NotFound, "event_not_found";
    EventClosed => Invalid, "event_not_on_sale";
    NotOpenYet => Invalid, "queue_not_open_yet";
    RateLimited(_) => RateLimited, "rate_limited";
} store: Store access: Access retry: RateLimited);

pub struct JoinQueue {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    queue: Arc<dyn QueueStore>,
    events: Arc<dyn EventStore>,
    door: Doorman,
    kick: Kick,
    /// Event statuses for [`EVENT_CACHE_TTL`], so a join does not read the event store.
    event_cache: Arc<EventCache>,
    tally: Arc<Tally>,
}

impl JoinQueue {
    /// `door` counts joins per client address and per user.
    pub fn new(p: &Ports, kick: Kick, door: Doorman) -> Self {
        JoinQueue {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            queue: p.queue.clone(),
            events: p.events.clone(),
            door,
            kick,
            event_cache: Arc::new(EventCache::new(p.clock.clone(), EVENT_CACHE_TTL)),
            tally: Arc::default(),
        }
    }

    /// Counts each new ticket in `tally` (the monitoring timeline's arrivals).
    pub fn counting(mut self, tally: Arc<Tally>) -> Self {
        self.tally = tally;
        self
    }

    /// The event-status memory of this handler, for the event handlers to invalidate.
    pub fn event_cache(&self) -> Arc<EventCache> {
        self.event_cache.clone()
    }

    /// Puts the caller in line for `scope`, or returns their live ticket there. Between an
    /// event's `prequeueStartsAt` and `startsAt` the ticket goes into the pre-queue's lottery, at
    /// a draw from the thread's CSPRNG (SPEC §4); before `prequeueStartsAt` the line is shut.
    pub async fn handle(&self, cx: &Context, scope: QueueScope) -> Result<Ticket, JoinError> {
        let user = caller(cx).map_err(JoinError::Access)?.user;
        let now = self.clock.now();
        let mut prequeue = None;
        // The event sells only through this line: its orders start with the line.
        let mut own_line = false;
        if let QueueScope::Event(id) = scope {
            let event = self
                .event_cache
                .event(self.events.as_ref(), id)
                .await
                .map_err(JoinError::Store)?
                .ok_or(JoinError::EventNotFound)?;
            match event.status {
                EventStatus::Onsale => {}
                // Unreleased events are invisible to buyers.
                EventStatus::Draft => return Err(JoinError::EventNotFound),
                EventStatus::Closed => return Err(JoinError::EventClosed),
            }
            if event.line_not_open_yet(now) {
                return Err(JoinError::NotOpenYet);
            }
            if event.in_prequeue(now) {
                prequeue = Some(event.starts_at);
            }
            own_line = event.queue_mode == QueueMode::Event;
        }
        if let Some(wait) = self
            .door
            .check(cx, Some(user), now)
            .await
            .map_err(JoinError::Store)?
        {
            return Err(JoinError::RateLimited(wait));
        }
        let place = match prequeue {
            // ThreadRng: ChaCha seeded from the operating system, a CSPRNG.
            Some(starts_at) => Place::Lottery {
                draw: rand::rng().random(),
                starts_at,
            },
            None => Place::Arrival,
        };
        let ticket = TicketId(self.ids.uuid());
        let enqueued = self
            .queue
            .enqueue_at(ticket, user, scope, now, place)
            .await
            .map_err(JoinError::Store)?;
        if enqueued.created {
            self.tally.arrival(scope, own_line);
            self.kick.kick();
        }
        Ok(enqueued.ticket)
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// What `GET /queue/status` and the socket `queue:update` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketStatus {
    /// The ticket, its state as reported ([`LinePhase::report`]): a QUEUED ticket of a sold-out
    /// line reads SOLD_OUT, a live ticket of a closed one CLOSED.
    pub ticket: Ticket,
    /// QUEUED only: QUEUED tickets ahead + 1.
    pub position: Option<u64>,
    /// READY only.
    pub gate_token: Option<String>,
    /// QUEUED tickets of the scope.
    pub queue_size: u64,
    /// QUEUED only, from the measured admission rate.
    pub estimated_wait_seconds: Option<u64>,
    pub ready_capacity: u64,
    /// PREQUEUE only: when the sale starts and the lottery is drawn.
    pub starts_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSummary {
    pub queue_size: u64,
    pub admitted: u64,
    pub ready_capacity: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("Queue ticket not found")]
    NotFound,
    #[error(transparent)]
    Store(StoreError),
}

classify!(StatusError {
    NotFound => NotFound, "ticket_not_found";
} store: Store);

pub struct QueueStatus {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    gate: GateTokens,
    capacity: u64,
    gate_ttl: Duration,
}

impl QueueStatus {
    pub fn new(p: &Ports, s: &QueueSettings, gate: GateTokens) -> Self {
        QueueStatus {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            gate,
            capacity: s.capacity,
            gate_ttl: s.gate_ttl,
        }
    }

    pub async fn handle(&self, _cx: &Context, id: TicketId) -> Result<TicketStatus, StatusError> {
        // One store call: on Redis, one script instead of ticket + stats + position.
        let view = self
            .queue
            .status(id, self.clock.now())
            .await
            .map_err(StatusError::Store)?
            .ok_or(StatusError::NotFound)?;
        Ok(self.status_of(view))
    }

    /// Size and capacity of one queue (the socket room summary).
    pub async fn summary(&self, scope: QueueScope) -> Result<QueueSummary, StatusError> {
        let stats = self
            .queue
            .stats(scope, self.clock.now())
            .await
            .map_err(StatusError::Store)?;
        Ok(QueueSummary {
            queue_size: stats.queued,
            admitted: stats.admitted,
            ready_capacity: self.capacity,
        })
    }

    /// Builds the status of a ticket already read (the socket host reuses it on pushes).
    pub async fn describe(
        &self,
        ticket: Ticket,
        now: Timestamp,
    ) -> Result<TicketStatus, StatusError> {
        let stats = self
            .queue
            .stats(ticket.scope, now)
            .await
            .map_err(StatusError::Store)?;
        let position = if ticket.state == TicketState::Queued {
            self.queue
                .position(&ticket)
                .await
                .map_err(StatusError::Store)?
        } else {
            None
        };
        Ok(self.status_of(TicketView {
            ticket,
            position,
            stats,
        }))
    }

    fn status_of(&self, view: TicketView) -> TicketStatus {
        let TicketView {
            ticket,
            position,
            stats,
        } = view;
        let ticket = Ticket {
            state: stats.phase.report(ticket.state),
            ..ticket
        };
        let position = position.filter(|_| ticket.state == TicketState::Queued);
        let estimated_wait_seconds =
            position.map(|p| wait_estimate(p, &stats, self.capacity, self.gate_ttl));
        let gate_token = match (ticket.state, ticket.expires_at) {
            (TicketState::Ready, Some(expires_at)) => Some(self.gate.sign(&GatePass {
                ticket: ticket.id,
                user: ticket.user,
                scope: ticket.scope,
                expires_at,
            })),
            (TicketState::Ready, None)
            | (TicketState::Queued, _)
            | (TicketState::Used, _)
            | (TicketState::Ordered, _)
            | (TicketState::Expired, _)
            | (TicketState::Prequeue, _)
            | (TicketState::SoldOut, _)
            | (TicketState::Closed, _) => None,
        };
        let starts_at = match (ticket.state, stats.phase) {
            (TicketState::Prequeue, LinePhase::Prequeue { starts_at }) => Some(starts_at),
            _ => None,
        };
        TicketStatus {
            ticket,
            position,
            gate_token,
            queue_size: stats.queued,
            estimated_wait_seconds,
            ready_capacity: self.capacity,
            starts_at,
        }
    }
}

/// Seconds until `position` is admitted (0 for none) at the line's admission rate, the
/// exponentially weighted mean over its stats window
/// ([`QueueStats::decayed_admissions_milli`] ÷ `window_ms`), never assuming a rate below one
/// full `capacity` per admission `ttl` (every slot recycles at least that fast).
pub fn wait_estimate(position: u64, stats: &QueueStats, capacity: u64, ttl: Duration) -> u64 {
    if position == 0 {
        return 0;
    }
    let measured = if stats.window_ms == 0 {
        0.0
    } else {
        stats.decayed_admissions_milli as f64 / stats.window_ms as f64
    };
    let floor = capacity as f64 / ttl.as_secs_f64().max(0.001);
    let rate = measured.max(floor).max(f64::MIN_POSITIVE);
    (position as f64 / rate).ceil() as u64
}

// ---------------------------------------------------------------------------------------------
// Enter

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("Queue ticket not found")]
    NotFound,
    #[error("Ticket does not belong to this user")]
    NotOwner,
    #[error("Ticket is not ready to enter")]
    NotReady,
    #[error("Gate token mismatch")]
    GateMismatch,
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

classify!(EnterError {
    NotFound => NotFound, "ticket_not_found";
    NotOwner => Unauthorized, "ticket_not_owned";
    NotReady => Unauthorized, "ticket_not_ready";
    GateMismatch => Unauthorized, "gate_token_mismatch";
} store: Store access: Access);

pub struct EnterQueue {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    gate: GateTokens,
    gate_ttl: Duration,
}

impl EnterQueue {
    pub fn new(p: &Ports, s: &QueueSettings, gate: GateTokens) -> Self {
        EnterQueue {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            gate,
            gate_ttl: s.gate_ttl,
        }
    }

    /// READY → USED with the ticket's own gate token. Entering again while USED succeeds.
    pub async fn handle(
        &self,
        cx: &Context,
        id: TicketId,
        gate_token: &str,
    ) -> Result<Ticket, EnterError> {
        let user = caller(cx).map_err(EnterError::Access)?.user;
        let now = self.clock.now();
        let ticket = self
            .queue
            .ticket(id, now)
            .await
            .map_err(EnterError::Store)?
            .ok_or(EnterError::NotFound)?;
        if ticket.user != user {
            return Err(EnterError::NotOwner);
        }
        if !ticket.state.is_admitted() {
            return Err(EnterError::NotReady);
        }
        let pass = self
            .gate
            .verify(gate_token, now)
            .map_err(|_| EnterError::GateMismatch)?;
        if pass.ticket != ticket.id || pass.user != user {
            return Err(EnterError::GateMismatch);
        }
        if ticket.state == TicketState::Used {
            return Ok(ticket);
        }
        let after = self
            .queue
            .enter(id, user, now, self.gate_ttl)
            .await
            .map_err(EnterError::Store)?
            .ok_or(EnterError::NotFound)?;
        if after.state == TicketState::Used {
            Ok(after)
        } else {
            // Expired between the read and the transition.
            Err(EnterError::NotReady)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Leave

pub struct LeaveQueue {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    kick: Kick,
}

impl LeaveQueue {
    pub fn new(p: &Ports, kick: Kick) -> Self {
        LeaveQueue {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            kick,
        }
    }

    /// Removes the caller's ticket from the line (or frees its slot) at once.
    pub async fn handle(&self, cx: &Context, id: TicketId) -> Result<Ticket, EnterError> {
        let user = caller(cx).map_err(EnterError::Access)?.user;
        let ticket = self
            .queue
            .leave(id, user, self.clock.now())
            .await
            .map_err(EnterError::Store)?
            .ok_or(EnterError::NotFound)?;
        self.kick.kick();
        Ok(ticket)
    }
}

// ---------------------------------------------------------------------------------------------
// Promotion

/// One promotion pass over every active queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promoted {
    pub tickets: Vec<Ticket>,
    /// Lines whose phase this pass changed (sold out, re-opened, closed), with the new phase.
    pub phases: Vec<(QueueScope, LinePhase)>,
    /// The earliest start of a line still in its pre-queue: a host runs a pass then, so that
    /// the line opens at its start and not up to a promotion period later.
    pub opens_at: Option<Timestamp>,
}

/// Admission notices sent at once by the promoter.
const ANNOUNCE_IN_FLIGHT: usize = 64;

pub struct PromoteQueues {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    events: Arc<dyn EventStore>,
    notifier: Arc<dyn QueueNotifier>,
    capacity: u64,
    gate_ttl: Duration,
    tally: Arc<Tally>,
}

impl PromoteQueues {
    pub fn new(p: &Ports, s: &QueueSettings) -> Self {
        PromoteQueues {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            events: p.events.clone(),
            notifier: p.notifier.clone(),
            capacity: s.capacity,
            gate_ttl: s.gate_ttl,
            tally: Arc::default(),
        }
    }

    /// Counts each admission in `tally` (the monitoring timeline's admissions).
    pub fn counting(mut self, tally: Arc<Tally>) -> Self {
        self.tally = tally;
        self
    }

    /// Sets each event line's phase from its event (SPEC §4: sold out closes the line, stock
    /// coming back re-opens it), then admits the oldest QUEUED tickets of every open line up to
    /// the capacity, and announces each change so that those it concerns hear of it at once.
    /// Safe to run from several instances: the store's phase and promotion steps are atomic, and
    /// only the pass that changed a phase announces it.
    pub async fn handle(&self, _cx: &Context) -> Result<Promoted, StoreError> {
        let now = self.clock.now();
        let mut promoted = Promoted::default();
        for scope in self.queue.active_scopes().await? {
            // The admitted count read before the stock: an admission spent after this reading
            // (its hold taken, maybe not yet seen in the stock read next), or made by another
            // promoter since and spent, still counts below, so a pass never lets in more buyers
            // than the tickets it saw left. `now` is the pass's start, at or before the read.
            let reading = match scope.event() {
                Some(_) => Some(LineReading {
                    admitted: self.queue.stats(scope, now).await?.admitted,
                    at: now,
                }),
                None => None,
            };
            let line = self.keep_phase(scope, now).await;
            if let Some(phase) = line.changed {
                promoted.phases.push((scope, phase));
                self.tally.phase_changed(scope, phase);
            }
            if let Some(LinePhase::Prequeue { starts_at }) = line.phase {
                promoted.opens_at = Some(promoted.opens_at.map_or(starts_at, |t| t.min(starts_at)));
            }
            // Never more buyers admitted than tickets left to sell (each needs at least one):
            // the rest wait, and hear SOLD_OUT, instead of being let in to be refused.
            let capacity = line
                .available
                .map_or(self.capacity, |a| self.capacity.min(a));
            let tickets = self
                .queue
                .promote_counting(scope, capacity, reading, now, self.gate_ttl)
                .await?;
            tracing::debug!(%scope, ?reading, available = ?line.available, capacity, admitted = tickets.len(), "promotion pass");
            self.tally.admissions(scope, tickets.len() as u64);
            // A promotion may admit thousands at once: announce them a batch at a time, not
            // one round trip after another.
            for batch in tickets.chunks(ANNOUNCE_IN_FLIGHT) {
                let sent = batch.iter().map(|t| {
                    self.notifier.announce(Notice::Ticket(QueueNotice {
                        ticket_id: t.id,
                        user_id: t.user,
                        scope: t.scope.to_string(),
                        state: t.state,
                        expires_at: t.expires_at.map(Timestamp::millis),
                    }))
                });
                for r in futures::future::join_all(sent).await {
                    if let Err(e) = r {
                        // Owners still learn of it on their next status read.
                        tracing::warn!(error = %e, "could not announce an admission");
                    }
                }
            }
            promoted.tickets.extend(tickets);
        }
        Ok(promoted)
    }
    /// Brings an event line's stored phase in line with its event (read fresh: a sell-out must
    /// close the line within a pass, not a cache lifetime) and announces a change. A store that
    /// cannot answer leaves the phase as it was; the next pass tries again.
    async fn keep_phase(&self, scope: QueueScope, now: Timestamp) -> LineCheck {
        let Some(event) = scope.event() else {
            return LineCheck::default();
        };
        let (phase, available) = match self.events.get(event).await {
            Ok(Some(e)) => (
                e.line_phase(now),
                Some(u64::try_from(e.available()).unwrap_or(0)),
            ),
            // Deleted: nobody can buy there any more.
            Ok(None) => (LinePhase::Closed, Some(0)),
            Err(e) => {
                tracing::warn!(error = %e, %scope, "could not read the event of a line; its phase is unchanged");
                return LineCheck::default();
            }
        };
        let unchanged = LineCheck {
            changed: None,
            phase: Some(phase),
            available,
        };
        match self.queue.set_phase(scope, phase, now).await {
            Ok(true) => {}
            Ok(false) => return unchanged,
            Err(e) => {
                tracing::warn!(error = %e, %scope, "could not set the phase of a line");
                return unchanged;
            }
        }
        tracing::info!(%scope, phase = phase.as_str(), "line phase changed");
        let notice = Notice::Line(LineNotice {
            scope: scope.to_string(),
            phase,
        });
        if let Err(e) = self.notifier.announce(notice).await {
            // Those waiting still read the phase on their next status poll.
            tracing::warn!(error = %e, %scope, "could not announce a line phase");
        }
        LineCheck {
            changed: Some(phase),
            phase: Some(phase),
            available,
        }
    }
}

/// What a promotion pass learnt of one event line from its event.
#[derive(Debug, Default)]
struct LineCheck {
    /// The phase this pass changed the line to.
    changed: Option<LinePhase>,
    /// The line's phase as this pass decided it, when the event could be read.
    phase: Option<LinePhase>,
    /// Tickets left to sell, when the event could be read.
    available: Option<u64>,
}
