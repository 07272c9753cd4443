//! A short-lived, in-process memory of event statuses for the enqueue hot path.
//!
//! `POST /queue/enqueue` for an event must refuse a missing, DRAFT or CLOSED event; reading the
//! event from the store on every call made PostgreSQL the bound of the gateway. Statuses are
//! remembered for [`EVENT_STATUS_TTL`] (a missing event too, so unknown ids cannot flood the
//! store), measured on the [`Clock`] port from before the read. So an event taken off sale stops
//! accepting enqueues within that TTL on every gateway, and at once on the instance whose
//! handlers changed or deleted it (they invalidate the entry). Bounded: at most
//! [`MAX_ENTRIES`] events are remembered; beyond that the memory starts afresh.

use flash_core::domain::EventStatus;
use flash_core::ports::{Clock, EventStore, StoreResult};
use flash_core::{EventId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an event status is trusted without reading the store again: the longest an event
/// taken off sale (or deleted) on another instance may still be joined.
pub const EVENT_STATUS_TTL: Duration = Duration::from_secs(1);

/// Most events remembered at once.
pub const MAX_ENTRIES: usize = 4_096;

pub struct EventStatusCache {
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// Status (`None`: no such event) and when it was read.
    entries: Mutex<HashMap<EventId, (Option<EventStatus>, Timestamp)>>,
}

impl EventStatusCache {
    pub fn new(clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        EventStatusCache {
            clock,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The status of event `id` (`None` if it does not exist), read through `events` at most
    /// once per TTL.
    pub async fn status(
        &self,
        events: &dyn EventStore,
        id: EventId,
    ) -> StoreResult<Option<EventStatus>> {
        let now = self.clock.now();
        if let Some((status, read_at)) = self.lock().get(&id).copied()
            && now < read_at.plus(self.ttl)
            && now >= read_at
        {
            return Ok(status);
        }
        let status = events.get(id).await?.map(|e| e.status);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&id) {
            entries.clear();
        }
        entries.insert(id, (status, now));
        Ok(status)
    }

    /// Forgets event `id` (it was just changed or deleted here).
    pub fn invalidate(&self, id: EventId) {
        self.lock().remove(&id);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<EventId, (Option<EventStatus>, Timestamp)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
