//! Generated requests: one bad-input class applied to one documented operation, with the
//! answer it must get.

use crate::spec::{Field, Operation};
use crate::tokens;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::fmt;

/// A family of hostile input (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Bodies that are not JSON objects: truncated, trailing garbage, non-UTF-8, deep nesting.
    MalformedJson,
    /// Bodies past the server's limit, with a `Content-Length` and chunked; and a body within
    /// the limit that the server answers (401) before reading it.
    Oversized,
    /// A field of the wrong JSON type.
    WrongType,
    /// Huge, negative, fractional and NaN-ish numbers.
    BadNumber,
    /// NUL, `\u0001`, DEL and C1 characters in strings.
    ControlChars,
    /// 60,000-character strings.
    LongString,
    /// Non-UUID and non-UTF-8 path ids (`%ff`, `%C3%28`, `..%2f`).
    BadPathId,
    /// Missing, repeated and malformed query parameters.
    BadQuery,
    /// Tokens with a bad signature, a wrong key, tampered claims, algorithm confusion.
    ForgedToken,
    /// Tokens past `exp` (signed with the real secret when it is known).
    ExpiredToken,
    /// `alg: none` tokens.
    AlgNone,
    /// A refresh token as the access token, and an access token as the refresh token.
    RefreshAsAccess,
    /// Authorization headers that are not `Bearer <jwt>`.
    GarbageAuth,
    /// Another user's orders, tickets, gate tokens and payments; a USER on ADMIN routes.
    OtherUser,
    /// Undocumented methods on documented paths.
    WrongMethod,
    /// Wrong and missing content types.
    ContentType,
    /// Duplicate keys and unknown fields.
    DuplicateUnknown,
    /// Missing, empty, huge and non-ASCII `Idempotency-Key`, `X-Gate-Token`, `X-Signature`,
    /// `X-Request-Id`.
    BadHeaders,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 18] = [
        Class::MalformedJson,
        Class::Oversized,
        Class::WrongType,
        Class::BadNumber,
        Class::ControlChars,
        Class::LongString,
        Class::BadPathId,
        Class::BadQuery,
        Class::ForgedToken,
        Class::ExpiredToken,
        Class::AlgNone,
        Class::RefreshAsAccess,
        Class::GarbageAuth,
        Class::OtherUser,
        Class::WrongMethod,
        Class::ContentType,
        Class::DuplicateUnknown,
        Class::BadHeaders,
    ];

    /// kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Class::MalformedJson => "malformed-json",
            Class::Oversized => "oversized",
            Class::WrongType => "wrong-type",
            Class::BadNumber => "bad-number",
            Class::ControlChars => "control-chars",
            Class::LongString => "long-string",
            Class::BadPathId => "bad-path-id",
            Class::BadQuery => "bad-query",
            Class::ForgedToken => "forged-token",
            Class::ExpiredToken => "expired-token",
            Class::AlgNone => "alg-none",
            Class::RefreshAsAccess => "refresh-as-access",
            Class::GarbageAuth => "garbage-auth",
            Class::OtherUser => "other-user",
            Class::WrongMethod => "wrong-method",
            Class::ContentType => "content-type",
            Class::DuplicateUnknown => "duplicate-unknown",
            Class::BadHeaders => "bad-headers",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a case must be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Invalid by construction: a 4xx, nothing else.
    Reject,
    /// The input is odd but may be legal: anything but a 5xx or a transport error.
    NoServerError,
}

/// How the body is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    None,
    /// With a `Content-Length`.
    Sized(Vec<u8>),
    /// `Transfer-Encoding: chunked`, in 8 KiB chunks.
    Chunked(Vec<u8>),
}

impl Body {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::None => 0,
            Body::Sized(b) | Body::Chunked(b) => b.len(),
        }
    }

    /// Whether there are no body bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its class.
    pub class: Class,
    /// What this variant does, in a few words.
    pub variant: String,
    /// Upper-case method.
    pub method: String,
    /// The operation it derives from, `METHOD /template`.
    pub operation: String,
    /// Full URL (already percent-encoded as sent).
    pub url: String,
    /// Headers, raw bytes (some are deliberately not ASCII). `Authorization` included.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Body,
    /// The answer it must get.
    pub expect: Expect,
}

/// What the fuzzer learnt during set-up: tokens and ids of real resources.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// User A's access token.
    pub a_access: String,
    /// User A's refresh token.
    pub a_refresh: String,
    /// User B's access token (B never holds an admission).
    pub b_access: String,
    /// An ADMIN access token, when an admin secret was given.
    pub admin: Option<String>,
    /// The event the fuzz targets.
    pub event: Option<String>,
    /// A's READY `__global__` ticket and its gate token (never used by A).
    pub a_ticket: Option<(String, String)>,
    /// A's order.
    pub a_order: Option<String>,
    /// A's payment.
    pub a_payment: Option<String>,
    /// The server's access-token secret, when known (expired tokens are then validly signed).
    pub jwt_secret: Option<String>,
    /// The server's body limit in bytes.
    pub body_limit: usize,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

/// Whether `class` can say anything about `op`.
pub fn applies(class: Class, op: &Operation, documented: &[String]) -> bool {
    let string_field = op.fields.iter().any(|f| f.kind == "string");
    match class {
        Class::MalformedJson | Class::ContentType | Class::DuplicateUnknown => op.has_body,
        Class::WrongType | Class::BadNumber => op.has_body && !op.fields.is_empty(),
        Class::ControlChars | Class::LongString => op.has_body && string_field,
        Class::BadPathId => op.has_path_param(),
        Class::BadQuery => !op.query.is_empty(),
        Class::ForgedToken
        | Class::ExpiredToken
        | Class::AlgNone
        | Class::GarbageAuth
        | Class::Oversized
        | Class::BadHeaders => true,
        Class::RefreshAsAccess => op.bearer || op.fields.iter().any(|f| f.name == "refreshToken"),
        Class::OtherUser => other_user_target(op).is_some(),
        Class::WrongMethod => METHODS.iter().any(|m| !documented.iter().any(|d| d == m)),
    }
}

/// Which cross-user probe fits `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A USER on an ADMIN operation.
    Admin,
    /// B reads A's order.
    OrderPath,
    /// B orders with A's gate token.
    GateHeader,
    /// A (the owner) sends the provider's callback for its own payment.
    Callback,
    /// B names A's order in a body.
    OrderField,
    /// B names A's ticket (and gate token) in a body.
    TicketField,
}

fn other_user_target(op: &Operation) -> Option<Probe> {
    let has = |n: &str| op.fields.iter().any(|f| f.name == n);
    if !op.bearer {
        return None;
    }
    if op.admin_only() {
        Some(Probe::Admin)
    } else if op.path.starts_with("/orders/") {
        Some(Probe::OrderPath)
    } else if op
        .headers
        .iter()
        .any(|(h, _)| h.eq_ignore_ascii_case("x-gate-token"))
    {
        Some(Probe::GateHeader)
    } else if has("paymentId") && has("orderId") {
        Some(Probe::Callback)
    } else if has("orderId") {
        Some(Probe::OrderField)
    } else if has("ticketId") {
        Some(Probe::TicketField)
    } else {
        None
    }
}

/// Builds cases for operations; deterministic given the seed and the request index.
pub struct Generator<'a> {
    /// The operations, in document order.
    pub ops: &'a [Operation],
    /// For each operation, the methods documented on its path.
    pub documented: Vec<Vec<String>>,
    /// Every applicable (operation index, class), round-robin order.
    pub pairs: Vec<(usize, Class)>,
    /// What set-up learnt.
    pub ctx: &'a Ctx,
    /// The run's seed.
    pub seed: u64,
}

impl<'a> Generator<'a> {
    /// Lists every applicable pair of `ops` × [`Class::ALL`].
    pub fn new(ops: &'a [Operation], ctx: &'a Ctx, seed: u64) -> Self {
        let documented: Vec<Vec<String>> = ops
            .iter()
            .map(|o| {
                ops.iter()
                    .filter(|p| p.base == o.base && p.path == o.path)
                    .map(|p| p.method.clone())
                    .collect()
            })
            .collect();
        let mut pairs = Vec::new();
        for class in Class::ALL {
            for (i, op) in ops.iter().enumerate() {
                if applies(class, op, &documented[i]) {
                    pairs.push((i, class));
                }
            }
        }
        Generator {
            ops,
            documented,
            pairs,
            ctx,
            seed,
        }
    }

    /// The `n`th case: pair `n mod pairs`, variant drawn from a generator seeded by (seed, n).
    pub fn case(&self, n: u64) -> Case {
        let mut rng = StdRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (i, class) = self.pairs[(n % self.pairs.len() as u64) as usize];
        let op = &self.ops[i];
        let mut b = Builder::new(op, self.ctx, &mut rng);
        b.apply(class, &self.documented[i]);
        b.finish(class)
    }
}

/// Mutable state of one case under construction.
struct Builder<'a, 'r> {
    op: &'a Operation,
    ctx: &'a Ctx,
    rng: &'r mut StdRng,
    method: String,
    path_id: Option<String>,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    auth: Option<Vec<u8>>,
    fields: Map<String, Value>,
    raw: Option<Vec<u8>>,
    content_type: Option<String>,
    chunked: bool,
    expect: Expect,
    variant: String,
}

impl<'a, 'r> Builder<'a, 'r> {
    fn new(op: &'a Operation, ctx: &'a Ctx, rng: &'r mut StdRng) -> Self {
        let mut b = Builder {
            op,
            ctx,
            rng,
            method: op.method.clone(),
            path_id: None,
            query: None,
            headers: Vec::new(),
            auth: None,
            fields: Map::new(),
            raw: None,
            content_type: op.has_body.then(|| "application/json".to_owned()),
            chunked: false,
            expect: Expect::Reject,
            variant: String::new(),
        };
        b.defaults();
        b
    }

    /// A valid-looking request: real ids, A's token, every required field.
    fn defaults(&mut self) {
        let op = self.op;
        if op.has_path_param() {
            let id = if op.path.starts_with("/orders") {
                self.ctx.a_order.clone()
            } else if op.path.starts_with("/events") {
                self.ctx.event.clone()
            } else {
                None
            };
            self.path_id = Some(id.unwrap_or_else(|| uuid(self.rng)));
        }
        if !op.query.is_empty() {
            let q: Vec<String> = op
                .query
                .iter()
                .map(|(name, _)| {
                    let v = match name.as_str() {
                        "ticketId" => self
                            .ctx
                            .a_ticket
                            .as_ref()
                            .map(|t| t.0.clone())
                            .unwrap_or_else(|| uuid(self.rng)),
                        _ => "x".into(),
                    };
                    format!("{name}={v}")
                })
                .collect();
            self.query = Some(q.join("&"));
        }
        for (h, _) in &op.headers {
            if h.eq_ignore_ascii_case("idempotency-key") {
                let key = format!("fz-{}", hex(self.rng, 16));
                self.headers.push((h.clone(), key.into_bytes()));
            }
        }
        if op.bearer {
            self.auth = Some(bearer(&self.ctx.a_access));
        }
        if op.has_body {
            let required: Vec<Field> = op.fields.iter().filter(|f| f.required).cloned().collect();
            let chosen = if required.is_empty() {
                op.fields.iter().take(1).cloned().collect()
            } else {
                required
            };
            for f in chosen {
                let v = self.valid_value(&f);
                self.fields.insert(f.name.clone(), v);
            }
        }
    }

    /// For validation classes of ADMIN operations: the admin token, so the body is read.
    fn as_admin_if_needed(&mut self) {
        if self.op.admin_only()
            && let Some(a) = &self.ctx.admin
        {
            self.auth = Some(bearer(a));
        }
    }

    fn valid_value(&mut self, f: &Field) -> Value {
        let ctx = self.ctx;
        match f.name.as_str() {
            "eventId" | "event_id" => {
                return json!(ctx.event.clone().unwrap_or_else(|| uuid(self.rng)));
            }
            "userId" if self.op.path == "/auth/login" => {
                return json!(format!("fzlogin{}", hex(self.rng, 6)));
            }
            "userId" => return json!(format!("fz{}", hex(self.rng, 10))),
            "password" => return json!("testtest"),
            "adminSecret" => return json!("not-the-admin-secret"),
            "refreshToken" => return json!("not.a.refresh-token"),
            "gateToken" => return json!("g1.not-a-gate-token"),
            "method" => return json!("MOCK"),
            "name" => return json!("Fuzz event"),
            "qty" => return json!(1),
            "ends_at" | "endsAt" => return json!("2030-01-02T10:00:00.000Z"),
            _ => {}
        }
        if let Some(first) = f.enumeration.first() {
            return first.clone();
        }
        match (f.kind.as_str(), f.format.as_deref()) {
            ("string", Some("uuid")) => json!(uuid(self.rng)),
            ("string", Some("date-time")) => json!("2030-01-01T10:00:00.000Z"),
            ("string", _) => json!("fuzz"),
            ("integer" | "number", _) => json!(f.minimum.map_or(1, |m| m.max(1.0) as i64)),
            ("boolean", _) => json!(true),
            ("array", _) => json!([]),
            _ => json!({}),
        }
    }

    fn pick_field(&mut self, pred: impl Fn(&Field) -> bool) -> Option<Field> {
        let candidates: Vec<&Field> = self.op.fields.iter().filter(|f| pred(f)).collect();
        candidates.choose(self.rng).map(|f| (*f).clone())
    }

    fn body_json(&self) -> Vec<u8> {
        Value::Object(self.fields.clone()).to_string().into_bytes()
    }

    /// The body with `field`'s value replaced by raw JSON text.
    fn with_raw_value(&self, field: &str, raw: &str) -> Vec<u8> {
        let mut m = self.fields.clone();
        m.insert(field.to_owned(), json!("__FUZZ_SENTINEL__"));
        Value::Object(m)
            .to_string()
            .replace("\"__FUZZ_SENTINEL__\"", raw)
            .into_bytes()
    }

    fn set_header(&mut self, name: &str, value: Vec<u8>) {
        self.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value));
    }

    fn variant(&mut self, v: impl Into<String>) {
        self.variant = v.into();
    }

    fn apply(&mut self, class: Class, documented: &[String]) {
        match class {
            Class::MalformedJson => self.malformed(),
            Class::Oversized => self.oversized(),
            Class::WrongType => self.wrong_type(),
            Class::BadNumber => self.bad_number(),
            Class::ControlChars => self.control_chars(),
            Class::LongString => self.long_string(),
            Class::BadPathId => self.bad_path_id(),
            Class::BadQuery => self.bad_query(),
            Class::ForgedToken => self.forged(),
            Class::ExpiredToken => {
                let t = tokens::expired(&self.ctx.a_access, self.ctx.jwt_secret.as_deref());
                self.auth_attack(bearer(&t), "expired access token");
            }
            Class::AlgNone => {
                let v = self.rng.random_range(0..12);
                let t = tokens::alg_none(&self.ctx.a_access, v);
                self.auth_attack(bearer(&t), format!("alg none #{v}"));
            }
            Class::RefreshAsAccess => self.refresh_as_access(),
            Class::GarbageAuth => self.garbage_auth(),
            Class::OtherUser => self.other_user(),
            Class::WrongMethod => self.wrong_method(documented),
            Class::ContentType => self.content_type(),
            Class::DuplicateUnknown => self.duplicate_unknown(),
            Class::BadHeaders => self.bad_headers(),
        }
    }

    fn malformed(&mut self) {
        self.as_admin_if_needed();
        let first = self
            .op
            .fields
            .first()
            .map_or_else(|| "a".to_owned(), |f| f.name.clone());
        let deep = 100_000usize;
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("truncated object", b"{".to_vec()),
            ("missing value", format!("{{\"{first}\":}}").into_bytes()),
            ("trailing comma", {
                let mut b = self.body_json();
                b.pop();
                b.extend_from_slice(b",}");
                b
            }),
            ("trailing garbage", {
                let mut b = self.body_json();
                b.extend_from_slice(b"}garbage");
                b
            }),
            ("single quotes", format!("{{'{first}': 'x'}}").into_bytes()),
            ("non-UTF-8 bytes", b"\xff\xfe\xfd{}".to_vec()),
            ("invalid UTF-8 in a string", {
                let mut b = format!("{{\"{first}\":\"").into_bytes();
                b.extend_from_slice(&[0xc3, 0x28, 0xff]);
                b.extend_from_slice(b"\"}");
                b
            }),
            (
                "lone surrogate escape",
                format!("{{\"{first}\":\"\\ud800\"}}").into_bytes(),
            ),
            ("deep array nesting", {
                let mut b = format!("{{\"{first}\":").into_bytes();
                b.extend(std::iter::repeat_n(b'[', deep / 4));
                b.extend(std::iter::repeat_n(b']', deep / 4));
                b.push(b'}');
                b
            }),
            ("deep object nesting", {
                let mut b = Vec::new();
                for _ in 0..5_000 {
                    b.extend_from_slice(b"{\"a\":");
                }
                b.extend_from_slice(b"1");
                b.extend(std::iter::repeat_n(b'}', 5_000));
                b
            }),
            ("JSON string", b"\"just a string\"".to_vec()),
            ("JSON number", b"12345".to_vec()),
            ("JSON null", b"null".to_vec()),
            ("JSON array", b"[{}]".to_vec()),
            ("JSON true", b"true".to_vec()),
            ("bare word", b"undefined".to_vec()),
            ("NUL bytes", b"\0\0\0\0".to_vec()),
            ("two objects", {
                let mut b = self.body_json();
                b.extend(self.body_json());
                b
            }),
        ];
        let (name, bytes) = variants.choose(self.rng).expect("variants").clone();
        self.raw = Some(bytes);
        self.variant(name);
        if self.rng.random_range(0..8) == 0 {
            // Blank: an empty object to the server, valid only when nothing is required.
            self.raw = Some(b"   ".to_vec());
            self.variant("blank body");
            if !self.op.any_required() {
                self.expect = Expect::NoServerError;
            }
        }
    }

    fn oversized(&mut self) {
        let limit = self.ctx.body_limit;
        let (name, size, chunked) = *[
            ("limit + 1 byte", limit + 1, false),
            ("limit + 4 KiB", limit + 4096, false),
            ("256 KiB", 256 * 1024, false),
            ("limit + 1 byte, chunked", limit + 1, true),
            ("128 KiB, chunked", 128 * 1024, true),
            (
                "48 KiB (within the limit), forged token",
                limit * 3 / 4,
                false,
            ),
        ]
        .choose(self.rng)
        .expect("variants");
        let within = size <= limit;
        let field = self
            .op
            .fields
            .iter()
            .find(|f| f.kind == "string")
            .map_or_else(|| "padding".to_owned(), |f| f.name.clone());
        let mut m = self.fields.clone();
        m.insert(field, json!(""));
        let base = Value::Object(m).to_string();
        let pad = size.saturating_sub(base.len());
        let body = base.replacen("\"\"", &format!("\"{}\"", "a".repeat(pad)), 1);
        self.raw = Some(body.into_bytes());
        self.chunked = chunked;
        self.content_type = Some("application/json".into());
        if within {
            // Answered before the body is read (401): the connection must stay usable.
            self.auth = Some(bearer(&tokens::bad_signature(&self.ctx.a_access)));
            self.variant(name);
            if !self.op.bearer {
                self.expect = Expect::NoServerError;
            }
        } else if self.op.has_body {
            self.as_admin_if_needed();
            self.variant(name);
        } else {
            // The server never reads a body here; it must still answer and keep the
            // connection usable (drain or close).
            self.expect = Expect::NoServerError;
            self.variant(format!("{name} on a body-less operation"));
        }
    }

    fn wrong_type(&mut self) {
        self.as_admin_if_needed();
        let Some(f) = self.pick_field(|_| true) else {
            return;
        };
        let mut wrong: Vec<Value> = match f.kind.as_str() {
            "integer" | "number" => vec![
                json!("1"),
                json!("one"),
                json!(true),
                json!([]),
                json!([1]),
                json!({}),
                json!({"$gt": 0}),
            ],
            _ => vec![
                json!(123),
                json!(-1.5),
                json!(true),
                json!(false),
                json!([]),
                json!(["x"]),
                json!({}),
                json!({"$ne": ""}),
            ],
        };
        if f.required {
            wrong.push(Value::Null);
        }
        let v = wrong.choose(self.rng).expect("values").clone();
        self.variant(format!("{} = {v}", f.name));
        self.fields.insert(f.name.clone(), v);
    }

    fn bad_number(&mut self) {
        self.as_admin_if_needed();
        let Some(f) = self
            .pick_field(|f| f.kind == "integer")
            .or_else(|| self.pick_field(|_| true))
        else {
            return;
        };
        let mut lits = vec![
            "-1",
            "1.5",
            "0.5",
            "-0.5",
            "1e400",
            "-1e400",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "9223372036854775808",
            "NaN",
            "Infinity",
            "-Infinity",
            "\"NaN\"",
            "\"1e3\"",
            "0x10",
            "1_000",
            "+1",
            "01",
        ];
        if f.minimum.is_some_and(|m| m >= 1.0) {
            lits.push("0");
            lits.push("-0");
        }
        let lit = *lits.choose(self.rng).expect("literals");
        self.variant(format!("{} = {lit}", f.name));
        self.raw = Some(self.with_raw_value(&f.name, lit));
    }

    fn control_chars(&mut self) {
        self.as_admin_if_needed();
        let Some(f) = self.pick_field(|f| f.kind == "string") else {
            return;
        };
        let base = self
            .fields
            .get(&f.name)
            .and_then(Value::as_str)
            .map_or_else(|| "abcdefgh".to_owned(), str::to_owned);
        let (name, c) = *[
            ("NUL", "\u{0}"),
            ("U+0001", "\u{1}"),
            ("DEL", "\u{7f}"),
            ("C1 NEL", "\u{85}"),
            ("ESC sequence", "\u{1b}[31m"),
            ("CR LF", "\r\n"),
            ("TAB", "\t"),
        ]
        .choose(self.rng)
        .expect("chars");
        let at = self.rng.random_range(0..3);
        let v = match at {
            0 => format!("{c}{base}"),
            1 => format!("{base}{c}"),
            _ => {
                let mid = base
                    .char_indices()
                    .nth(base.chars().count() / 2)
                    .map_or(0, |x| x.0);
                format!("{}{c}{}", &base[..mid], &base[mid..])
            }
        };
        self.variant(format!("{} with {name}", f.name));
        self.fields.insert(f.name.clone(), json!(v));
        if self.op.closed && self.rng.random_range(0..6) == 0 {
            // In a key instead: an unknown field.
            self.fields.remove(&f.name);
            self.fields.insert(format!("{}{c}", f.name), json!(base));
            self.variant(format!("key {}+{name}", f.name));
        }
    }

    fn long_string(&mut self) {
        self.as_admin_if_needed();
        let Some(f) = self.pick_field(|f| f.kind == "string") else {
            return;
        };
        let (name, v) = match self.rng.random_range(0..3) {
            0 => ("60,000 x 'a'", "a".repeat(60_000)),
            1 => ("30,000 x 'é' (60,000 bytes)", "é".repeat(30_000)),
            _ => ("60,000 digits", "7".repeat(60_000)),
        };
        self.variant(format!("{} = {name}", f.name));
        self.fields.insert(f.name.clone(), json!(v));
        if !f.constrains_text() {
            self.expect = Expect::NoServerError;
        }
    }

    fn bad_path_id(&mut self) {
        self.as_admin_if_needed();
        let id = [
            "not-a-uuid",
            "%ff",
            "%C3%28",
            "%ff%fe%fd",
            "..%2f..%2fetc%2fpasswd",
            "..%2F",
            "%00",
            "123",
            "-1",
            "00000000-0000-0000-0000-00000000000g",
            "%7B00000000-0000-0000-0000-000000000000%7D",
            "00000000000000000000000000000000",
            "00000000-0000-0000-0000-000000000000%20",
            "%20",
            "'%20OR%201=1--",
            "a%0d%0aX-Injected:%201",
            "%e2%80%ae",
            "null",
            "undefined",
        ]
        .choose(self.rng)
        .expect("ids")
        .to_string();
        let id = if self.rng.random_range(0..10) == 0 {
            "a".repeat(8_000)
        } else {
            id
        };
        self.variant(format!("id = {}", truncate(&id, 60)));
        self.path_id = Some(id);
    }

    fn bad_query(&mut self) {
        let (name, q) = match self.rng.random_range(0..12) {
            0 => ("missing", String::new()),
            1 => ("empty", "ticketId=".into()),
            2 => ("not a UUID", "ticketId=not-a-uuid".into()),
            3 => ("%ff", "ticketId=%ff".into()),
            4 => ("%C3%28", "ticketId=%C3%28".into()),
            5 => (
                "repeated",
                format!("ticketId={}&ticketId={}", uuid(self.rng), uuid(self.rng)),
            ),
            6 => ("NUL", "ticketId=%00".into()),
            7 => ("60,000 chars", format!("ticketId={}", "a".repeat(60_000))),
            8 => ("array syntax", "ticketId[]=x".into()),
            9 => ("unknown only", "foo=bar".into()),
            10 => ("bad percent escape", "ticketId=%zz".into()),
            _ => ("unknown UUID", format!("ticketId={}", uuid(self.rng))),
        };
        self.variant(format!("query {name}"));
        self.query = Some(q);
    }

    /// Replaces the caller's token; refused when the operation needs a bearer token.
    fn auth_attack(&mut self, value: Vec<u8>, name: impl Into<String>) {
        self.auth = Some(value);
        self.variant(name);
        if !self.op.bearer {
            self.expect = Expect::NoServerError;
        }
    }

    fn forged(&mut self) {
        let real = self
            .ctx
            .admin
            .clone()
            .filter(|_| self.op.admin_only())
            .unwrap_or_else(|| self.ctx.a_access.clone());
        let secret = self.ctx.jwt_secret.as_deref();
        let (name, t) = match self.rng.random_range(0..5) {
            0 => ("bad signature", tokens::bad_signature(&real)),
            1 => (
                "role ADMIN, original signature",
                tokens::tampered_role(&real),
            ),
            2 => ("signed with a wrong key", tokens::wrong_key(&real)),
            3 => (
                "HS512 header (alg confusion)",
                tokens::alg_confusion(&real, secret),
            ),
            _ => ("signature stripped", {
                let (head, _) = real.rsplit_once('.').unwrap_or((&real, ""));
                format!("{head}.")
            }),
        };
        self.auth_attack(bearer(&t), name);
    }

    fn refresh_as_access(&mut self) {
        if self.op.fields.iter().any(|f| f.name == "refreshToken") && self.rng.random_bool(0.5) {
            // The access token where a refresh token belongs: never accepted as one.
            self.fields
                .insert("refreshToken".into(), json!(self.ctx.a_access.clone()));
            self.variant("access token as refreshToken");
            return;
        }
        let t = self.ctx.a_refresh.clone();
        self.auth_attack(bearer(&t), "refresh token as bearer");
    }

    fn garbage_auth(&mut self) {
        let a = self.ctx.a_access.clone();
        let (name, v): (&str, Vec<u8>) = match self.rng.random_range(0..12) {
            0 => ("Bearer", b"Bearer".to_vec()),
            1 => ("Bearer + space", b"Bearer ".to_vec()),
            2 => ("Basic", b"Basic dGVzdDAwMDA6dGVzdHRlc3Q=".to_vec()),
            3 => ("Token scheme", format!("Token {a}").into_bytes()),
            4 => ("no scheme", a.clone().into_bytes()),
            5 => ("Bearer a.b.c", b"Bearer a.b.c".to_vec()),
            6 => ("Bearer ...", b"Bearer ...".to_vec()),
            7 => ("non-ASCII bytes", b"Bearer \xff\xfe\xfd".to_vec()),
            8 => ("token + junk", format!("Bearer {a}x").into_bytes()),
            9 => (
                "truncated token",
                format!("Bearer {}", &a[..a.len().saturating_sub(3)]).into_bytes(),
            ),
            10 => (
                "8,000-char token",
                format!("Bearer {}", "A".repeat(8_000)).into_bytes(),
            ),
            _ => (
                "base64 garbage",
                b"Bearer eyJhbGciOi.eyJzdWIi.c2ln".to_vec(),
            ),
        };
        self.auth_attack(v, format!("Authorization: {name}"));
    }

    fn other_user(&mut self) {
        let Some(probe) = other_user_target(self.op) else {
            return;
        };
        let ctx = self.ctx;
        let b = bearer(&ctx.b_access);
        match probe {
            Probe::Admin => {
                self.variant("USER token on an ADMIN operation");
            }
            Probe::OrderPath => {
                self.auth = Some(b);
                self.path_id = Some(ctx.a_order.clone().unwrap_or_else(|| uuid(self.rng)));
                self.variant("B reads A's order");
            }
            Probe::GateHeader => {
                self.auth = Some(b);
                if let Some((_, gate)) = &ctx.a_ticket {
                    self.set_header("X-Gate-Token", gate.clone().into_bytes());
                }
                self.variant("B orders with A's gate token");
            }
            Probe::Callback => {
                if let Some(o) = &ctx.a_order {
                    self.fields.insert("orderId".into(), json!(o));
                }
                if let Some(p) = &ctx.a_payment {
                    self.fields.insert("paymentId".into(), json!(p));
                }
                let status = ["OK", "FAIL"].choose(self.rng).expect("statuses");
                self.fields.insert("status".into(), json!(status));
                self.variant(format!("owner A sends the provider callback ({status})"));
            }
            Probe::OrderField => {
                self.auth = Some(b);
                if let Some(o) = &ctx.a_order {
                    self.fields.insert("orderId".into(), json!(o));
                }
                self.variant("B names A's order");
            }
            Probe::TicketField => {
                self.auth = Some(b);
                if let Some((t, g)) = &ctx.a_ticket {
                    self.fields.insert("ticketId".into(), json!(t));
                    if self.op.fields.iter().any(|f| f.name == "gateToken") {
                        self.fields.insert("gateToken".into(), json!(g));
                    }
                }
                self.variant("B uses A's ticket");
            }
        }
    }

    fn wrong_method(&mut self, documented: &[String]) {
        let wrong: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| !documented.iter().any(|d| d == m))
            .collect();
        let m = wrong.choose(self.rng).copied().unwrap_or("PUT");
        self.method = m.to_owned();
        self.variant(format!("{m} instead of {}", documented.join("/")));
    }

    fn content_type(&mut self) {
        self.as_admin_if_needed();
        let body = self.body_json();
        let utf16: Vec<u8> = String::from_utf8_lossy(&body)
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let (name, ct, raw, reject): (&str, Option<&str>, Vec<u8>, bool) = match self
            .rng
            .random_range(0..7)
        {
            // Parsed as JSON whatever the type (legacy clients): may succeed.
            0 => ("no Content-Type, JSON body", None, body, false),
            1 => ("text/plain, JSON body", Some("text/plain"), body, false),
            2 => (
                "form-urlencoded",
                Some("application/x-www-form-urlencoded"),
                b"userId=test0000&password=testtest&qty=1".to_vec(),
                true,
            ),
            3 => (
                "multipart",
                Some("multipart/form-data; boundary=XyZ"),
                b"--XyZ\r\nContent-Disposition: form-data; name=\"qty\"\r\n\r\n1\r\n--XyZ--\r\n"
                    .to_vec(),
                true,
            ),
            4 => (
                "UTF-16LE JSON",
                Some("application/json; charset=utf-16"),
                utf16,
                true,
            ),
            5 => (
                "XML",
                Some("application/xml"),
                b"<order><qty>1</qty></order>".to_vec(),
                true,
            ),
            _ => (
                "JSON type, form body",
                Some("application/json"),
                b"a=1&b=2".to_vec(),
                true,
            ),
        };
        self.content_type = ct.map(str::to_owned);
        self.raw = Some(raw);
        self.variant(name);
        if !reject {
            self.expect = Expect::NoServerError;
        }
    }

    fn duplicate_unknown(&mut self) {
        let body = self.body_json();
        let first = self.op.fields.first().map(|f| f.name.clone());
        match self.rng.random_range(0..5) {
            0 => {
                let k = ["zzFuzz", "__proto__", "constructor", "UserId", "role"]
                    .choose(self.rng)
                    .expect("keys");
                self.fields
                    .insert((*k).to_owned(), json!({"isAdmin": true}));
                self.variant(format!("unknown field {k}"));
                if !self.op.closed {
                    self.expect = Expect::NoServerError;
                }
            }
            1 => {
                self.fields.insert("status".into(), json!("PAID"));
                self.fields.insert("soldQty".into(), json!(0));
                self.variant("server-owned fields");
                if !self.op.closed || self.op.fields.iter().any(|f| f.name == "status") {
                    self.expect = Expect::NoServerError;
                }
            }
            _ => {
                // Duplicate keys: which one wins is the server's choice.
                let k = first.unwrap_or_else(|| "a".into());
                let mut raw = body;
                raw.pop();
                let sep = if raw.len() > 1 { "," } else { "" };
                raw.extend_from_slice(format!("{sep}\"{k}\":12345}}").as_bytes());
                self.raw = Some(raw);
                self.expect = Expect::NoServerError;
                self.variant(format!("duplicate key {k}"));
            }
        }
    }

    fn bad_headers(&mut self) {
        let has = |n: &str| {
            self.op
                .headers
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case(n))
        };
        let mut choices = vec![0, 1];
        if has("idempotency-key") {
            choices.extend([2, 3, 4, 5]);
        }
        if has("x-gate-token") {
            choices.extend([6, 7]);
        }
        if has("x-signature") {
            choices.extend([8, 9]);
        }
        let c = *choices.choose(self.rng).expect("choices");
        // An invalid body keeps idempotency and gate cases invalid by construction.
        let spoil = |b: &mut Self| {
            if let Some(f) = b.op.fields.iter().find(|f| f.kind == "integer") {
                b.fields.insert(f.name.clone(), json!(0));
            } else {
                b.fields.insert("zzFuzz".into(), json!(1));
            }
        };
        match c {
            0 => {
                self.set_header("X-Request-Id", "r".repeat(8_000).into_bytes());
                self.expect = Expect::NoServerError;
                self.variant("X-Request-Id 8,000 chars");
            }
            1 => {
                self.set_header("X-Request-Id", b"\xff\xfe\x80id".to_vec());
                self.expect = Expect::NoServerError;
                self.variant("X-Request-Id non-ASCII");
            }
            2 => {
                self.headers
                    .retain(|(h, _)| !h.eq_ignore_ascii_case("idempotency-key"));
                self.variant("Idempotency-Key missing");
            }
            3 => {
                self.set_header("Idempotency-Key", b"   ".to_vec());
                self.variant("Idempotency-Key blank");
            }
            4 => {
                self.set_header("Idempotency-Key", "k".repeat(8_000).into_bytes());
                spoil(self);
                self.variant("Idempotency-Key 8,000 chars, invalid body");
            }
            5 => {
                self.set_header("Idempotency-Key", b"\xff\xfe\x80key".to_vec());
                spoil(self);
                self.variant("Idempotency-Key non-ASCII, invalid body");
            }
            6 => {
                self.auth = Some(bearer(&self.ctx.b_access));
                self.set_header("X-Gate-Token", b"g1.forged.gate".to_vec());
                self.variant("X-Gate-Token forged (caller without admission)");
            }
            7 => {
                self.auth = Some(bearer(&self.ctx.b_access));
                self.set_header("X-Gate-Token", "g".repeat(8_000).into_bytes());
                self.variant("X-Gate-Token 8,000 chars (caller without admission)");
            }
            8 => {
                self.auth = None;
                self.set_header("X-Signature", b"00".repeat(32));
                self.variant("X-Signature wrong");
            }
            _ => {
                self.auth = None;
                self.set_header("X-Signature", b"\xff\xfenot-hex".to_vec());
                self.variant("X-Signature non-ASCII");
            }
        }
    }

    fn finish(mut self, class: Class) -> Case {
        let op = self.op;
        let mut path = op.path.clone();
        if let (Some(start), Some(end)) = (path.find('{'), path.find('}')) {
            let id = self.path_id.clone().unwrap_or_default();
            path.replace_range(start..=end, &id);
        }
        let mut url = format!("{}{path}", op.base);
        if let Some(q) = self.query.as_ref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let body = match (self.raw.take(), op.has_body, class) {
            (Some(raw), _, _) => raw,
            (None, true, _) => self.body_json(),
            (None, false, _) => Vec::new(),
        };
        let body = if body.is_empty() && !matches!(class, Class::MalformedJson) {
            Body::None
        } else if self.chunked {
            Body::Chunked(body)
        } else {
            Body::Sized(body)
        };
        let mut headers = std::mem::take(&mut self.headers);
        if let Some(a) = self.auth.take() {
            headers.push(("Authorization".into(), a));
        }
        if !body.is_empty()
            && let Some(ct) = &self.content_type
        {
            headers.push(("Content-Type".into(), ct.clone().into_bytes()));
        }
        Case {
            class,
            variant: self.variant,
            method: self.method,
            operation: op.label(),
            url,
            headers,
            body,
            expect: self.expect,
        }
    }
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// The first `n` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::operations;

    fn document() -> Value {
        flash_http::openapi::document().clone()
    }

    fn ctx() -> Ctx {
        let t = tokens::hs256(b"k", &json!({"sub": "u", "role": "USER", "typ": "access"}));
        Ctx {
            a_access: t.clone(),
            a_refresh: t.clone(),
            b_access: t,
            event: Some("00000000-0000-4000-8000-000000000001".into()),
            body_limit: 64 * 1024,
            ..Ctx::default()
        }
    }

    /// The served document is OpenAPI 3.1: an optional field's type is `[type, "null"]` and an
    /// optional enum is `oneOf: [$ref, null]`; the fuzzer reads both as the type itself.
    #[test]
    fn the_served_document_gives_every_body_field_its_type() {
        let ops = operations(&document(), "http://t");
        let patch = ops
            .iter()
            .find(|o| o.label() == "PATCH /events/{id}")
            .expect("PATCH /events/{id} is documented");
        let kind = |name: &str| {
            patch
                .fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| (f.kind.as_str(), f.enumeration.len(), f.format.as_deref()))
        };
        assert_eq!(kind("total_qty"), Some(("integer", 0, Some("int64"))));
        assert_eq!(kind("starts_at"), Some(("string", 0, Some("date-time"))));
        assert_eq!(kind("status"), Some(("string", 3, None)));
        assert_eq!(kind("queue_mode"), Some(("string", 2, None)));
        assert!(patch.closed, "unknown keys are refused");
        let enqueue = ops
            .iter()
            .find(|o| o.label() == "POST /queue/enqueue")
            .expect("POST /queue/enqueue is documented");
        assert!(enqueue.bearer && enqueue.fields.iter().all(|f| f.required));
    }

    #[test]
    fn every_class_reaches_some_documented_operation() {
        let ops = operations(&document(), "http://t");
        let ctx = ctx();
        let g = Generator::new(&ops, &ctx, 7);
        for class in Class::ALL {
            assert!(
                g.pairs.iter().any(|(_, c)| *c == class),
                "{class} applies to no operation"
            );
        }
        assert!(ops.len() >= 20);
    }

    #[test]
    fn cases_depend_only_on_the_seed_and_the_index() {
        let ops = operations(&document(), "http://t");
        let ctx = ctx();
        let (a, b) = (Generator::new(&ops, &ctx, 7), Generator::new(&ops, &ctx, 7));
        for n in 0..2_000 {
            let (x, y) = (a.case(n), b.case(n));
            assert_eq!((&x.url, &x.variant, &x.body), (&y.url, &y.variant, &y.body));
        }
        let other = Generator::new(&ops, &ctx, 8);
        assert!((0..200).any(|n| a.case(n).variant != other.case(n).variant));
    }

    #[test]
    fn oversized_bodies_exceed_the_limit_and_long_strings_stay_under_it() {
        let ops = operations(&document(), "http://t");
        let ctx = ctx();
        let g = Generator::new(&ops, &ctx, 3);
        for n in 0..5_000 {
            let c = g.case(n);
            match c.class {
                Class::Oversized if !c.variant.contains("within") => {
                    assert!(c.body.len() > ctx.body_limit, "{}", c.variant);
                }
                Class::LongString => assert!(c.body.len() < ctx.body_limit, "{}", c.variant),
                _ => {}
            }
        }
    }
}
