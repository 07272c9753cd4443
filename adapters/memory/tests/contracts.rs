//! Every `flash-testkit` contract, run against the in-memory adapters.

use flash_adapter_memory::*;
use flash_testkit::{BusPorts, ShopPorts, T0};
use std::sync::Arc;

fn shop() -> ShopPorts {
    let shop = Arc::new(MemoryShop::default());
    let backdoor = Arc::clone(&shop);
    ShopPorts::from_one(shop).with_tamper(Arc::new(move |id, status| {
        backdoor.force_order_status(id, status, T0);
        Box::pin(async {})
    }))
}

fn bus() -> BusPorts {
    let bus = MemoryBus::new(3);
    let queue = "payments_request".to_owned();
    BusPorts {
        consumer: Arc::new(bus.consumer(&queue)),
        dead_letters: Arc::new(bus.consumer(&dlq_name(&queue))),
        max_attempts: bus.max_attempts(),
        queue,
        bus: Arc::new(bus),
    }
}

flash_testkit::basic_contracts!(
    clock: Arc::new(flash_runtime::clock::SystemClock),
    ids: Arc::new(MemoryIds::new()),
    random: Arc::new(ThreadRandom::new()),
    health: Arc::new(MemoryHealth::new()),
);
flash_testkit::user_store_contracts!(Arc::new(MemoryUserStore::new()));
flash_testkit::session_store_contracts!(Arc::new(MemorySessionStore::new()));
flash_testkit::rate_limiter_contracts!(Arc::new(MemoryRateLimiter::new()));
flash_testkit::queue_store_contracts!(Arc::new(MemoryQueueStore::new()));
flash_testkit::queue_notifier_contracts!(Arc::new(MemoryQueueNotifier::new()));
flash_testkit::shop_contracts!(shop());
flash_testkit::bus_contracts!(bus());
flash_testkit::payment_ledger_contracts!(Arc::new(MemoryPaymentLedger::new()));
flash_testkit::timeline_store_contracts!(Arc::new(MemoryTimeline::new()));

/// The fake clock and the seeded random source meet the same contracts.
mod fakes {
    use super::*;

    flash_testkit::basic_contracts!(
        clock: Arc::new(FakeClock::default()),
        ids: Arc::new(MemoryIds::new()),
        random: Arc::new(SeededRandom::new(42)),
        health: Arc::new(Faults::new()),
    );
}
