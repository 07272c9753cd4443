//! Identifier newtypes. Every id is a UUID on the wire; a newtype keeps an order id from being
//! passed where a payment id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The text is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID")]
pub struct NotAUuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = NotAUuid;
            fn from_str(s: &str) -> Result<Self, NotAUuid> {
                parse_uuid(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

/// Parses the hyphenated UUID form only (what class-validator's `IsUUID` accepts).
pub fn parse_uuid(s: &str) -> Result<Uuid, NotAUuid> {
    if s.len() != 36 {
        return Err(NotAUuid);
    }
    Uuid::parse_str(s).map_err(|_| NotAUuid)
}

uuid_id!(
    /// A user's immutable id (the JWT `sub`).
    UserId
);
uuid_id!(
    /// An event (a sale).
    EventId
);
uuid_id!(
    /// A waiting-queue ticket.
    TicketId
);
uuid_id!(
    /// An order.
    OrderId
);
uuid_id!(
    /// A payment attempt of an order.
    PaymentId
);
uuid_id!(
    /// A refresh-token id (`jti`).
    TokenId
);
uuid_id!(
    /// A refresh-token family: every token produced by rotating one login.
    FamilyId
);
uuid_id!(
    /// An outbox row.
    OutboxId
);
