//! Budgets: what a process keeps on behalf of clients it cannot trust — rate-limit windows,
//! remembered ticket scopes, idempotency records — counted against a configured most (SPEC §11).
//!
//! An adapter that keeps such state holds a [`Budget`], never keeps more than its `max`, evicts
//! when full (each adapter says what it evicts first and what an eviction costs), and reports
//! how much it holds; the host lists every budget of the process in `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One bounded store of client-driven state.
#[derive(Debug)]
pub struct Budget {
    name: &'static str,
    max: usize,
    used: AtomicU64,
    evicted: AtomicU64,
}

impl Budget {
    /// A budget of at most `max` entries (at least one).
    pub fn new(name: &'static str, max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            name,
            max: max.max(1),
            used: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// The metric label: `rate_limit_keys`, `queue_ticket_scopes`, `idempotency_records`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether `len` entries leave no room for another.
    pub fn is_full(&self, len: usize) -> bool {
        len >= self.max
    }

    /// Records how many entries the adapter holds now.
    pub fn set_used(&self, len: usize) {
        self.used
            .store(u64::try_from(len).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records `n` entries forgotten early because the budget was full.
    pub fn count_evicted(&self, n: u64) {
        self.evicted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// Every budget of a process, for `/metrics`; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Budgets(Arc<Mutex<Vec<Arc<Budget>>>>);

impl Budgets {
    pub fn add(&self, budget: Arc<Budget>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(budget);
    }

    pub fn all(&self) -> Vec<Arc<Budget>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_counts_what_its_adapter_reports() {
        let b = Budget::new("rate_limit_keys", 0);
        assert_eq!(b.max(), 1, "at least one entry");
        assert!(!b.is_full(0) && b.is_full(1));
        b.set_used(1);
        b.count_evicted(3);
        b.count_evicted(2);
        assert_eq!((b.used(), b.evicted()), (1, 5));
        let all = Budgets::default();
        all.add(b.clone());
        all.add(Budget::new("idempotency_records", 10));
        let names: Vec<_> = all.all().iter().map(|b| b.name()).collect();
        assert_eq!(names, ["rate_limit_keys", "idempotency_records"]);
    }
}
