//! `flash-bench-tokens SECRET COUNT`: prints COUNT access tokens, one per line, of fresh users
//! (random ids, login `benchNNNNNN`), signed as `flash up --jwt-access-secret SECRET` signs them.
//! Access tokens are verified without a store read, so the users need not exist.

use flash_core::domain::{LoginName, Role, User};
use flash_core::{FamilyId, Timestamp, TokenId, UserId};
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(count)) =
        (args.next(), args.next().and_then(|n| n.parse::<u32>().ok()))
    else {
        eprintln!("usage: flash-bench-tokens SECRET COUNT");
        std::process::exit(2);
    };
    let cfg = match flash_bench::bench_config(&["--jwt-access-secret", &secret]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let tokens = flash_handlers::auth::Tokens::new(&flash::up::settings(&cfg).auth);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let now = Timestamp::from_millis(now_ms);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for i in 0..count {
        let user = User {
            id: UserId(uuid::Uuid::new_v4()),
            login: LoginName::trusted(format!("bench{i:06}")),
            password_hash: String::new(),
            role: Role::User,
            created_at: now,
        };
        let id = || TokenId(uuid::Uuid::new_v4());
        match tokens.issue(&user, FamilyId(uuid::Uuid::new_v4()), id(), id(), now) {
            Ok((pair, _)) => {
                if writeln!(out, "{}", pair.access_token).is_err() {
                    std::process::exit(1);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    let _ = out.flush();
}
