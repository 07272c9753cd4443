//! `flash-core`: the vocabulary of Flash Tickets.
//!
//! Domain types as validated newtypes, the ports (traits) that adapters implement, the request
//! [`Context`], error classification, and the payment bus messages. Pure rules that must run
//! *inside* an adapter's atomic section (event patching, stock reservation) live here too, so that
//! every adapter applies exactly the same rule.
//!
//! This crate performs no I/O and must not depend on tokio, HTTP, database or broker crates.

pub mod budget;
pub mod context;
pub mod domain;
pub mod error;
pub mod ids;
pub mod limits;
pub mod messages;
pub mod ports;
pub mod time;

pub use context::{Context, Principal};
pub use error::{Classify, ErrorKind, StoreError};
pub use ids::*;
pub use time::Timestamp;
