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
use std::sync::Arc;

/// What runs without a request: promotion, the sweepers, the two bus consumers and what
/// monitoring reads. It needs no token secret, so the pay processor and the results and sweeper
/// functions build only this; the HTTP hosts build [`Handlers`] over it.
pub struct Work {
    pub promote: queue::PromoteQueues,
    pub expire_holds: orders::ExpireHolds,
    pub time_out_payments: payments::TimeOutPayments,
    /// The payment-results consumer's handler.
    pub apply_result: Arc<payments::ApplyPaymentResult>,
    /// The payment processor's handler (the payment-requests consumer).
    pub process_payment: Arc<pay::ProcessPayment>,
    pub overview: stats::Overview,
    /// The monitoring timeline: sampled every second by long-running hosts, read by admins.
    pub timeline: timeline::Timeline,
    /// Wakes the promoter when a slot frees or someone joins.
    pub promotion_kick: Kick,
    /// Wakes the outbox relay when a payment message is written.
    pub relay_kick: Kick,
    /// The configuration as given: token secrets are read only where [`Handlers`] are built.
    pub settings: Settings,
    /// What the request handlers count for the timeline.
    tally: Arc<timeline::Tally>,
    clock: Arc<dyn flash_core::ports::Clock>,
}

impl Work {
    pub fn new(ports: &Ports, settings: Settings) -> Self {
        let tally = Arc::new(timeline::Tally::default());
        Work {
            promote: queue::PromoteQueues::new(ports, &settings.queue).counting(tally.clone()),
            expire_holds: orders::ExpireHolds::new(ports),
            time_out_payments: payments::TimeOutPayments::new(ports, &settings.payments),
            apply_result: Arc::new(payments::ApplyPaymentResult::new(ports)),
            process_payment: Arc::new(pay::ProcessPayment::new(
                ports,
                &settings.pay,
                &settings.payments.result_queue,
            )),
            overview: stats::Overview::new(ports, &settings.queue),
            timeline: timeline::Timeline::new(ports, &settings.queue, tally.clone()),
            promotion_kick: Kick::default(),
            relay_kick: Kick::default(),
            settings,
            tally,
            clock: ports.clock.clone(),
        }
    }

    /// The current time of the clock port.
    pub fn now(&self) -> flash_core::Timestamp {
        self.clock.now()
    }
}

/// The request handlers of the HTTP API and the Socket.IO namespace, built once over the
/// [`Work`] they kick and count into; hosts share them behind an `Arc`.
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
    pub create_event: events::CreateEvent,
    pub update_event: events::UpdateEvent,
    pub delete_event: events::DeleteEvent,
    pub get_event: events::GetEvent,
    pub list_events: events::ListEvents,
    pub place_order: orders::PlaceOrder,
    pub get_order: orders::GetOrder,
    pub list_orders: orders::ListOrders,
    pub request_payment: payments::RequestPayment,
    pub callback: payments::PaymentCallback,
    pub work: Arc<Work>,
}

impl Handlers {
    /// The current time of the clock port (hosts use it to verify tokens).
    pub fn now(&self) -> flash_core::Timestamp {
        self.work.now()
    }

    /// What this instance remembers of events (enqueue and the public reads use it); a
    /// long-running host keeps it in step with other instances' changes.
    pub fn event_cache(&self) -> Arc<events::EventCache> {
        self.join_queue.event_cache()
    }

    /// The settings of the work under the handlers (their token secrets are in the tokens).
    pub fn settings(&self) -> &Settings {
        &self.work.settings
    }

    /// Every handler over `ports`, with `settings` (its token secrets set).
    pub fn new(ports: &Ports, settings: Settings) -> Self {
        let work = Arc::new(Work::new(ports, settings.clone()));
        Handlers::over(work, ports, &settings)
    }

    /// The request handlers over `work`; `settings` are the work's with the token secrets
    /// resolved.
    pub fn over(work: Arc<Work>, ports: &Ports, settings: &Settings) -> Self {
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
        let join_queue = queue::JoinQueue::new(
            ports,
            work.promotion_kick.clone(),
            door(Door::Enqueue, l.enqueue_per_addr, l.enqueue_per_user),
        )
        .counting(work.tally.clone());
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
            leave_queue: queue::LeaveQueue::new(ports, work.promotion_kick.clone()),
            create_event: events::CreateEvent::new(ports),
            update_event: events::UpdateEvent::new(ports)
                .invalidating(event_cache.clone())
                .counting(work.tally.clone()),
            delete_event: events::DeleteEvent::new(ports).invalidating(event_cache.clone()),
            get_event: events::GetEvent::new(ports).cached(event_cache.clone()),
            list_events: events::ListEvents::new(ports).cached(event_cache.clone()),
            place_order: orders::PlaceOrder::new(
                ports,
                &settings.orders,
                &settings.queue,
                gate.clone(),
                work.promotion_kick.clone(),
                door(Door::Order, l.order_per_addr, l.order_per_user),
            )
            .cached(event_cache.clone()),
            get_order: orders::GetOrder::new(ports),
            list_orders: orders::ListOrders::new(ports),
            request_payment: payments::RequestPayment::new(
                ports,
                &settings.payments,
                work.relay_kick.clone(),
                door(Door::Payment, l.payment_per_addr, l.payment_per_user),
            ),
            callback: payments::PaymentCallback::new(ports, &settings.payments),
            tokens,
            work: work.clone(),
        }
    }
}
