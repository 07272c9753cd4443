//! Which scope a ticket id belongs to, remembered in process.
//!
//! A ticket's scope never changes, but its index entry (`q:ticket:<id>`) lives in another Cluster
//! slot than the scope's keys, so a status read that had to look it up would cost two round
//! trips. Hot readers (status polling) ask this cache first and go to Redis for the index only
//! on a miss, or once an entry is older than a quarter of the live TTL (that read renews the
//! index entry, as every reader's does).
//!
//! Bounded: two generations of at most [`GENERATION`] entries; when the young one is full the old
//! one is dropped (a cheap approximation of least-recently-used). A forgotten entry only costs
//! the index read again.

use flash_core::domain::QueueScope;
use flash_core::{TicketId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries per generation: a table of 32,768 slots of ~50 bytes, so both stay under ~4 MiB.
pub(crate) const GENERATION: usize = 16_384;

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<TicketId, (QueueScope, Timestamp)>,
    old: HashMap<TicketId, (QueueScope, Timestamp)>,
}

#[derive(Debug, Default)]
pub(crate) struct ScopeCache {
    inner: Mutex<Generations>,
}

impl ScopeCache {
    /// The scope of `id` if it was remembered at or after `fresh_since`.
    pub(crate) fn get(&self, id: TicketId, fresh_since: Timestamp) -> Option<QueueScope> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.young
            .get(&id)
            .or_else(|| g.old.get(&id))
            .filter(|(_, at)| *at >= fresh_since)
            .map(|(scope, _)| *scope)
    }

    pub(crate) fn put(&self, id: TicketId, scope: QueueScope, at: Timestamp) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.young.len() >= GENERATION && !g.young.contains_key(&id) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(id, (scope, at));
    }

    pub(crate) fn forget(&self, id: TicketId) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.young.remove(&id);
        g.old.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> TicketId {
        TicketId(Uuid::from_u128(n))
    }

    #[test]
    fn remembers_until_stale_or_forgotten() {
        let c = ScopeCache::default();
        let t0 = Timestamp::from_millis(1_000);
        c.put(id(1), QueueScope::Global, t0);
        assert_eq!(c.get(id(1), t0), Some(QueueScope::Global));
        assert_eq!(c.get(id(1), Timestamp::from_millis(1_001)), None, "stale");
        assert_eq!(c.get(id(2), t0), None);
        c.forget(id(1));
        assert_eq!(c.get(id(1), t0), None);
    }

    #[test]
    fn stays_bounded_and_keeps_the_recent_generation() {
        let c = ScopeCache::default();
        let t0 = Timestamp::from_millis(0);
        let n = u128::try_from(GENERATION).unwrap_or(u128::MAX);
        for i in 0..(2 * n + 10) {
            c.put(id(i), QueueScope::Global, t0);
        }
        let g = c.inner.lock().unwrap_or_else(|e| e.into_inner());
        assert!(g.young.len() + g.old.len() <= 2 * GENERATION);
        drop(g);
        assert_eq!(c.get(id(2 * n + 9), t0), Some(QueueScope::Global));
        assert_eq!(c.get(id(0), t0), None, "the oldest generation was dropped");
    }
}
