//! The operations of a served OpenAPI 3 document, reduced to what the fuzzer needs.

use serde_json::{Map, Value};

/// The HTTP methods an OpenAPI path item may hold.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// What a body field accepts, as the document says.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The JSON key.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `object` or `array` (`string` for `anyOf`).
    pub kind: String,
    /// `format` (`uuid`, `date-time`, …), if any.
    pub format: Option<String>,
    /// `enum` values, if any.
    pub enumeration: Vec<Value>,
    /// `minimum`, if any.
    pub minimum: Option<f64>,
    /// `maxLength`, if any.
    pub max_length: Option<u64>,
    /// `pattern`, if any.
    pub pattern: Option<String>,
    /// Whether the schema lists it in `required`.
    pub required: bool,
}

impl Field {
    /// Whether the document bounds the value's text, so that a 60,000-character value is
    /// invalid by construction.
    pub fn constrains_text(&self) -> bool {
        self.max_length.is_some_and(|m| m < 60_000)
            || self.format.is_some()
            || !self.enumeration.is_empty()
            || self.pattern.is_some()
    }
}

/// One documented operation, served at `base`.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Base URL of the service that serves it (`http://host:port`, no trailing slash).
    pub base: String,
    /// Upper-case method.
    pub method: String,
    /// Path template, `{name}` for parameters.
    pub path: String,
    /// `summary`, for the admin heuristic.
    pub summary: String,
    /// `x-service`: which service serves it (`gateway`, `api`, `common`), if said.
    pub service: Option<String>,
    /// Whether an operation's `security` names `bearerAuth`.
    pub bearer: bool,
    /// Whether anonymous callers are allowed (`security` absent, `[]`, or holding `{}`).
    pub anonymous: bool,
    /// Query parameters (name, required).
    pub query: Vec<(String, bool)>,
    /// Header parameters (name, required).
    pub headers: Vec<(String, bool)>,
    /// Whether a request body is documented.
    pub has_body: bool,
    /// The body's fields (an object schema), in document order.
    pub fields: Vec<Field>,
    /// `additionalProperties: false` on the body schema.
    pub closed: bool,
}

impl Operation {
    /// Admin-only operations: "(ADMIN)" in the summary or an `/admin/` path.
    pub fn admin_only(&self) -> bool {
        self.summary.contains("(ADMIN)") || self.path.contains("/admin/")
    }

    /// Whether the path holds a `{parameter}`.
    pub fn has_path_param(&self) -> bool {
        self.path.contains('{')
    }

    /// Whether any body field is required.
    pub fn any_required(&self) -> bool {
        self.fields.iter().any(|f| f.required)
    }

    /// `METHOD /path`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut cur = v;
    for _ in 0..16 {
        let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
            return cur;
        };
        let Some(ptr) = r.strip_prefix('#') else {
            return cur;
        };
        match doc.pointer(ptr) {
            Some(next) => cur = next,
            None => return cur,
        }
    }
    cur
}

/// A schema's type: `type` as a string, or the first non-null one of an OpenAPI 3.1 type list
/// (`["string", "null"]`).
fn type_of(s: &Value) -> Option<String> {
    match s.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        _ => None,
    }
}

/// The first `anyOf` / `oneOf` alternative that is not `null` and has `key`.
fn alternative(doc: &Value, s: &Value, read: impl Fn(&Value) -> Option<String>) -> Option<String> {
    ["anyOf", "oneOf"].iter().find_map(|k| {
        s.get(*k)?
            .as_array()?
            .iter()
            .map(|alt| resolve(doc, alt))
            .filter(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
            .find_map(&read)
    })
}

fn field(doc: &Value, name: &str, schema: &Value, required: bool) -> Field {
    let direct = resolve(doc, schema);
    // `Option<Enum>` is `oneOf: [null, $ref]` in 3.1: read the referenced schema.
    let s = ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| {
            let alts = direct.get(*k)?.as_array()?;
            let real: Vec<&Value> = alts
                .iter()
                .map(|alt| resolve(doc, alt))
                .filter(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            (real.len() == 1 && alts.len() == 2).then(|| real[0])
        })
        .unwrap_or(direct);
    // anyOf / oneOf: the first alternative's type (every documented one is a string).
    let kind = type_of(s)
        .or_else(|| alternative(doc, s, type_of))
        .unwrap_or_else(|| "string".into());
    let format_of = |v: &Value| v.get("format").and_then(Value::as_str).map(str::to_owned);
    let format = format_of(s).or_else(|| alternative(doc, s, format_of));
    Field {
        name: name.to_owned(),
        kind,
        format,
        enumeration: s
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        minimum: s.get("minimum").and_then(Value::as_f64),
        max_length: s.get("maxLength").and_then(Value::as_u64),
        pattern: s.get("pattern").and_then(Value::as_str).map(str::to_owned),
        required,
    }
}

/// Every operation of `doc`, served at `base`, ordered by path.
pub fn operations(doc: &Value, base: &str) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            out.push(operation(doc, base, path, m, item, op));
        }
    }
    out
}

fn operation(doc: &Value, base: &str, path: &str, m: &str, item: &Value, op: &Value) -> Operation {
    let empty = Map::new();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let params = item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            op.get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    for p in params {
        let p = resolve(doc, p);
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        match p.get("in").and_then(Value::as_str) {
            Some("query") => query.push((name.to_owned(), required)),
            Some("header") => headers.push((name.to_owned(), required)),
            _ => {}
        }
    }
    let security = op.get("security").or_else(|| doc.get("security"));
    let reqs: Vec<&Map<String, Value>> = security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    let bearer = reqs.iter().any(|r| r.contains_key("bearerAuth"));
    let anonymous = reqs.is_empty() || reqs.iter().any(|r| r.is_empty());
    let body = op.get("requestBody").map(|b| resolve(doc, b));
    let schema = body
        .and_then(|b| b.pointer("/content/application~1json/schema"))
        .map(|s| resolve(doc, s));
    let props = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Operation {
        base: base.to_owned(),
        method: m.to_ascii_uppercase(),
        path: path.to_owned(),
        summary: op
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        service: op
            .get("x-service")
            .and_then(Value::as_str)
            .map(str::to_owned),
        bearer,
        anonymous,
        query,
        headers,
        has_body: body.is_some(),
        fields: props
            .iter()
            .map(|(k, v)| field(doc, k, v, required.contains(&k.as_str())))
            .collect(),
        closed: schema
            .and_then(|s| s.get("additionalProperties"))
            .is_some_and(|a| a == &Value::Bool(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_resolve_refs_security_and_parameters() {
        let doc = json!({
            "paths": {"/orders": {"post": {
                "summary": "Place",
                "parameters": [{"$ref": "#/components/parameters/Key"}],
                "security": [{"bearerAuth": []}],
                "requestBody": {"content": {"application/json": {"schema":
                    {"$ref": "#/components/schemas/Order"}}}}
            }}, "/live": {"get": {"security": []}}},
            "components": {
                "parameters": {"Key": {"name": "Idempotency-Key", "in": "header", "required": true}},
                "schemas": {"Order": {"type": "object", "additionalProperties": false,
                    "required": ["qty"],
                    "properties": {"event_id": {"type": "string", "format": "uuid"},
                                   "qty": {"type": "integer", "minimum": 1}}}}
            }
        });
        let ops = operations(&doc, "http://x");
        assert_eq!(ops.len(), 2);
        let o = ops.iter().find(|o| o.path == "/orders").unwrap();
        assert_eq!(o.label(), "POST /orders");
        assert!(o.bearer && !o.anonymous && o.closed && o.has_body);
        assert_eq!(o.headers, vec![("Idempotency-Key".to_owned(), true)]);
        assert_eq!(o.fields[1].kind, "integer");
        assert!(o.fields[1].required && !o.fields[0].required);
        assert_eq!(o.fields[0].format.as_deref(), Some("uuid"));
        let live = ops.iter().find(|o| o.path == "/live").unwrap();
        assert!(live.anonymous && !live.bearer);
    }
}
