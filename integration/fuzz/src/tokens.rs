//! Hostile bearer tokens derived from a real access token: bad signatures, `alg: none`,
//! expired ones, tampered claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn encode(v: &Value) -> String {
    B64.encode(v.to_string().as_bytes())
}

fn sign(key: &[u8], input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(input.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// The claims of a JWT (unverified), or an empty object.
pub fn claims(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| B64.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

/// An HS256 token of `claims` signed with `key`.
pub fn hs256(key: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT"})),
        encode(claims)
    );
    let sig = sign(key, &input);
    format!("{input}.{sig}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A token whose signature does not match (last signature bytes changed).
pub fn bad_signature(real: &str) -> String {
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    if let Some(sig) = parts.last_mut() {
        let flipped: String = sig
            .chars()
            .rev()
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .collect();
        *sig = flipped;
    }
    parts.join(".")
}

/// The real token's claims with `role: ADMIN`, the original signature kept.
pub fn tampered_role(real: &str) -> String {
    let mut c = claims(real);
    c["role"] = json!("ADMIN");
    let parts: Vec<&str> = real.split('.').collect();
    format!(
        "{}.{}.{}",
        parts.first().copied().unwrap_or_default(),
        encode(&c),
        parts.get(2).copied().unwrap_or_default()
    )
}

/// The real claims signed with a key the server does not know.
pub fn wrong_key(real: &str) -> String {
    hs256(b"not-the-server-secret", &claims(real))
}

/// `alg: none` variants (empty signature, with and without the trailing dot, case games).
pub fn alg_none(real: &str, variant: usize) -> String {
    let alg = ["none", "None", "NONE", "nOnE"][variant % 4];
    let header = encode(&json!({"alg": alg, "typ": "JWT"}));
    let mut c = claims(real);
    if variant % 2 == 1 {
        c["role"] = json!("ADMIN");
    }
    let body = encode(&c);
    if variant.is_multiple_of(3) {
        format!("{header}.{body}")
    } else {
        format!("{header}.{body}.")
    }
}

/// The real claims with `exp` an hour ago, signed with the server's secret when it is known
/// (so only the expiry is wrong), otherwise with a wrong key.
pub fn expired(real: &str, secret: Option<&str>) -> String {
    let mut c = claims(real);
    let now = now_secs();
    c["iat"] = json!(now - 7200);
    c["exp"] = json!(now - 3600);
    hs256(
        secret.map_or(b"not-the-server-secret".as_slice(), str::as_bytes),
        &c,
    )
}

/// The real claims with an HS512 header (algorithm confusion), HS256 signature.
pub fn alg_confusion(real: &str, secret: Option<&str>) -> String {
    let key = secret.map_or(b"not-the-server-secret".as_slice(), str::as_bytes);
    let input = format!(
        "{}.{}",
        encode(&json!({"alg": "HS512", "typ": "JWT"})),
        encode(&claims(real))
    );
    let sig = sign(key, &input);
    format!("{input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_tokens_keep_or_break_what_they_say() {
        let real = hs256(b"k", &json!({"sub": "u", "role": "USER", "exp": 1}));
        assert_eq!(claims(&real)["sub"], "u");
        assert_ne!(bad_signature(&real), real);
        assert_eq!(claims(&tampered_role(&real))["role"], "ADMIN");
        let e = expired(&real, Some("k"));
        assert!(claims(&e)["exp"].as_i64().unwrap() < now_secs());
        // Signed with the right key: recomputing the signature matches.
        let (input, sig) = e.rsplit_once('.').unwrap();
        assert_eq!(sign(b"k", input), sig);
        assert!(alg_none(&real, 0).split('.').count() == 2);
    }
}
