//! Events: admin CRUD with the DRAFT → ONSALE → CLOSED status model; public reads.

mod cache;

pub use cache::{EVENT_CACHE_TTL, EventCache};

use crate::common::{AccessDenied, admin};
use crate::timeline::Tally;
use crate::{Ports, classify};
use flash_core::domain::{
    Event, EventNotice, EventPatch, EventStatus, LinePhase, Notice, PatchRejection, QueueMode,
    QueueScope,
};
use flash_core::ports::{
    Clock, EventDeletion, EventListing, EventStore, EventUpdate, Ids, QueueNotifier,
};
use flash_core::{Context, EventId, StoreError, Timestamp};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("Event not found")]
    NotFound,
    #[error("startsAt must be earlier than endsAt")]
    InvertedDates,
    #[error("{0}")]
    Rejected(String),
    #[error("Event has orders and cannot be deleted")]
    HasOrders,
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

classify!(EventError {
    NotFound => NotFound, "event_not_found";
    InvertedDates => Invalid, "invalid_dates";
    Rejected(_) => Invalid, "invalid_event_change";
    HasOrders => Conflict, "event_has_orders";
} store: Store access: Access);

/// A validated `POST /events` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub name: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub total_qty: i64,
    pub max_per_user: i64,
    pub price: i64,
    /// When the pre-queue opens (before `starts_at`); `None`: no pre-queue.
    pub prequeue_starts_at: Option<Timestamp>,
    pub queue_mode: flash_core::domain::QueueMode,
}

pub struct CreateEvent {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    events: Arc<dyn EventStore>,
}

impl CreateEvent {
    pub fn new(p: &Ports) -> Self {
        CreateEvent {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            events: p.events.clone(),
        }
    }

    /// Creates a DRAFT event with no stock taken.
    pub async fn handle(&self, cx: &Context, req: NewEvent) -> Result<Event, EventError> {
        admin(cx).map_err(EventError::Access)?;
        let now = self.clock.now();
        let event = Event {
            id: EventId(self.ids.uuid()),
            name: req.name,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            total_qty: req.total_qty,
            sold_qty: 0,
            held_qty: 0,
            max_per_user: req.max_per_user,
            price: req.price,
            status: EventStatus::Draft,
            prequeue_starts_at: req.prequeue_starts_at,
            queue_mode: req.queue_mode,
            created_at: now,
            updated_at: now,
        };
        event.check_dates().map_err(|r| match r {
            PatchRejection::InvertedDates => EventError::InvertedDates,
            other => EventError::Rejected(other.to_string()),
        })?;
        self.events
            .create(event.clone())
            .await
            .map_err(EventError::Store)?;
        Ok(event)
    }
}

pub struct UpdateEvent {
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventStore>,
    changes: Changes,
    tally: Arc<Tally>,
}

impl UpdateEvent {
    pub fn new(p: &Ports) -> Self {
        UpdateEvent {
            clock: p.clock.clone(),
            events: p.events.clone(),
            changes: Changes::new(p),
            tally: Arc::default(),
        }
    }

    /// Marks a sale's start in `tally` (the monitoring timeline's markers): an event put on sale
    /// and open at once (a pre-queue's start is marked by the promoter when it is drawn).
    pub fn counting(self, tally: Arc<Tally>) -> Self {
        UpdateEvent { tally, ..self }
    }

    /// Forgets a changed event in `cache`, so this instance sees the change at once.
    pub fn invalidating(self, cache: Arc<EventCache>) -> Self {
        UpdateEvent {
            changes: self.changes.forgetting(cache),
            ..self
        }
    }

    /// Applies the patch atomically against the current stock counters.
    pub async fn handle(
        &self,
        cx: &Context,
        id: EventId,
        patch: EventPatch,
    ) -> Result<Event, EventError> {
        admin(cx).map_err(EventError::Access)?;
        let now = self.clock.now();
        // Only a patch that puts the event on sale can start it; the status before is read for
        // the marker alone (a racing admin may mark a start twice, never change the sale).
        let was_on_sale = match patch.status {
            Some(EventStatus::Onsale) => self
                .events
                .get(id)
                .await
                .map_err(EventError::Store)?
                .map(|e| e.status == EventStatus::Onsale),
            _ => None,
        };
        let updated = self
            .events
            .update(id, patch, now)
            .await
            .map_err(EventError::Store);
        self.changes.changed(id).await;
        match updated? {
            EventUpdate::Updated(e) => {
                if was_on_sale == Some(false) && e.line_phase(now) == LinePhase::Open {
                    self.mark_start(&e);
                }
                Ok(e)
            }
            EventUpdate::NotFound => Err(EventError::NotFound),
            EventUpdate::Rejected(r) => Err(EventError::Rejected(r.to_string())),
        }
    }
}

impl UpdateEvent {
    /// Marks the start on the lines that sell `e`: its own, and the site-wide one unless only
    /// its own line admits buyers.
    fn mark_start(&self, e: &Event) {
        self.tally
            .phase_changed(QueueScope::Event(e.id), LinePhase::Open);
        if e.queue_mode == QueueMode::Global {
            self.tally
                .phase_changed(QueueScope::Global, LinePhase::Open);
        }
    }
}

pub struct DeleteEvent {
    events: Arc<dyn EventStore>,
    changes: Changes,
}

impl DeleteEvent {
    pub fn new(p: &Ports) -> Self {
        DeleteEvent {
            events: p.events.clone(),
            changes: Changes::new(p),
        }
    }

    /// Forgets a deleted event in `cache`, so this instance sees the deletion at once.
    pub fn invalidating(self, cache: Arc<EventCache>) -> Self {
        DeleteEvent {
            changes: self.changes.forgetting(cache),
            ..self
        }
    }

    /// Deletes an event without orders; financial records are never cascaded away.
    pub async fn handle(&self, cx: &Context, id: EventId) -> Result<(), EventError> {
        admin(cx).map_err(EventError::Access)?;
        let deleted = self.events.delete(id).await.map_err(EventError::Store);
        self.changes.changed(id).await;
        match deleted? {
            EventDeletion::Deleted => Ok(()),
            EventDeletion::NotFound => Err(EventError::NotFound),
            EventDeletion::HasOrders => Err(EventError::HasOrders),
        }
    }
}

pub struct GetEvent {
    events: Arc<dyn EventStore>,
    cache: Option<Arc<EventCache>>,
}

impl GetEvent {
    pub fn new(p: &Ports) -> Self {
        GetEvent {
            events: p.events.clone(),
            cache: None,
        }
    }

    /// Reads through `cache`: the event served is at most its TTL old.
    pub fn cached(self, cache: Arc<EventCache>) -> Self {
        GetEvent {
            cache: Some(cache),
            ..self
        }
    }

    /// Public read; a DRAFT event exists only for admins.
    pub async fn handle(&self, cx: &Context, id: EventId) -> Result<Event, EventError> {
        let event = EventCache::read(self.cache.as_deref(), self.events.as_ref(), id)
            .await
            .map_err(EventError::Store)?
            .ok_or(EventError::NotFound)?;
        let is_admin = cx.principal.as_ref().is_some_and(|p| p.is_admin());
        if event.status.is_public() || is_admin {
            Ok(Arc::unwrap_or_clone(event))
        } else {
            Err(EventError::NotFound)
        }
    }
}

pub struct ListEvents {
    events: Arc<dyn EventStore>,
    cache: Option<Arc<EventCache>>,
}

impl ListEvents {
    pub fn new(p: &Ports) -> Self {
        ListEvents {
            events: p.events.clone(),
            cache: None,
        }
    }

    /// Reads the public listing through `cache`: at most its TTL old. The admin listing is
    /// always read afresh.
    pub fn cached(self, cache: Arc<EventCache>) -> Self {
        ListEvents {
            cache: Some(cache),
            ..self
        }
    }

    /// `Public`: ONSALE and CLOSED by start; `Admin` (admins only): all, newest first.
    pub async fn handle(
        &self,
        cx: &Context,
        listing: EventListing,
    ) -> Result<Arc<Vec<Event>>, EventError> {
        if listing == EventListing::Admin {
            admin(cx).map_err(EventError::Access)?;
        } else if let Some(cache) = &self.cache {
            let public = cache.public_listing(self.events.as_ref()).await;
            return public.map_err(EventError::Store);
        }
        let events = self.events.list(listing).await.map_err(EventError::Store)?;
        Ok(Arc::new(events))
    }
}

/// What an admin's change of an event sets off: this instance's memory forgets it at once, and
/// every instance is told to forget it too.
struct Changes {
    cache: Option<Arc<EventCache>>,
    notifier: Arc<dyn QueueNotifier>,
}

impl Changes {
    fn new(p: &Ports) -> Self {
        Changes {
            cache: None,
            notifier: p.notifier.clone(),
        }
    }

    fn forgetting(self, cache: Arc<EventCache>) -> Self {
        Changes {
            cache: Some(cache),
            ..self
        }
    }

    /// Event `id` was changed or deleted (or an attempt failed half-way: forgetting is safe).
    async fn changed(&self, id: EventId) {
        if let Some(cache) = &self.cache {
            cache.forget(id);
        }
        let notice = Notice::Event(EventNotice { event_id: id });
        if let Err(e) = self.notifier.announce(notice).await {
            // The other instances read the event afresh within the cache's TTL anyway.
            tracing::warn!(error = %e, event = %id, "could not announce an event change");
        }
    }
}
