//! What the `flash up` tests share: the whole system in-process on an ephemeral port, with
//! cheap password hashes, and its orderly stop.
#![allow(dead_code)]

use flash::up::{Running, UpConfig, start};
use flash_runtime::config::parse_args_ignoring_env;
use flash_runtime::shutdown::Shutdown;

/// Payments that always succeed within 10–30 ms.
pub const FAST_PAYMENTS: [&str; 6] = [
    "--payment-success-rate",
    "1",
    "--payment-processing-min-ms",
    "10",
    "--payment-processing-max-ms",
    "30",
];

/// `flash up` on an ephemeral port with bcrypt cost 4, plus `args` (later flags win).
pub async fn flash_up(args: &[&str]) -> Running {
    let mut all = vec!["--port", "0", "--bcrypt-cost", "4"];
    all.extend_from_slice(args);
    let cfg: UpConfig = parse_args_ignoring_env(&all).expect("test configuration parses");
    start(cfg, Shutdown::new()).await.expect("system starts")
}

/// Triggers the shutdown and waits for it to finish.
pub async fn stop(sys: Running) {
    sys.shutdown.trigger();
    let _ = sys.done.await;
}
