//! Which scope a ticket id belongs to, remembered in process.
//!
//! A ticket's scope never changes, but its index entry (`q:ticket:<id>`) lives in another Cluster
//! slot than the scope's keys, so a status read that had to look it up would cost two round
//! trips. Hot readers (status polling) ask this cache first and go to Redis for the index only
//! on a miss, or once an entry is older than a quarter of the live TTL (that read renews the
//! index entry, as every reader's does).
//!
//! Bounded by its [`Budget`] (SPEC §11: ticket ids come from clients): two generations of at most
//! half the budget each; when the young one is full the old one is dropped (a cheap
//! approximation of least-recently-used) and counted as evicted. A forgotten entry only costs
//! the index read again.

use flash_core::budget::Budget;
use flash_core::domain::QueueScope;
use flash_core::{TicketId, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries remembered unless configured: tables of ~50-byte slots, so both stay under ~4 MiB.
pub const DEFAULT_SCOPE_CACHE_MAX: usize = 32_768;

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<TicketId, (QueueScope, Timestamp)>,
    old: HashMap<TicketId, (QueueScope, Timestamp)>,
}

#[derive(Debug)]
pub(crate) struct ScopeCache {
    inner: Mutex<Generations>,
    budget: Arc<Budget>,
}

impl Default for ScopeCache {
    fn default() -> Self {
        Self::new(Budget::new("queue_ticket_scopes", DEFAULT_SCOPE_CACHE_MAX))
    }
}

impl ScopeCache {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        ScopeCache {
            inner: Mutex::default(),
            budget,
        }
    }

    pub(crate) fn budget(&self) -> Arc<Budget> {
        self.budget.clone()
    }

    fn generation(&self) -> usize {
        (self.budget.max() / 2).max(1)
    }

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
        if g.young.len() >= self.generation() && !g.young.contains_key(&id) {
            let young = std::mem::take(&mut g.young);
            let dropped = std::mem::replace(&mut g.old, young);
            self.budget
                .count_evicted(u64::try_from(dropped.len()).unwrap_or(u64::MAX));
        }
        g.young.insert(id, (scope, at));
        self.budget.set_used(g.young.len() + g.old.len());
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
    fn stays_within_its_budget_and_keeps_the_recent_generation() {
        let c = ScopeCache::new(Budget::new("queue_ticket_scopes", 1_000));
        let t0 = Timestamp::from_millis(0);
        // A flood of distinct ticket ids, as from clients polling made-up ids.
        for i in 0..100_010 {
            c.put(id(i), QueueScope::Global, t0);
            assert!(c.budget.used() <= 1_000);
        }
        let g = c.inner.lock().unwrap_or_else(|e| e.into_inner());
        assert!(g.young.len() + g.old.len() <= 1_000);
        drop(g);
        assert!(c.budget.evicted() >= 99_000, "{}", c.budget.evicted());
        assert_eq!(c.get(id(100_009), t0), Some(QueueScope::Global));
        assert_eq!(c.get(id(0), t0), None, "the oldest generation was dropped");
    }
}
