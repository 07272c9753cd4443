//! The mock processor's verdict ledger and the health check.

use crate::{Faults, lock};
use async_trait::async_trait;
use flash_core::PaymentId;
use flash_core::domain::Verdict;
use flash_core::ports::{HealthCheck, PaymentLedger, StoreResult};
use std::collections::HashMap;
use std::sync::Mutex;

crate::fault::with_faults!(MemoryPaymentLedger);

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    verdict: Option<Verdict>,
    published: bool,
}

/// One verdict per payment, whatever the redeliveries.
#[derive(Debug, Default)]
pub struct MemoryPaymentLedger {
    entries: Mutex<HashMap<PaymentId, Entry>>,
    faults: Faults,
}

impl MemoryPaymentLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl PaymentLedger for MemoryPaymentLedger {
    async fn decide(&self, payment: PaymentId, proposed: Verdict) -> StoreResult<Verdict> {
        self.faults.check("payment ledger")?;
        let mut entries = lock(&self.entries, "payment ledger")?;
        let entry = entries.entry(payment).or_default();
        Ok(*entry.verdict.get_or_insert(proposed))
    }

    async fn published(&self, payment: PaymentId) -> StoreResult<bool> {
        self.faults.check("payment ledger")?;
        let entries = lock(&self.entries, "payment ledger")?;
        Ok(entries.get(&payment).is_some_and(|e| e.published))
    }

    async fn mark_published(&self, payment: PaymentId) -> StoreResult<()> {
        self.faults.check("payment ledger")?;
        let mut entries = lock(&self.entries, "payment ledger")?;
        entries.entry(payment).or_default().published = true;
        Ok(())
    }
}

/// Health of the in-memory backends: always up (see [`Faults`] for one that can go down).
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryHealth;

impl MemoryHealth {
    pub fn new() -> Self {
        MemoryHealth
    }
}

#[async_trait]
impl HealthCheck for MemoryHealth {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
