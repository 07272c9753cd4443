//! Reading script replies without trusting them: anything unexpected is `Internal`, never a panic.

use flash_core::StoreError;
use flash_core::ports::StoreResult;
use redis::Value;

pub(crate) fn malformed(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("redis {what}: malformed reply: {detail}"))
}

/// The elements of an array reply.
pub(crate) fn array(v: Value, what: &str) -> StoreResult<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => Err(malformed(what, format!("expected an array, got {other:?}"))),
    }
}

/// Element `i` of an array reply.
pub(crate) fn at<'a>(items: &'a [Value], i: usize, what: &str) -> StoreResult<&'a Value> {
    items
        .get(i)
        .ok_or_else(|| malformed(what, format!("missing element {i}")))
}

/// A string reply; `None` for nil.
pub(crate) fn opt_text(v: &Value, what: &str) -> StoreResult<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| malformed(what, "a string is not UTF-8")),
        Value::SimpleString(s) => Ok(Some(s.clone())),
        Value::Okay => Ok(Some("OK".to_owned())),
        Value::Int(n) => Ok(Some(n.to_string())),
        other => Err(malformed(what, format!("expected a string, got {other:?}"))),
    }
}

pub(crate) fn text(v: &Value, what: &str) -> StoreResult<String> {
    opt_text(v, what)?.ok_or_else(|| malformed(what, "unexpected nil"))
}

/// An integer reply, or a string holding one (Lua returns both).
pub(crate) fn int(v: &Value, what: &str) -> StoreResult<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let s = text(v, what)?;
            s.parse()
                .map_err(|_| malformed(what, format!("{s:?} is not an integer")))
        }
        other => Err(malformed(
            what,
            format!("expected an integer, got {other:?}"),
        )),
    }
}

/// An integer that must not be negative.
pub(crate) fn count(v: &Value, what: &str) -> StoreResult<u64> {
    let n = int(v, what)?;
    u64::try_from(n).map_err(|_| malformed(what, format!("negative count {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_as_integers_or_strings() {
        assert_eq!(int(&Value::Int(7), "t").unwrap(), 7);
        assert_eq!(int(&Value::BulkString(b"42".to_vec()), "t").unwrap(), 42);
        assert!(matches!(
            int(&Value::BulkString(b"4x".to_vec()), "t"),
            Err(StoreError::Internal(_))
        ));
        assert!(matches!(
            count(&Value::Int(-1), "t"),
            Err(StoreError::Internal(_))
        ));
    }

    #[test]
    fn shapes_other_than_expected_are_internal_errors() {
        assert!(matches!(
            array(Value::Int(1), "t"),
            Err(StoreError::Internal(_))
        ));
        assert!(matches!(at(&[], 0, "t"), Err(StoreError::Internal(_))));
        assert!(matches!(
            text(&Value::Nil, "t"),
            Err(StoreError::Internal(_))
        ));
        assert_eq!(opt_text(&Value::Nil, "t").unwrap(), None);
        assert!(matches!(
            opt_text(&Value::BulkString(vec![0xff]), "t"),
            Err(StoreError::Internal(_))
        ));
    }
}
