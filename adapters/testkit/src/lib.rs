//! `flash-testkit`: the port contracts of `flash-core` as executable tests.
//!
//! One `pub async fn` per MUST clause of `flash_core::ports`, each taking the port under test as
//! `Arc<dyn Port>` (or a bundle such as [`ShopPorts`] / [`BusPorts`]) and the instant to start
//! from, and panicking with a message naming the broken clause. An adapter crate runs them all
//! with the `*_contracts!` macros (one `#[tokio::test]` per contract, multi-threaded so that the
//! racing tests really race), or calls single functions from its own tests (for example inside
//! `#[sqlx::test]`). The macros need `tokio` (with `macros` and `rt-multi-thread`) among the
//! adapter's dev-dependencies.
//!
//! Contracts use fresh random ids, users and queue scopes, so they can share a backend; the
//! outbox and counter contracts assume a store of their own (a fresh database per test).
//!
//! Depends on `flash-core` (plus tokio/futures to drive concurrency); never on an adapter,
//! handlers or hosts.

pub mod auth;
pub mod basics;
pub mod bus;
pub mod fixtures;
pub mod ledger;
pub mod moto;
pub mod queue;
pub mod shop;
pub mod timeline;

pub use fixtures::{BusPorts, ShopPorts, T0, Tamper};

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:ident, $make:expr, $now:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::$module::$name($make, $now).await;
            }
        )+
    };
}

/// Generates a test per contract of [`flash_core::ports::Clock`], [`flash_core::ports::Ids`],
/// [`flash_core::ports::Random`] and [`flash_core::ports::HealthCheck`]; each argument is an
/// expression evaluated afresh in every test.
#[macro_export]
macro_rules! basic_contracts {
    (clock: $clock:expr, ids: $ids:expr, random: $random:expr, health: $health:expr $(,)?) => {
        $crate::__contract_tests!(basics, $clock, $crate::T0; clock_sleep_lets_at_least_the_duration_pass);
        $crate::__contract_tests!(basics, $ids, $crate::T0; ids_are_never_repeated);
        $crate::__contract_tests!(basics, $random, $crate::T0;
            random_unit_stays_in_the_unit_interval,
            random_between_is_inclusive_and_collapses_when_empty);
        $crate::__contract_tests!(basics, $health, $crate::T0; health_ping_answers_under_a_short_name);
    };
}

/// Every contract of [`flash_core::ports::UserStore`].
#[macro_export]
macro_rules! user_store_contracts {
    ($make:expr) => { $crate::user_store_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(auth, $make, $now;
            users_created_user_is_found_by_login_and_id,
            users_duplicate_login_conflicts,
            users_concurrent_creations_of_one_name_one_wins);
    };
}

/// Every contract of [`flash_core::ports::SessionStore`].
#[macro_export]
macro_rules! session_store_contracts {
    ($make:expr) => { $crate::session_store_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(auth, $make, $now;
            sessions_first_rotation_rotates_the_token,
            sessions_reuse_revokes_family,
            sessions_concurrent_rotations_one_wins,
            sessions_unknown_or_expired_token_is_unknown,
            sessions_logout_revokes_the_family);
    };
}

/// Every contract of [`flash_core::ports::RateLimiter`].
#[macro_export]
macro_rules! rate_limiter_contracts {
    ($make:expr) => { $crate::rate_limiter_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(auth, $make, $now;
            rate_limiter_refuses_over_limit,
            rate_limiter_window_ends_on_its_own,
            rate_limiter_keys_are_counted_apart,
            rate_limiter_hit_all_stops_at_the_first_refusal,
            rate_limiter_concurrent_hits_never_exceed_limit);
    };
}

/// Every contract of [`flash_core::ports::QueueStore`].
#[macro_export]
macro_rules! queue_store_contracts {
    ($make:expr) => { $crate::queue_store_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(queue, $make, $now;
            queue_enqueue_assigns_increasing_sequence,
            queue_enqueue_is_idempotent_per_user_and_scope,
            queue_concurrent_enqueues_yield_one_ticket,
            queue_enqueue_after_leaving_creates_a_new_ticket,
            queue_position_counts_queued_ahead,
            queue_promote_admits_in_arrival_order_up_to_capacity,
            queue_promote_never_exceeds_capacity_with_racing_promoters,
            queue_promote_counts_admissions_spent_since_the_callers_reading,
            queue_expired_admission_reads_expired_and_frees_slot,
            queue_promote_expires_stale_admissions_first,
            queue_enter_marks_used_and_rearms_expiry,
            queue_leave_frees_slot_and_dequeues,
            queue_leave_refuses_other_users_ticket,
            queue_admission_returns_only_live_admissions,
            queue_consume_orders_admitted_tickets_only,
            queue_stats_count_queued_admitted_and_recent,
            queue_stats_decay_admissions_exponentially,
            queue_stats_count_entered_admissions_as_used,
            queue_status_reads_ticket_stats_and_position,
            queue_active_scopes_only_lists_busy_scopes,
            queue_phase_stops_promotion_and_keeps_places,
            queue_phase_change_is_reported_once_under_races,
            queue_lottery_is_drawn_in_draw_order_ahead_of_arrivals,
            queue_lottery_order_is_a_uniform_permutation);
    };
}

/// Every contract of [`flash_core::ports::QueueNotifier`].
#[macro_export]
macro_rules! queue_notifier_contracts {
    ($make:expr) => { $crate::queue_notifier_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(queue, $make, $now;
            notifier_delivers_to_every_subscriber,
            notifier_delivers_line_notices,
            notifier_announce_without_subscribers_is_ok);
    };
}

/// Every contract of [`flash_core::ports::EventStore`], [`flash_core::ports::OrderStore`],
/// [`flash_core::ports::PaymentStore`] and [`flash_core::ports::Outbox`], given a [`ShopPorts`]
/// expression (with a tamper hook for the refund contract).
#[macro_export]
macro_rules! shop_contracts {
    ($make:expr) => { $crate::shop_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(shop, $make, $now;
            events_public_listing_hides_drafts_and_sorts_by_start,
            events_admin_listing_is_newest_first,
            events_update_applies_patch_to_the_current_row,
            events_update_rejects_what_patched_rejects,
            events_update_never_loses_concurrent_reservations,
            events_delete_refuses_when_the_event_has_orders,
            orders_hold_takes_stock_and_is_remembered,
            orders_concurrent_holds_never_oversell,
            orders_per_user_limit_holds_under_concurrency,
            orders_same_key_concurrently_yields_one_order,
            orders_key_with_other_fingerprint_is_mismatch,
            orders_rejection_is_not_kept_under_the_key,
            orders_key_is_forgotten_after_it_expires,
            orders_list_for_user_is_newest_first,
            orders_expire_holds_releases_stock,
            orders_expire_holds_skips_orders_with_a_pending_payment,
            orders_concurrent_expiry_expires_each_order_once,
            payments_open_writes_the_outbox_message,
            payments_one_active_payment_per_order,
            payments_open_checks_owner_and_eligibility,
            payments_open_extends_the_hold_to_settle_by,
            payments_ok_marks_paid_and_moves_stock,
            payments_fail_makes_the_order_fail_and_a_new_payment_retries,
            payments_paid_order_never_changes,
            payments_settled_payment_is_unchanged,
            payments_late_ok_after_a_failure_pays_a_still_held_order,
            payments_late_ok_for_an_order_paid_by_another_payment_requires_refund,
            payments_result_for_unknown_payment_or_wrong_order_is_rejected,
            payments_ok_for_expired_order_requires_refund,
            payments_ok_for_cancelled_order_requires_refund,
            payments_overdue_lists_old_requests_oldest_first,
            payments_counts_follow_every_transition,
            payments_event_counts_are_per_event,
            outbox_lease_hides_message_from_other_relays,
            outbox_message_returns_after_its_lease_ends,
            outbox_sent_messages_are_never_handed_out_again);
    };
}

/// Every contract of [`flash_core::ports::Bus`] / [`flash_core::ports::BusConsumer`], given a
/// [`BusPorts`] expression.
#[macro_export]
macro_rules! bus_contracts {
    ($make:expr) => { $crate::bus_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(bus, $make, $now;
            bus_delivers_a_published_message_until_acked,
            bus_retry_redelivers_with_the_attempt_count,
            bus_retry_waits_for_its_back_off,
            bus_retry_then_dead_letter,
            bus_dead_letter_disposition_skips_retries);
    };
}

/// Every contract of [`flash_core::ports::PaymentLedger`].
#[macro_export]
macro_rules! payment_ledger_contracts {
    ($make:expr) => { $crate::payment_ledger_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(ledger, $make, $now;
            ledger_decides_once,
            ledger_concurrent_decisions_agree,
            ledger_tracks_published_results);
    };
}

/// Every contract of [`flash_core::ports::TimelineStore`].
#[macro_export]
macro_rules! timeline_store_contracts {
    ($make:expr) => { $crate::timeline_store_contracts!($make, $crate::T0); };
    ($make:expr, $now:expr) => {
        $crate::__contract_tests!(timeline, $make, $now;
            timeline_adds_from_racing_writers_sum_up,
            timeline_reads_existing_seconds_in_order_within_the_window);
    };
}
