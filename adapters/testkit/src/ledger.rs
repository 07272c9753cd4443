//! Contracts of `PaymentLedger`.

use crate::fixtures::{payment_id, race};
use flash_core::Timestamp;
use flash_core::domain::Verdict;
use flash_core::ports::PaymentLedger;
use std::sync::Arc;

/// The first verdict stored for a payment is the one every later call gets.
pub async fn ledger_decides_once(ledger: Arc<dyn PaymentLedger>, _now: Timestamp) {
    let p = payment_id();
    assert_eq!(
        ledger.decide(p, Verdict::Fail).await.unwrap(),
        Verdict::Fail
    );
    assert_eq!(ledger.decide(p, Verdict::Ok).await.unwrap(), Verdict::Fail);
    let q = payment_id();
    assert_eq!(ledger.decide(q, Verdict::Ok).await.unwrap(), Verdict::Ok);
    assert_eq!(ledger.decide(q, Verdict::Fail).await.unwrap(), Verdict::Ok);
}

/// MUST be atomic: concurrent decisions with different proposals return one verdict.
pub async fn ledger_concurrent_decisions_agree(ledger: Arc<dyn PaymentLedger>, _now: Timestamp) {
    for _ in 0..10 {
        let p = payment_id();
        let verdicts = race(16, |i| {
            let ledger = ledger.clone();
            let proposed = if i % 2 == 0 {
                Verdict::Ok
            } else {
                Verdict::Fail
            };
            async move { ledger.decide(p, proposed).await.unwrap() }
        })
        .await;
        assert!(
            verdicts.iter().all(|v| *v == verdicts[0]),
            "concurrent decisions disagree: {verdicts:?}"
        );
    }
}

/// `published` is false until `mark_published`, per payment.
pub async fn ledger_tracks_published_results(ledger: Arc<dyn PaymentLedger>, _now: Timestamp) {
    let (p, q) = (payment_id(), payment_id());
    ledger.decide(p, Verdict::Ok).await.unwrap();
    assert!(!ledger.published(p).await.unwrap());
    ledger.mark_published(p).await.unwrap();
    assert!(ledger.published(p).await.unwrap());
    ledger.mark_published(p).await.unwrap();
    assert!(ledger.published(p).await.unwrap());
    assert!(!ledger.published(q).await.unwrap());
}
