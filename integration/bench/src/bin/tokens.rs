//! `flash-bench-tokens SECRET COUNT`: prints COUNT access tokens, one per line, of fresh users
//! (random ids, login `benchNNNNNN`), signed as `flash up --jwt-access-secret SECRET` signs them.
//! Access tokens are verified without a store read, so the users need not exist.

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(count)) = (
        args.next(),
        args.next().and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: flash-bench-tokens SECRET COUNT");
        std::process::exit(2);
    };
    let minter = flash_bench::Minter::new(&secret).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for i in 0..count {
        match minter.token(i) {
            Ok(token) => {
                if writeln!(out, "{token}").is_err() {
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
