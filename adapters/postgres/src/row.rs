//! Reading rows into domain types. Nothing read from the database is trusted to decode: a bad
//! value is `StoreError::Internal`, never a panic.

use crate::error::db;
use flash_core::domain::{
    Event, EventStatus, Order, OrderStatus, Payment, PaymentStatus, QueueMode,
};
use flash_core::{EventId, OrderId, PaymentId, StoreError, Timestamp, UserId};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};
use time::OffsetDateTime;

/// A row-decoding function such as [`event`] or [`order`].
pub(crate) type Decoder<T> = fn(&PgRow) -> Result<T, StoreError>;

/// Runs `query` for at most one row and decodes it; `what` names the operation in errors.
pub(crate) async fn fetch_optional<T>(
    query: Query<'_, Postgres, PgArguments>,
    pool: &PgPool,
    what: &str,
    decode: Decoder<T>,
) -> Result<Option<T>, StoreError> {
    query
        .fetch_optional(pool)
        .await
        .map_err(|e| db(what, e))?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Runs `query` and decodes every row; `what` names the operation in errors.
pub(crate) async fn fetch_all<T>(
    query: Query<'_, Postgres, PgArguments>,
    pool: &PgPool,
    what: &str,
    decode: Decoder<T>,
) -> Result<Vec<T>, StoreError> {
    query
        .fetch_all(pool)
        .await
        .map_err(|e| db(what, e))?
        .iter()
        .map(decode)
        .collect()
}

/// Our millisecond instant as a `timestamptz` value.
pub(crate) fn ts(t: Timestamp) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.millis()) * 1_000_000)
        .map_err(|_| StoreError::Internal(format!("instant {} ms is out of range", t.millis())))
}

/// A `timestamptz` value as our millisecond instant (sub-millisecond digits are never written).
pub(crate) fn from_ts(t: OffsetDateTime) -> Result<Timestamp, StoreError> {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000))
        .map(Timestamp::from_millis)
        .map_err(|_| StoreError::Internal(format!("instant {t} is out of range")))
}

pub(crate) fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Internal(format!("column {col}: {e}")))
}

pub(crate) fn get_ts(row: &PgRow, col: &str) -> Result<Timestamp, StoreError> {
    from_ts(get(row, col)?)
}

/// An `integer` column as the `i64` the domain uses.
pub(crate) fn get_int(row: &PgRow, col: &str) -> Result<i64, StoreError> {
    Ok(i64::from(get::<i32>(row, col)?))
}

fn parsed<T>(row: &PgRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s: String = get(row, col)?;
    parse(&s).ok_or_else(|| StoreError::Internal(format!("column {col}: unknown value {s:?}")))
}

pub(crate) fn order_status(row: &PgRow, col: &str) -> Result<OrderStatus, StoreError> {
    parsed(row, col, OrderStatus::parse)
}

pub(crate) fn payment_status(row: &PgRow, col: &str) -> Result<PaymentStatus, StoreError> {
    parsed(row, col, PaymentStatus::parse)
}

/// The event columns, for `SELECT … FROM events e`.
pub(crate) const EVENT_COLUMNS: &str = "e.id, e.name, e.starts_at, e.ends_at, e.total_qty, \
    e.sold_qty, e.held_qty, e.max_per_user, e.price, e.status::text AS status, e.created_at, \
    e.updated_at, e.prequeue_starts_at, e.queue_mode";

pub(crate) fn event(row: &PgRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: EventId(get(row, "id")?),
        name: get(row, "name")?,
        starts_at: get_ts(row, "starts_at")?,
        ends_at: get_ts(row, "ends_at")?,
        total_qty: get_int(row, "total_qty")?,
        sold_qty: get_int(row, "sold_qty")?,
        held_qty: get_int(row, "held_qty")?,
        max_per_user: get_int(row, "max_per_user")?,
        price: get(row, "price")?,
        status: parsed(row, "status", EventStatus::parse)?,
        prequeue_starts_at: get::<Option<_>>(row, "prequeue_starts_at")?
            .map(from_ts)
            .transpose()?,
        queue_mode: parsed(row, "queue_mode", QueueMode::parse)?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// The order columns, for `FROM orders o JOIN events e ON e.id = o.event_id`.
pub(crate) const ORDER_COLUMNS: &str = "o.id AS order_id, o.user_id AS order_user, \
    o.event_id AS order_event, e.name AS event_name, o.qty AS order_qty, \
    o.amount AS order_amount, o.status::text AS order_status, o.created_at AS order_created, \
    o.updated_at AS order_updated, o.hold_expires_at";

pub(crate) fn order(row: &PgRow) -> Result<Order, StoreError> {
    Ok(Order {
        id: OrderId(get(row, "order_id")?),
        user: UserId(get(row, "order_user")?),
        event_id: EventId(get(row, "order_event")?),
        event_name: get(row, "event_name")?,
        qty: get_int(row, "order_qty")?,
        amount: get(row, "order_amount")?,
        status: order_status(row, "order_status")?,
        created_at: get_ts(row, "order_created")?,
        updated_at: get_ts(row, "order_updated")?,
        hold_expires_at: get_ts(row, "hold_expires_at")?,
    })
}

/// The payment columns, for `FROM payments p JOIN orders o ON o.id = p.order_id` (the owner is
/// the order's).
pub(crate) const PAYMENT_COLUMNS: &str = "p.id AS payment_id, p.order_id AS payment_order, \
    o.user_id AS payment_user, p.status::text AS payment_status, p.method, \
    p.amount AS payment_amount, p.created_at AS payment_created, p.updated_at AS payment_updated";

pub(crate) fn payment(row: &PgRow) -> Result<Payment, StoreError> {
    Ok(Payment {
        id: PaymentId(get(row, "payment_id")?),
        order_id: OrderId(get(row, "payment_order")?),
        user: UserId(get(row, "payment_user")?),
        status: payment_status(row, "payment_status")?,
        method: get(row, "method")?,
        amount: get(row, "payment_amount")?,
        created_at: get_ts(row, "payment_created")?,
        updated_at: get_ts(row, "payment_updated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_timestamptz() {
        for ms in [0, 1_762_164_000_123, -1, -86_400_001] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(from_ts(ts(t).unwrap()).unwrap(), t);
        }
        assert!(ts(Timestamp::from_millis(i64::MAX)).is_err());
    }
}
