//! The `flash` binary itself, as `cargo run --release` starts it: its command line is built from
//! the configuration tree at start-up (the embedded defaults are set by option id), so a renamed
//! option would only show here, as a panic before anything listens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn help_lists_the_embedded_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_flash"))
        .arg("--help")
        .output()
        .expect("flash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flash --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (variable, default) in [
        ("QUEUE_PROMOTION_INTERVAL_MS", "200"),
        ("PAYMENT_PROCESSING_MIN_MS", "200"),
        ("PAYMENT_PROCESSING_MAX_MS", "800"),
        ("PAY_CONCURRENCY", "256"),
    ] {
        let at = text
            .find(&format!("env: {variable}="))
            .unwrap_or_else(|| panic!("{variable} missing from --help:\n{text}"));
        let option = &text[text[..at].rfind("  --").unwrap_or(0)..];
        let end = option.find("\n  -").unwrap_or(option.len());
        assert!(
            option[..end].contains(&format!("[default: {default}]")),
            "{variable} should default to {default}:\n{}",
            &option[..end]
        );
    }
}

#[tokio::test]
async fn flash_up_serves_the_events_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flash"))
        .args(["up", "--port", "0", "--bcrypt-cost", "4"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("flash runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("listening on ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    // The safety net only: the line arrives as soon as the port is bound.
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("flash up prints where it listens");
    let events: serde_json::Value = reqwest::get(format!("{url}/events"))
        .await
        .expect("GET /events")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().expect("flash exits");
    assert!(status.success(), "flash up after SIGTERM: {status:?}");
}
