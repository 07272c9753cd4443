//! Rate limits: which door a limit guards, the key it counts under, and how many hits a window
//! allows.
//!
//! A [`RateKey`] is built only from values the server has validated or made itself — a user id
//! from a verified token, a client address parsed as an IP address — never from request text, so
//! no client can choose a key's length, content or Redis Cluster slot (SPEC §11). Every key is at
//! most [`RateKey::MAX_LEN`] bytes.

use crate::UserId;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// The doors a rate limit guards (and the one internal lock built on the limiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    Register,
    RegisterAdmin,
    Login,
    Enqueue,
    Order,
    Payment,
    /// One promoter per window across Lambda invocations (not a client limit).
    Promotion,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Register => "register",
            Door::RegisterAdmin => "register-admin",
            Door::Login => "login",
            Door::Enqueue => "enqueue",
            Door::Order => "order",
            Door::Payment => "payment",
            Door::Promotion => "promotion",
        }
    }
}

/// The key a limiter counts hits under: `<door>:u:<user>`, `<door>:a:<address>` or `<door>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RateKey(String);

impl RateKey {
    /// Longest key: the longest door name, `:a:` and an IPv6 /64 prefix.
    pub const MAX_LEN: usize = 64;

    /// Hits of one authenticated user.
    pub fn user(door: Door, user: UserId) -> Self {
        RateKey(format!("{}:u:{}", door.as_str(), user.0.simple()))
    }

    /// Hits from one client address. An IPv6 address counts as its /64 (what one subscriber
    /// usually holds, so rotating through it gains nothing); an address that is missing or is
    /// not an IP address counts as `unknown`, which all such clients share.
    pub fn addr(door: Door, client_addr: Option<&str>) -> Self {
        let addr = match client_addr.and_then(|a| a.trim().parse::<IpAddr>().ok()) {
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            None => "unknown".to_owned(),
        };
        RateKey(format!("{}:a:{addr}", door.as_str()))
    }

    /// One key for the whole door (a lock).
    pub fn global(door: Door) -> Self {
        RateKey(door.as_str().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `limit` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
}

impl Rate {
    pub const fn per_minute(limit: u32) -> Self {
        Rate {
            limit,
            window: Duration::from_secs(60),
        }
    }
}

/// The limits on each door a client can knock on (SPEC §11): per user where the caller is
/// known, per client address everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorLimits {
    pub register_per_addr: Rate,
    pub login_per_user: Rate,
    pub login_per_addr: Rate,
    pub enqueue_per_user: Rate,
    pub enqueue_per_addr: Rate,
    pub order_per_user: Rate,
    pub order_per_addr: Rate,
    pub payment_per_user: Rate,
    pub payment_per_addr: Rate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn keys_are_bounded_and_built_from_parsed_values() {
        let user = UserId(Uuid::from_u128(7));
        assert_eq!(
            RateKey::user(Door::Login, user).as_str(),
            "login:u:00000000000000000000000000000007"
        );
        assert_eq!(
            RateKey::addr(Door::Order, Some("203.0.113.9")).as_str(),
            "order:a:203.0.113.9"
        );
        // Every address of one /64 shares a key; a v4-mapped address is its v4 form.
        assert_eq!(
            RateKey::addr(Door::Login, Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            RateKey::addr(Door::Login, Some("2001:db8:1:2::1"))
        );
        assert_eq!(
            RateKey::addr(Door::Login, Some("::ffff:198.51.100.1")).as_str(),
            "login:a:198.51.100.1"
        );
        // Text that is not an address never reaches the key.
        let hostile = format!("{{slot}}{}", "x".repeat(60_000));
        for raw in [Some(hostile.as_str()), Some(""), None] {
            assert_eq!(
                RateKey::addr(Door::Register, raw).as_str(),
                "register:a:unknown"
            );
        }
        let longest = RateKey::addr(
            Door::RegisterAdmin,
            Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        );
        assert!(longest.as_str().len() <= RateKey::MAX_LEN, "{longest}");
        assert_eq!(RateKey::global(Door::Promotion).as_str(), "promotion");
    }
}
