//! Request-body validation with the legacy class-validator messages.
//!
//! The legacy apps ran Nest's `ValidationPipe` with `whitelist` + `forbidNonWhitelisted` and no
//! implicit conversion. This reproduces what clients saw: unknown keys first
//! (`property <name> should not exist`), then, per property in declaration order, every failed
//! constraint — *all* of them, evaluated with JavaScript semantics (a missing `qty` fails both
//! `IsInt` and `IsPositive`).
//!
//! A field is declared like the legacy decorators, top to bottom:
//!
//! ```
//! # use flash_http::validate::{Validator, LOGIN_NAME_PATTERN, is_login_name_charset};
//! let map = serde_json::json!({"userId": "ab", "extra": 1});
//! let map = map.as_object().cloned().unwrap_or_default();
//! let mut v = Validator::new(&map, &["userId", "password"]);
//! let _user_id = v.string("userId").not_empty().length(4, 50)
//!     .matches(LOGIN_NAME_PATTERN, is_login_name_charset).get();
//! let _password = v.string("password").not_empty().min_len(8).get();
//! assert_eq!(v.finish().unwrap_err(), vec![
//!     "property extra should not exist",
//!     "userId must be longer than or equal to 4 characters",
//!     "password must be longer than or equal to 8 characters",
//!     "password should not be empty",
//!     "password must be a string",
//! ]);
//! ```
//!
//! Messages of one property come out bottom-up, as class-validator reports stacked decorators
//! (TypeScript applies them last-first), so the type check (`IsString`, declared first by
//! convention) is reported last. JSON keys may be snake_case (`starts_at`); messages name the
//! camelCase property (`startsAt must be a Date instance`), as the legacy `@Expose({name})` DTOs
//! did. Unlike legacy, a camelCase key sent to a snake_case DTO is reported as an unknown property
//! instead of being silently dropped.

use crate::error::ApiError;
use flash_core::Timestamp;
use serde_json::{Map, Value};
use std::marker::PhantomData;

/// The legacy `userId` pattern, as class-validator prints it.
pub const LOGIN_NAME_PATTERN: &str = r"/^[a-zA-Z0-9_\-]+$/";

/// `^[a-zA-Z0-9_\-]+$`.
pub fn is_login_name_charset(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Collects the messages of one body; see the module documentation.
#[derive(Debug)]
pub struct Validator<'a> {
    map: &'a Map<String, Value>,
    messages: Vec<String>,
}

impl<'a> Validator<'a> {
    /// Starts validation; every key of `map` not in `allowed` is reported at once.
    pub fn new(map: &'a Map<String, Value>, allowed: &[&str]) -> Self {
        let messages = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| format!("property {k} should not exist"))
            .collect();
        Validator { map, messages }
    }

    /// `@IsString()`.
    /// Control characters (NUL, the other C0 codes, DEL, C1) are refused in every string: no
    /// backend, log line or page has a use for them, and PostgreSQL refuses NUL outright.
    pub fn string<'v>(&'v mut self, key: &str) -> Field<'v, 'a, Str> {
        let mut field = self.field(key, Value::is_string, "must be a string");
        let control = field
            .raw
            .and_then(Value::as_str)
            .is_some_and(has_control_chars);
        field.check(!control, "must not contain control characters".into());
        field
    }

    /// `@IsUUID()` (any version, hyphenated form).
    pub fn uuid<'v>(&'v mut self, key: &str) -> Field<'v, 'a, Uuid> {
        self.field(
            key,
            |v| v.as_str().and_then(parse_uuid).is_some(),
            "must be a UUID",
        )
    }

    /// `@IsInt()`: a JSON number with no fractional part (`1.0` is an integer in JavaScript,
    /// `"1"` and `1.5` are not).
    pub fn int<'v>(&'v mut self, key: &str) -> Field<'v, 'a, Int> {
        self.field(key, is_integer, "must be an integer number")
    }

    /// `@Type(() => Date) @IsDate()`: an RFC 3339 date-time or a `YYYY-MM-DD` date (UTC).
    /// Dates outside [`MIN_DATE`]..=[`MAX_DATE`] are refused, named as such.
    pub fn date<'v>(&'v mut self, key: &str) -> Field<'v, 'a, Date> {
        let mut field = self.field(
            key,
            |v| v.as_str().and_then(parse_any_date).is_some(),
            "must be a Date instance",
        );
        let out_of_range = field
            .raw
            .and_then(Value::as_str)
            .and_then(parse_any_date)
            .is_some_and(|t| !(MIN_DATE..=MAX_DATE).contains(&t));
        field.check(
            !out_of_range,
            "must be between 1970-01-01 and 9999-12-31".into(),
        );
        field
    }

    /// `@IsBoolean()`.
    pub fn boolean<'v>(&'v mut self, key: &str) -> Field<'v, 'a, Bool> {
        self.field(key, Value::is_boolean, "must be a boolean value")
    }

    /// The messages so far (unknown keys and finished fields).
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// `Ok` when nothing failed, else every message in order.
    pub fn finish(self) -> Result<(), Vec<String>> {
        if self.messages.is_empty() {
            Ok(())
        } else {
            Err(self.messages)
        }
    }

    /// [`Validator::finish`] rendered as the legacy 400.
    pub fn finish_api(self) -> Result<(), ApiError> {
        self.finish().map_err(ApiError::validation)
    }

    fn field<'v, K>(
        &'v mut self,
        key: &str,
        type_ok: fn(&Value) -> bool,
        type_message: &'static str,
    ) -> Field<'v, 'a, K> {
        let raw = self.map.get(key);
        let mut field = Field {
            validator: self,
            raw,
            property: camel_case(key),
            optional: false,
            failed: Vec::new(),
            kind: PhantomData,
        };
        field.check(raw.is_some_and(type_ok), type_message.to_owned());
        field
    }
}

/// Marker for string fields.
#[derive(Debug)]
pub enum Str {}
/// Marker for UUID fields.
#[derive(Debug)]
pub enum Uuid {}
/// Marker for integer fields.
#[derive(Debug)]
pub enum Int {}
/// Marker for date fields.
#[derive(Debug)]
pub enum Date {}
/// Marker for boolean fields.
#[derive(Debug)]
pub enum Bool {}

/// What a field of kind `K` yields once valid.
pub trait Kind {
    type Out: Default;
    fn extract(value: &Value) -> Option<Self::Out>;
}

impl Kind for Str {
    type Out = String;
    fn extract(value: &Value) -> Option<String> {
        value.as_str().map(str::to_owned)
    }
}

impl Kind for Uuid {
    type Out = uuid::Uuid;
    fn extract(value: &Value) -> Option<uuid::Uuid> {
        value.as_str().and_then(parse_uuid)
    }
}

impl Kind for Int {
    type Out = i64;
    fn extract(value: &Value) -> Option<i64> {
        match value.as_i64() {
            Some(n) => Some(n),
            // Saturates: an integral float beyond i64 is refused by any `max` rule anyway.
            None => js_number(value).map(|n| n as i64),
        }
    }
}

impl Kind for Date {
    type Out = Timestamp;
    fn extract(value: &Value) -> Option<Timestamp> {
        value.as_str().and_then(parse_date)
    }
}

impl Kind for Bool {
    type Out = bool;
    fn extract(value: &Value) -> Option<bool> {
        value.as_bool()
    }
}

/// One property being validated. Its messages are recorded when it is consumed with
/// [`Field::get`] / [`Field::opt`], or dropped.
#[derive(Debug)]
#[must_use = "finish the field with .get() or .opt()"]
pub struct Field<'v, 'a, K> {
    validator: &'v mut Validator<'a>,
    raw: Option<&'a Value>,
    property: String,
    optional: bool,
    /// Failed constraints, in declaration order.
    failed: Vec<String>,
    kind: PhantomData<K>,
}

impl<K: Kind> Field<'_, '_, K> {
    /// `@IsOptional()`: a missing or `null` value skips every rule.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// `@IsOptional()` when `optional` holds: one reader for a create body and its patch.
    pub fn optional_if(mut self, optional: bool) -> Self {
        self.optional |= optional;
        self
    }

    /// Names the property in messages (default: the key in camelCase).
    pub fn named(mut self, property: &str) -> Self {
        property.clone_into(&mut self.property);
        self
    }

    /// `@IsNotEmpty()`: not `""`, `null` or missing.
    pub fn not_empty(mut self) -> Self {
        let ok = !matches!(self.raw, None | Some(Value::Null))
            && self.raw.and_then(Value::as_str) != Some("");
        self.check(ok, "should not be empty".into());
        self
    }

    /// The value when every rule passed, else `K::Out::default()` — [`Validator::finish`] then
    /// fails, so the default is never used. For required fields.
    pub fn get(self) -> K::Out {
        self.opt().unwrap_or_default()
    }

    /// The value when present and valid; `None` when absent, `null` or invalid. For optional
    /// fields.
    pub fn opt(mut self) -> Option<K::Out> {
        let valid = self.skipped() || self.failed.is_empty();
        self.flush();
        if valid {
            self.raw.filter(|v| !v.is_null()).and_then(K::extract)
        } else {
            None
        }
    }
}

impl<K> Field<'_, '_, K> {
    fn skipped(&self) -> bool {
        self.optional && matches!(self.raw, None | Some(Value::Null))
    }

    fn check(&mut self, ok: bool, message: String) {
        if !ok {
            self.failed.push(message);
        }
    }

    /// Records the failed constraints bottom-up, as class-validator reports them.
    fn flush(&mut self) {
        let failed = std::mem::take(&mut self.failed);
        if self.skipped() {
            return;
        }
        let property = &self.property;
        self.validator
            .messages
            .extend(failed.iter().rev().map(|m| format!("{property} {m}")));
    }
}

impl<K> Drop for Field<'_, '_, K> {
    fn drop(&mut self) {
        // Finished fields have flushed already; this records fields that were never finished.
        self.flush();
    }
}

impl Field<'_, '_, Str> {
    /// `@MinLength(n)`.
    pub fn min_len(mut self, min: usize) -> Self {
        let ok = self
            .raw
            .and_then(Value::as_str)
            .is_some_and(|s| js_length(s) >= min);
        self.check(
            ok,
            format!("must be longer than or equal to {min} characters"),
        );
        self
    }

    /// `@MaxLength(n)`.
    pub fn max_len(mut self, max: usize) -> Self {
        let ok = self
            .raw
            .and_then(Value::as_str)
            .is_some_and(|s| js_length(s) <= max);
        self.check(
            ok,
            format!("must be shorter than or equal to {max} characters"),
        );
        self
    }

    /// `@Length(min, max)`, with class-validator's choice among its three messages.
    pub fn length(mut self, min: usize, max: usize) -> Self {
        let ok = self
            .raw
            .and_then(Value::as_str)
            .is_some_and(|s| (min..=max).contains(&js_length(s)));
        let units = self.raw.and_then(utf16_length);
        let message = if js_falsy(self.raw) || units.is_some_and(|n| n < min) {
            format!("must be longer than or equal to {min} characters")
        } else if units.is_some_and(|n| n > max) {
            format!("must be shorter than or equal to {max} characters")
        } else {
            format!(
                "must be longer than or equal to {min} and shorter than or equal to {max} characters"
            )
        };
        self.check(ok, message);
        self
    }

    /// `@Matches(regex)`: `pattern` is the regex as printed in the message (e.g.
    /// [`LOGIN_NAME_PATTERN`]), `accepts` decides.
    pub fn matches(mut self, pattern: &str, accepts: fn(&str) -> bool) -> Self {
        let ok = self.raw.and_then(Value::as_str).is_some_and(accepts);
        self.check(ok, format!("must match {pattern} regular expression"));
        self
    }

    /// `@IsIn([...])` / `@IsEnum(...)`.
    pub fn one_of(mut self, allowed: &[&str]) -> Self {
        let ok = self
            .raw
            .and_then(Value::as_str)
            .is_some_and(|s| allowed.contains(&s));
        self.check(
            ok,
            format!(
                "must be one of the following values: {}",
                allowed.join(", ")
            ),
        );
        self
    }
}

impl Field<'_, '_, Int> {
    /// `@IsPositive()`.
    pub fn positive(mut self) -> Self {
        let ok = self.raw.and_then(js_number).is_some_and(|n| n > 0.0);
        self.check(ok, "must be a positive number".into());
        self
    }

    /// `@Min(n)`.
    pub fn min(mut self, min: i64) -> Self {
        let ok = self
            .raw
            .and_then(js_number)
            .is_some_and(|n| n >= min as f64);
        self.check(ok, format!("must not be less than {min}"));
        self
    }

    /// `@Max(n)`.
    pub fn max(mut self, max: i64) -> Self {
        let ok = self
            .raw
            .and_then(js_number)
            .is_some_and(|n| n <= max as f64);
        self.check(ok, format!("must not be greater than {max}"));
        self
    }
}

/// `snake_case` → `camelCase`; camelCase keys are unchanged.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn js_number(value: &Value) -> Option<f64> {
    value.as_f64()
}

/// `@IsInt()`: an integer, or a float with nothing after the point (`1.0`, as JavaScript reads
/// it) — but not a float that reads as zero: no client writes `0.0` for zero, and `1e-400`
/// (which underflows to it) is not an integer.
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => true,
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0 && f != 0.0),
        _ => false,
    }
}

/// `!value` in JavaScript.
fn js_falsy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64().is_none_or(|f| f == 0.0 || f.is_nan()),
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => false,
    }
}

/// `value.length` in JavaScript (UTF-16 units for strings), `undefined` for other types.
fn utf16_length(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(s.encode_utf16().count()),
        Value::Array(a) => Some(a.len()),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => None,
    }
}

/// validator.js `isLength`: code points, not counting variation selectors.
fn js_length(s: &str) -> usize {
    s.chars()
        .filter(|c| !matches!(c, '\u{FE0E}' | '\u{FE0F}'))
        .count()
}

/// The hyphenated 8-4-4-4-12 hex form only (validator.js `isUUID(…, 'all')`).
pub fn parse_uuid(s: &str) -> Option<uuid::Uuid> {
    let hyphenated = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if hyphenated {
        uuid::Uuid::try_parse(s).ok()
    } else {
        None
    }
}

/// The earliest date a client may send: the epoch (every store and clock counts from it).
pub const MIN_DATE: Timestamp = Timestamp::from_millis(0);
/// The latest: the end of year 9999, the last one RFC 3339 can write.
pub const MAX_DATE: Timestamp = Timestamp::from_millis(253_402_300_799_999);

/// Whether `s` holds a control character (C0, DEL or C1).
pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// RFC 3339 date-time with offset, or a bare `YYYY-MM-DD` (UTC midnight, as JavaScript reads
/// it), between [`MIN_DATE`] and [`MAX_DATE`].
pub fn parse_date(s: &str) -> Option<Timestamp> {
    parse_any_date(s).filter(|t| (MIN_DATE..=MAX_DATE).contains(t))
}

fn parse_any_date(s: &str) -> Option<Timestamp> {
    let date_only = s.len() == 10
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    if date_only {
        Timestamp::parse_iso(&format!("{s}T00:00:00Z"))
    } else {
        Timestamp::parse_iso(s)
    }
}

/// The register form's rules (SPEC §11): `userId` 4 to 50 characters of letters, digits, `_`
/// and `-`; `password` at least 8 characters. (login, password), as read.
pub fn login_and_password(v: &mut Validator<'_>) -> (String, String) {
    let login = v
        .string("userId")
        .not_empty()
        .length(4, 50)
        .matches(LOGIN_NAME_PATTERN, is_login_name_charset)
        .get();
    let password = v.string("password").not_empty().min_len(8).get();
    (login, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{CreateEventRequest, Request as _};
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn register(body: Value) -> Result<(String, String), Vec<String>> {
        let map = obj(body);
        let mut v = Validator::new(&map, &["userId", "password"]);
        let fields = login_and_password(&mut v);
        v.finish().map(|()| fields)
    }

    #[test]
    fn control_characters_are_refused_in_every_string() {
        for bad in [
            "MO\u{0}CK",
            "a\u{7}b",
            "line\nbreak",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let map = obj(json!({ "method": bad }));
            let mut v = Validator::new(&map, &["method"]);
            let got = v.string("method").not_empty().max_len(64).opt();
            assert_eq!(got, None, "{bad:?}");
            assert_eq!(
                v.finish(),
                Err(vec![
                    "method must not contain control characters".to_owned()
                ]),
                "{bad:?}"
            );
        }
        // Everything printable, any script, is fine.
        let map = obj(json!({ "name": "콘서트 🎫 Ünïcode" }));
        let mut v = Validator::new(&map, &["name"]);
        assert_eq!(v.string("name").get(), "콘서트 🎫 Ünïcode");
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn dates_outside_the_epoch_to_year_9999_are_refused_by_name() {
        // Whether `starts_at` read as a date, and what the validator then says.
        let read = |date: &str| {
            let map = obj(json!({ "starts_at": date }));
            let mut v = Validator::new(&map, &["starts_at"]);
            let parsed = v.date("starts_at").opt().is_some();
            (parsed, v.finish())
        };
        let refused = Err(vec![
            "startsAt must be between 1970-01-01 and 9999-12-31".to_owned(),
        ]);
        for bad in [
            "1969-12-31T23:59:59Z",
            "0001-01-01",
            "9999-12-31T23:59:59-01:00",
        ] {
            assert_eq!(read(bad), (false, refused.clone()), "{bad}");
        }
        for good in [
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2026-12-05",
        ] {
            assert_eq!(read(good), (true, Ok(())), "{good}");
        }
    }

    #[test]
    fn valid_body_yields_values() {
        assert_eq!(
            register(json!({"userId": "test0001", "password": "testtest"})),
            Ok(("test0001".into(), "testtest".into()))
        );
    }

    #[test]
    fn unknown_keys_come_first() {
        let err = register(
            json!({"userId": "test0001", "password": "testtest", "role": "ADMIN", "admin": true}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![
                "property admin should not exist",
                "property role should not exist"
            ]
        );
    }

    #[test]
    fn missing_string_reports_every_constraint_bottom_up() {
        let err = register(json!({"password": "testtest"})).unwrap_err();
        assert_eq!(
            err,
            vec![
                r"userId must match /^[a-zA-Z0-9_\-]+$/ regular expression",
                "userId must be longer than or equal to 4 characters",
                "userId should not be empty",
                "userId must be a string",
            ]
        );
    }

    #[test]
    fn wrong_type_is_not_coerced() {
        let err = register(json!({"userId": true, "password": 12345678})).unwrap_err();
        assert_eq!(
            err,
            vec![
                r"userId must match /^[a-zA-Z0-9_\-]+$/ regular expression",
                "userId must be longer than or equal to 4 and shorter than or equal to 50 characters",
                "userId must be a string",
                "password must be longer than or equal to 8 characters",
                "password must be a string",
            ]
        );
    }

    #[test]
    fn length_messages_follow_class_validator() {
        let err = register(json!({"userId": "a b", "password": "short"})).unwrap_err();
        assert_eq!(
            err,
            vec![
                r"userId must match /^[a-zA-Z0-9_\-]+$/ regular expression",
                "userId must be longer than or equal to 4 characters",
                "password must be longer than or equal to 8 characters",
            ]
        );
        let long = "x".repeat(51);
        let err = register(json!({"userId": long, "password": "testtest"})).unwrap_err();
        assert_eq!(
            err,
            vec!["userId must be shorter than or equal to 50 characters"]
        );

        let map = obj(json!({"method": 5}));
        let mut v = Validator::new(&map, &["method"]);
        let _ = v.string("method").length(1, 64).get();
        assert_eq!(
            v.finish().unwrap_err(),
            vec![
                "method must be longer than or equal to 1 and shorter than or equal to 64 characters",
                "method must be a string",
            ]
        );
    }

    #[test]
    fn max_len_counts_characters_not_bytes() {
        let map = obj(json!({"name": "é".repeat(120)}));
        let mut v = Validator::new(&map, &["name"]);
        assert_eq!(v.string("name").max_len(120).get().chars().count(), 120);
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn uuid_rule() {
        let id = "3f2b7e0c-1d4a-4c8e-9f10-2a3b4c5d6e7f";
        let map = obj(json!({"eventId": id}));
        let mut v = Validator::new(&map, &["eventId"]);
        assert_eq!(v.uuid("eventId").get().to_string(), id);
        assert_eq!(v.finish(), Ok(()));

        for bad in [
            json!("3f2b7e0c1d4a4c8e9f102a3b4c5d6e7f"),
            json!("__global__"),
            json!(1),
            json!(null),
        ] {
            let map = obj(json!({ "eventId": bad }));
            let mut v = Validator::new(&map, &["eventId"]);
            let got = v.uuid("eventId").get();
            assert!(got.is_nil());
            assert_eq!(
                v.finish().unwrap_err(),
                vec!["eventId must be a UUID"],
                "{bad}"
            );
        }
    }

    fn order(body: Value) -> Result<(uuid::Uuid, i64), Vec<String>> {
        let map = obj(body);
        let mut v = Validator::new(&map, &["event_id", "qty"]);
        let event = v.uuid("event_id").get();
        let qty = v.int("qty").positive().get();
        v.finish().map(|()| (event, qty))
    }

    #[test]
    fn snake_case_keys_are_named_in_camel_case() {
        let id = "3f2b7e0c-1d4a-4c8e-9f10-2a3b4c5d6e7f";
        assert_eq!(order(json!({"event_id": id, "qty": 2})).map(|o| o.1), Ok(2));
        assert_eq!(
            order(json!({"eventId": id, "qty": 1})).unwrap_err(),
            vec![
                "property eventId should not exist",
                "eventId must be a UUID"
            ]
        );
    }

    #[test]
    fn integers_are_strict() {
        let id = "3f2b7e0c-1d4a-4c8e-9f10-2a3b4c5d6e7f";
        assert_eq!(
            order(json!({"event_id": id, "qty": "1"})).unwrap_err(),
            vec![
                "qty must be a positive number",
                "qty must be an integer number"
            ]
        );
        assert_eq!(
            order(json!({"event_id": id, "qty": 1.5})).unwrap_err(),
            vec!["qty must be an integer number"]
        );
        assert_eq!(
            order(json!({"event_id": id, "qty": -1})).unwrap_err(),
            vec!["qty must be a positive number"]
        );
        assert_eq!(
            order(json!({"event_id": id})).unwrap_err(),
            vec![
                "qty must be a positive number",
                "qty must be an integer number"
            ]
        );
        assert_eq!(
            order(json!({"event_id": id, "qty": 1.0})).map(|o| o.1),
            Ok(1)
        );
        // 1e-400 underflows to 0.0: not an integer anybody wrote.
        let underflow: Value = serde_json::from_str("1e-400").unwrap();
        assert!(!is_integer(&underflow));
        assert!(!is_integer(&json!(-0.0)));
        assert!(is_integer(&json!(0)));
    }

    fn create_event(body: Value) -> Result<(), Vec<String>> {
        let map = obj(body);
        // name, starts_at, ends_at, total_qty, max_per_user, price
        let mut v = Validator::new(&map, &CreateEventRequest::FIELDS[..6]);
        let _ = v.string("name").length(2, 120).get();
        let _ = v.date("starts_at").get();
        let _ = v.date("ends_at").get();
        let _ = v.int("total_qty").positive().max(1_000_000).get();
        let _ = v.int("max_per_user").positive().max(100).get();
        let _ = v.int("price").min(0).get();
        v.finish()
    }

    #[test]
    fn event_rules() {
        let ok = json!({"name": "Concert", "starts_at": "2025-11-03T10:00:00.000Z",
            "ends_at": "2025-11-03", "total_qty": 1000, "max_per_user": 4, "price": 0});
        assert_eq!(create_event(ok), Ok(()));
        let bad = json!({"name": "C", "starts_at": "tomorrow", "ends_at": 5,
            "total_qty": 1_000_001, "max_per_user": 0, "price": -1});
        assert_eq!(
            create_event(bad).unwrap_err(),
            vec![
                "name must be longer than or equal to 2 characters",
                "startsAt must be a Date instance",
                "endsAt must be a Date instance",
                "totalQty must not be greater than 1000000",
                "maxPerUser must be a positive number",
                "price must not be less than 0",
            ]
        );
    }

    #[test]
    fn optional_fields_skip_when_absent_or_null() {
        // An optional event status, as PATCH /events reads it.
        fn status(v: &mut Validator<'_>) -> Option<String> {
            v.string("status")
                .optional()
                .one_of(&["DRAFT", "ONSALE", "CLOSED"])
                .opt()
        }
        let map = obj(json!({"name": null, "total_qty": 5}));
        let keys = ["name", "status", "total_qty", "price"];
        let mut v = Validator::new(&map, &keys);
        assert_eq!(v.string("name").optional().max_len(120).opt(), None);
        assert_eq!(status(&mut v), None);
        assert_eq!(v.int("total_qty").optional().positive().opt(), Some(5));
        assert_eq!(v.int("price").optional().min(0).opt(), None);
        assert_eq!(v.finish(), Ok(()));

        let map = obj(json!({"status": "OPEN"}));
        let mut v = Validator::new(&map, &["status"]);
        assert_eq!(status(&mut v), None);
        assert_eq!(
            v.finish().unwrap_err(),
            vec!["status must be one of the following values: DRAFT, ONSALE, CLOSED"]
        );
    }

    #[test]
    fn not_empty_and_boolean() {
        let map = obj(json!({"refreshToken": "", "flag": "true"}));
        let mut v = Validator::new(&map, &["refreshToken", "flag"]);
        let _ = v.string("refreshToken").not_empty().get();
        let _ = v.boolean("flag").get();
        assert_eq!(
            v.finish_api().map_err(|e| e.body()["message"].clone()),
            Err(json!([
                "refreshToken should not be empty",
                "flag must be a boolean value"
            ]))
        );
    }

    #[test]
    fn a_dropped_field_still_reports() {
        let map = Map::new();
        let mut v = Validator::new(&map, &[]);
        drop(v.string("gateToken").not_empty());
        assert_eq!(
            v.messages(),
            [
                "gateToken should not be empty",
                "gateToken must be a string"
            ]
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(camel_case("max_per_user"), "maxPerUser");
        assert_eq!(camel_case("userId"), "userId");
        assert!(is_login_name_charset("a-b_C9"));
        assert!(!is_login_name_charset("a b"));
        assert!(!is_login_name_charset(""));
        assert_eq!(
            parse_date("2025-11-03").map(Timestamp::to_iso).as_deref(),
            Some("2025-11-03T00:00:00.000Z")
        );
        assert_eq!(parse_date("2025-13-03"), None);
    }
}
