//! Issue 11's fuzz test on the embedded default: `flash up` in-process, ~3,000 hostile
//! requests of every class over reused keep-alive connections (flash-fuzz), then one honest
//! purchase that must end PAID. Any 5xx, any 2xx to a request invalid by construction, any
//! transport error (a reset on a reused connection) fails the test.

mod common;

use common::{FAST_PAYMENTS, flash_up, stop};
use flash_fuzz::{FuzzConfig, run};
use std::time::Duration;

const ACCESS_SECRET: &str = "fuzz-test-access-secret";
const ADMIN_SECRET: &str = "fuzz-test-admin-secret";

/// Every per-address and per-user limit lifted: one loopback client plays every caller.
const LIMITS: [&str; 9] = [
    "--login-rate-limit-per-user",
    "--login-rate-limit-per-ip",
    "--register-rate-limit-per-ip",
    "--enqueue-rate-limit-per-user",
    "--enqueue-rate-limit-per-ip",
    "--order-rate-limit-per-user",
    "--order-rate-limit-per-ip",
    "--payment-rate-limit-per-user",
    "--payment-rate-limit-per-ip",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_gets_a_5xx_a_2xx_or_a_reset_and_the_sale_goes_on() {
    let mut args = vec![
        "--demo-users",
        "3",
        "--jwt-access-secret",
        ACCESS_SECRET,
        "--admin-register-secret",
        ADMIN_SECRET,
        "--queue-promotion-interval-ms",
        "100",
    ];
    args.extend(FAST_PAYMENTS);
    for l in LIMITS {
        args.extend([l, "1000000000/min"]);
    }
    let sys = flash_up(&args).await;

    let mut fuzz = FuzzConfig::new(format!("http://{}", sys.addr));
    fuzz.requests = 3_000;
    fuzz.concurrency = 8;
    fuzz.seed = 11;
    fuzz.admin_secret = Some(ADMIN_SECRET.into());
    fuzz.jwt_access_secret = Some(ACCESS_SECRET.into());
    // Generous: CI machines are small and busy.
    fuzz.request_timeout = Duration::from_secs(60);
    fuzz.deadline = Duration::from_secs(60);
    let report = run(fuzz).await;

    stop(sys).await;
    assert!(report.sent == 3_000, "{report}");
    assert!(
        report.operations.len() >= 20,
        "the whole document is fuzzed: {report}"
    );
    assert!(report.passed(), "{}", report.render(50));
}
