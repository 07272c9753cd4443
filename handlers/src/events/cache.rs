//! A short-lived, in-process memory of events for the enqueue hot path.
//!
//! `POST /queue/enqueue` for an event must refuse a missing, DRAFT or CLOSED event; reading the
//! event from the store on every call made PostgreSQL the bound of the gateway. Events (their
//! status and dates, which decide a join) are remembered for [`EVENT_CACHE_TTL`] (a missing event too, so unknown ids cannot flood the
//! store), measured on the [`Clock`] port from before the read. So an event taken off sale stops
//! accepting enqueues within that TTL on every gateway, and at once on the instance whose
//! handlers changed or deleted it (they invalidate the entry). Bounded: at most
//! [`MAX_ENTRIES`] events are remembered; beyond that the memory starts afresh.

use flash_core::domain::Event;
use flash_core::ports::{Clock, EventStore, StoreResult};
use flash_core::{EventId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a remembered event is trusted without reading the store again: the longest an event
/// taken off sale (or deleted, or rescheduled) on another instance may still be joined as before.
pub const EVENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most events remembered at once.
pub const MAX_ENTRIES: usize = 4_096;

/// Each event as read (`None`: no such event), and when.
type Entries = HashMap<EventId, (Option<Arc<Event>>, Timestamp)>;

pub struct EventCache {
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// The event as read (`None`: no such event) and when. Only its status and dates are used:
    /// its stock figures are as old as the entry.
    entries: Mutex<Entries>,
}

impl EventCache {
    pub fn new(clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        EventCache {
            clock,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// Event `id` (`None` if it does not exist) as read through `events` at most once per TTL;
    /// its status and dates are at most a TTL old, its stock figures too.
    pub async fn event(
        &self,
        events: &dyn EventStore,
        id: EventId,
    ) -> StoreResult<Option<Arc<Event>>> {
        let now = self.clock.now();
        if let Some((event, read_at)) = self.lock().get(&id).cloned()
            && now < read_at.plus(self.ttl)
            && now >= read_at
        {
            return Ok(event);
        }
        let event = events.get(id).await?.map(Arc::new);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&id) {
            entries.clear();
        }
        entries.insert(id, (event.clone(), now));
        Ok(event)
    }

    /// Forgets event `id` (it was just changed or deleted here).
    pub fn invalidate(&self, id: EventId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
