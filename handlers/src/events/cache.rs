//! A short-lived, in-process memory of events for the hot paths that read them.
//!
//! `POST /queue/enqueue` for an event must refuse a missing, DRAFT or CLOSED event, and
//! `GET /events` and `GET /events/:id` are what a crowd polls before a sale; reading the store on
//! every call made PostgreSQL their bound. Events (a missing one too, so unknown ids cannot flood
//! the store) and the public listing are remembered for [`EVENT_CACHE_TTL`], measured on the
//! [`Clock`] port from before the read: their status, dates and stock figures are at most that
//! old. An admin's change or deletion is forgotten at once on the instance that made it (its
//! handlers call [`EventCache::forget`]) and, through the queue notifier, on every other one
//! that follows the announcements (the hosts' `jobs::spawn_event_follower`); one that missed an announcement
//! still reads afresh within the TTL. Bounded: at most [`MAX_ENTRIES`] events are remembered;
//! beyond that the memory starts afresh.

use flash_core::domain::Event;
use flash_core::ports::{Clock, EventListing, EventStore, StoreResult};
use flash_core::{EventId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a remembered event or listing is trusted without reading the store again: the
/// longest an event changed on an instance that could not announce it may still be served (and
/// joined) as before, and how old the stock figures served may be.
pub const EVENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most events remembered at once.
pub const MAX_ENTRIES: usize = 4_096;

#[derive(Default)]
struct Memory {
    /// Each event as read (`None`: no such event), and when.
    events: HashMap<EventId, (Option<Arc<Event>>, Timestamp)>,
    /// The public listing as read, and when.
    listing: Option<(Arc<Vec<Event>>, Timestamp)>,
    /// Bumped by every [`EventCache::forget`]: a read that started before a change must not
    /// store what it read after it.
    generation: u64,
}

pub struct EventCache {
    clock: Arc<dyn Clock>,
    ttl: Duration,
    memory: Mutex<Memory>,
}

impl EventCache {
    pub fn new(clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        EventCache {
            clock,
            ttl,
            memory: Mutex::default(),
        }
    }

    /// Event `id` (`None` if it does not exist) as read through `events` at most once per TTL.
    pub async fn event(
        &self,
        events: &dyn EventStore,
        id: EventId,
    ) -> StoreResult<Option<Arc<Event>>> {
        self.read_through(
            |m| m.events.get(&id),
            async { Ok(events.get(id).await?.map(Arc::new)) },
            |m, entry| {
                if m.events.len() >= MAX_ENTRIES && !m.events.contains_key(&id) {
                    m.events.clear();
                }
                m.events.insert(id, entry);
            },
        )
        .await
    }

    /// Event `id` through `cache` when there is one, otherwise straight from `events`.
    pub async fn read(
        cache: Option<&EventCache>,
        events: &dyn EventStore,
        id: EventId,
    ) -> StoreResult<Option<Arc<Event>>> {
        match cache {
            Some(cache) => cache.event(events, id).await,
            None => Ok(events.get(id).await?.map(Arc::new)),
        }
    }

    /// The public listing (ONSALE and CLOSED events by start) as read through `events` at most
    /// once per TTL.
    pub async fn public_listing(&self, events: &dyn EventStore) -> StoreResult<Arc<Vec<Event>>> {
        self.read_through(
            |m| m.listing.as_ref(),
            async { Ok(Arc::new(events.list(EventListing::Public).await?)) },
            |m, entry| m.listing = Some(entry),
        )
        .await
    }

    /// What `remembered` finds if it is still fresh, else what `read` gives, kept by `keep`
    /// unless something was forgotten meanwhile (the read may predate that change).
    async fn read_through<T: Clone>(
        &self,
        remembered: impl FnOnce(&Memory) -> Option<&(T, Timestamp)>,
        read: impl Future<Output = StoreResult<T>>,
        keep: impl FnOnce(&mut Memory, (T, Timestamp)),
    ) -> StoreResult<T> {
        let now = self.clock.now();
        let generation = {
            let memory = self.lock();
            if let Some((value, read_at)) = remembered(&memory)
                && self.fresh(*read_at, now)
            {
                return Ok(value.clone());
            }
            memory.generation
        };
        let value = read.await?;
        let mut memory = self.lock();
        if memory.generation == generation {
            keep(&mut memory, (value.clone(), now));
        }
        Ok(value)
    }

    /// Forgets event `id` and the listing: it was just changed or deleted, here or elsewhere.
    pub fn forget(&self, id: EventId) {
        let mut memory = self.lock();
        memory.events.remove(&id);
        memory.listing = None;
        memory.generation += 1;
    }

    /// Forgets everything (announcements may have been missed).
    pub fn forget_all(&self) {
        let mut memory = self.lock();
        memory.events.clear();
        memory.listing = None;
        memory.generation += 1;
    }

    /// Whether what was read at `read_at` may still be served at `now` (a clock that went back
    /// reads afresh).
    fn fresh(&self, read_at: Timestamp, now: Timestamp) -> bool {
        now >= read_at && now < read_at.plus(self.ttl)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}
