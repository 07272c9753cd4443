//! `flash`: the all-in-one host. [`up`] wires every port to its in-memory adapter and runs the
//! whole system in one process; the binary in `main.rs` parses the configuration and calls it.
//!
//! Wiring only: business rules live in `flash-handlers`, HTTP in `flash-http`.

pub mod up;
pub mod web;
