//! `flash-pods`: the wiring of the EKS pod binaries — `flash-gateway` (:3000: auth, queue,
//! Socket.IO, promotion), `flash-api` (:4000: events, orders, payments, the result consumer, the
//! outbox relay, the sweepers), `flash-pay` (the mock processor on the bus, health on :3100) and
//! `flash-migrate` — and the backend selection `flash up` shares with them.
//!
//! Wiring only: which adapter serves which port, which tasks run where. Business rules live in
//! `flash-handlers`; the Lambda binaries must never depend on this crate (it links lapin).

pub mod backends;
pub mod serve;
