//! Issue 11's fuzz test on the pods: gateway, api and pay binaries on the real PostgreSQL,
//! Redis and RabbitMQ (each test isolated by `common::Env`), ~3,000 hostile requests of every
//! class against both services over reused keep-alive connections (flash-fuzz), then one
//! honest purchase that must end PAID.

mod common;

use common::*;
use flash_fuzz::{FuzzConfig, run};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_gets_a_5xx_a_2xx_or_a_reset_and_the_sale_goes_on() {
    let mut env = Env::new("fuzz");
    for v in [
        "LOGIN_RATE_LIMIT_PER_USER",
        "ENQUEUE_RATE_LIMIT_PER_USER",
        "ORDER_RATE_LIMIT_PER_USER",
        "PAYMENT_RATE_LIMIT_PER_USER",
    ] {
        env.set(v, "100000/min");
    }
    let gateway = Pod::gateway(&env, &[]);
    let api = Pod::api(&env, &[]);
    let _pay = Pod::pay(&env, &[]);

    let mut fuzz = FuzzConfig::new(gateway.url.clone());
    fuzz.api_base = Some(api.url.clone());
    fuzz.requests = 3_000;
    fuzz.concurrency = 8;
    fuzz.seed = 11;
    // The pods have no demo accounts: flash-fuzz registers its users.
    fuzz.users = ["fuzza01".into(), "fuzzb01".into(), "fuzzbuyer01".into()];
    fuzz.admin_secret = Some(env.vars["ADMIN_REGISTER_SECRET"].clone());
    fuzz.jwt_access_secret = Some(env.vars["JWT_ACCESS_SECRET"].clone());
    fuzz.pid = Some(api.child.id());
    // Generous: CI machines are small and busy.
    fuzz.request_timeout = Duration::from_secs(60);
    fuzz.deadline = Duration::from_secs(60);
    let report = run(fuzz).await;

    assert!(report.sent == 3_000, "{report}");
    assert!(
        report.operations.len() >= 20,
        "both services' documents are fuzzed: {report}"
    );
    assert!(report.passed(), "{}", report.render(50));
}
