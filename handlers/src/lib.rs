//! `flash-handlers`: every use case of Flash Tickets, written against the ports of `flash-core`.
//!
//! A handler is a struct of ports with one `handle(&self, cx, request)` method returning a
//! per-use-case error that implements [`flash_core::Classify`]. Handlers never see HTTP, Lambda,
//! AMQP or SQS types and never read the system clock: time, ids and randomness come from ports.
//! This crate must not depend on any adapter or host crate.

pub mod auth;
pub mod common;
pub mod events;
pub mod orders;
pub mod pay;
pub mod payments;
pub mod queue;
pub mod settings;
pub mod stats;
pub mod timeline;

pub use common::{Doorman, Kick, Ports};
use flash_core::limits::Door;
use secrecy::ExposeSecret;
pub use settings::Settings;

/// Every handler, built once from the ports and settings; hosts share it behind an `Arc`.
pub struct Handlers {
    pub register: auth::Register,
    pub login: auth::Login,
    pub refresh: auth::Refresh,
    pub logout: auth::Logout,
    pub tokens: auth::Tokens,
    /// Access tokens verified against their session (hosts authenticate with it).
    pub access: auth::Access,
    pub join_queue: queue::JoinQueue,
    pub queue_status: queue::QueueStatus,
    pub enter_queue: queue::EnterQueue,
    pub leave_queue: queue::LeaveQueue,
    pub promote: queue::PromoteQueues,
    pub create_event: events::CreateEvent,
    pub update_event: events::UpdateEvent,
    pub delete_event: events::DeleteEvent,
    pub get_event: events::GetEvent,
    pub list_events: events::ListEvents,
    pub place_order: orders::PlaceOrder,
    pub get_order: orders::GetOrder,
    pub list_orders: orders::ListOrders,
    pub expire_holds: orders::ExpireHolds,
    pub request_payment: payments::RequestPayment,
    /// Shared with the bus consumer that applies results.
    pub apply_result: std::sync::Arc<payments::ApplyPaymentResult>,
    pub callback: payments::PaymentCallback,
    pub time_out_payments: payments::TimeOutPayments,
    /// Shared with the bus consumer of payment requests.
    pub process_payment: std::sync::Arc<pay::ProcessPayment>,
    pub overview: stats::Overview,
    /// The monitoring timeline: sampled every second by long-running hosts, read by admins.
    pub timeline: timeline::Timeline,
    /// Wakes the promoter when a slot frees or someone joins.
    pub promotion_kick: Kick,
    /// Wakes the outbox relay when a payment message is written.
    pub relay_kick: Kick,
    pub settings: Settings,
    clock: std::sync::Arc<dyn flash_core::ports::Clock>,
}

impl Handlers {
    /// The current time of the clock port (hosts use it to verify tokens).
    pub fn now(&self) -> flash_core::Timestamp {
        self.clock.now()
    }

    pub fn new(ports: &Ports, settings: Settings) -> Self {
        let promotion_kick = Kick::default();
        let relay_kick = Kick::default();
        let tokens = auth::Tokens::new(&settings.auth);
        let access = auth::Access::new(
            tokens.clone(),
            ports.sessions.clone(),
            ports.clock.clone(),
            settings.auth.session_check,
            settings.auth.access_ttl,
        );
        let gate = queue::GateTokens::new(settings.gate_secret().expose_secret().as_bytes());
        let hasher =
            auth::PasswordHasher::new(settings.auth.bcrypt_cost, settings.auth.hash_concurrency);
        let l = &settings.limits();
        let door = |door, per_addr, per_user| {
            Doorman::new(ports.limiter.clone(), door, per_addr, per_user)
        };
        let tally = std::sync::Arc::new(timeline::Tally::default());
        let join_queue = queue::JoinQueue::new(
            ports,
            promotion_kick.clone(),
            door(Door::Enqueue, l.enqueue_per_addr, l.enqueue_per_user),
        )
        .counting(tally.clone());
        let event_cache = join_queue.event_cache();
        Handlers {
            register: auth::Register::new(
                ports,
                &settings.auth,
                hasher.clone(),
                // Registration has no user yet: only the address limit applies.
                door(Door::Register, l.register_per_addr, l.register_per_addr),
            ),
            login: auth::Login::new(
                ports,
                tokens.clone(),
                hasher.clone(),
                door(Door::Login, l.login_per_addr, l.login_per_user),
            ),
            refresh: auth::Refresh::new(ports, tokens.clone(), access.clone()),
            logout: auth::Logout::new(ports, tokens.clone(), access.clone()),
            access,
            join_queue,
            queue_status: queue::QueueStatus::new(ports, &settings.queue, gate.clone()),
            enter_queue: queue::EnterQueue::new(ports, &settings.queue, gate.clone()),
            leave_queue: queue::LeaveQueue::new(ports, promotion_kick.clone()),
            promote: queue::PromoteQueues::new(ports, &settings.queue).counting(tally.clone()),
            create_event: events::CreateEvent::new(ports),
            update_event: events::UpdateEvent::new(ports)
                .invalidating(event_cache.clone())
                .counting(tally.clone()),
            delete_event: events::DeleteEvent::new(ports).invalidating(event_cache),
            get_event: events::GetEvent::new(ports),
            list_events: events::ListEvents::new(ports),
            place_order: orders::PlaceOrder::new(
                ports,
                &settings.orders,
                &settings.queue,
                gate.clone(),
                promotion_kick.clone(),
                door(Door::Order, l.order_per_addr, l.order_per_user),
            ),
            get_order: orders::GetOrder::new(ports),
            list_orders: orders::ListOrders::new(ports),
            expire_holds: orders::ExpireHolds::new(ports),
            request_payment: payments::RequestPayment::new(
                ports,
                &settings.payments,
                relay_kick.clone(),
                door(Door::Payment, l.payment_per_addr, l.payment_per_user),
            ),
            apply_result: std::sync::Arc::new(payments::ApplyPaymentResult::new(ports)),
            callback: payments::PaymentCallback::new(ports, &settings.payments),
            time_out_payments: payments::TimeOutPayments::new(ports, &settings.payments),
            process_payment: std::sync::Arc::new(pay::ProcessPayment::new(
                ports,
                &settings.pay,
                &settings.payments.result_queue,
            )),
            overview: stats::Overview::new(ports, &settings.queue),
            timeline: timeline::Timeline::new(ports, &settings.queue, tally),
            tokens,
            clock: ports.clock.clone(),
            promotion_kick,
            relay_kick,
            settings,
        }
    }
}
