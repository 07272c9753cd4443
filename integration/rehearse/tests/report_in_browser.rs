//! `report.html` in a real browser: the `flash-rehearse` binary (what `flash rehearse` runs)
//! rehearses a small sale against `flash up` started in this process on port 0, then
//! `web/tests/report.mjs` (playwright-core driving Debian's Chromium headless, as the page's own
//! browser tests do) opens the report it wrote from file:// and checks that every chart is drawn
//! and shows report.json's totals.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and Node.js 20+ with npm; a missing
//! tool fails the test with what to install. `web/node_modules` is installed with `npm ci` when
//! missing or older than the lock file. The report is left in
//! `integration/artifacts/rehearsal-report/` and its screenshots in
//! `integration/artifacts/screenshots/` (both git-ignored), for a person to look at.
//!
//! A second test watches the admin's monitoring page while `flash-rehearse` runs:
//! `web/tests/monitor.mjs` opens it, starts the rehearsal, and checks that the charts move while
//! it runs and end with its paid orders (screenshots before, during and after).

use flash::up::{Running, UpConfig, start};
use flash_runtime::config::parse_args_ignoring_env;
use flash_runtime::shutdown::Shutdown;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The system's ADMIN_REGISTER_SECRET, for the admin who watches the monitoring page.
const ADMIN_SECRET: &str = "monitor-admin-secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd` to its end within `timeout` (killed after it); its output, or why there is none.
async fn run(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{:?}", cmd.as_std());
    let child = cmd
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("cannot run {what}: {e}")),
        Err(_) => Err(format!("{what} did not finish within {timeout:?}")),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Chromium, Node.js 20+ and npm, or a failure saying what to install.
async fn require_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the report's browser test needs Debian's Chromium at {CHROMIUM}: install it with \
         `apt-get update && apt-get install -y chromium`"
    );
    let version = run(
        {
            let mut c = Command::new("node");
            c.arg("--version");
            c
        },
        Duration::from_secs(30),
    )
    .await
    .ok()
    .filter(|o| o.status.success())
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    .unwrap_or_else(|| panic!("the report's browser test needs Node.js 20 or later with npm"));
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "playwright-core needs Node.js 20 or later, found {version}"
    );
    let npm = run(
        {
            let mut c = Command::new("npm");
            c.arg("--version");
            c
        },
        Duration::from_secs(30),
    )
    .await;
    assert!(
        npm.is_ok_and(|o| o.status.success()),
        "the report's browser test needs `npm` beside node {version}"
    );
}

/// `npm ci` in `web/` when `node_modules` is missing or older than `package-lock.json`; once at
/// a time (both tests of this file need it, and run side by side).
async fn ensure_node_modules() {
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = INSTALLING.lock().await;
    let web = repo_root().join("web");
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(web.join("node_modules/.package-lock.json"));
    let locked = modified(web.join("package-lock.json"));
    if matches!((installed, locked), (Some(i), Some(l)) if i >= l) {
        return;
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&web);
    let out = run(cmd, Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("`npm ci` in web/: {e}"));
    assert!(
        out.status.success(),
        "`npm ci` in web/ failed:\n{}",
        text(&out)
    );
}

/// More buyers than tickets, two admitted at a time (so a line forms), payments that fail 40 %
/// of the time (then retried): every chart has something to show.
async fn system() -> Running {
    let cfg: UpConfig = parse_args_ignoring_env(&[
        "--port",
        "0",
        "--demo-users",
        "24",
        "--demo-event-qty",
        "14",
        "--bcrypt-cost",
        "4",
        "--queue-ready-capacity",
        "2",
        "--queue-promotion-interval-ms",
        "50",
        "--payment-processing-min-ms",
        "20",
        "--payment-processing-max-ms",
        "120",
        "--payment-success-rate",
        "0.6",
        "--shutdown-grace-ms",
        "1000",
        "--admin-register-secret",
        ADMIN_SECRET,
    ])
    .expect("test configuration parses");
    start(cfg, Shutdown::new()).await.expect("system starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_real_rehearsal_draws_every_chart_with_the_json_totals() {
    require_tools().await;
    let sys = system().await;
    let base = format!("http://{}", sys.addr);
    let root = repo_root();
    let out = root.join("integration/artifacts/rehearsal-report");
    let _ = std::fs::remove_dir_all(&out);

    let mut rehearse = Command::new(env!("CARGO_BIN_EXE_flash-rehearse"));
    rehearse
        .args(["--url", &base, "-n", "20", "--qty", "1..2", "--ramp", "1s"])
        .args(["--think", "50ms..150ms"])
        .args(["--payment-retries", "6", "--payment-retry-delay", "50ms"])
        .args(["--order-poll-interval", "20ms", "--deadline", "60s"])
        .args(["--settle", "10s", "--no-progress", "--out"])
        .arg(&out)
        .env_remove("DATABASE_URL");
    let rehearsed = run(rehearse, Duration::from_secs(120)).await;
    sys.shutdown.trigger();
    let _ = sys.done.await;
    let rehearsed = rehearsed.unwrap_or_else(|e| panic!("{e}"));
    let said = text(&rehearsed);
    assert_eq!(
        rehearsed.status.code(),
        Some(0),
        "the rehearsal failed:\n{said}"
    );
    let html = out.join("report.html");
    assert!(
        said.contains(&html.display().to_string()),
        "the binary names report.html among its reports:\n{said}"
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json is written"),
    )
    .expect("report.json is JSON");
    assert!(
        json["sale"]["outcomes"]["paid"].as_u64() > Some(0),
        "{said}"
    );
    let o = &json["sale"]["outcomes"];
    assert!(
        o["soldOut"].as_u64().unwrap_or(0) + o["toldSoldOut"].as_u64().unwrap_or(0) > 0,
        "20 buyers of 1–2 tickets for 14: someone is told it is sold out\n{said}"
    );
    let waited = json["series"]["queueLength"]
        .as_array()
        .and_then(|q| q.iter().filter_map(Value::as_u64).max());
    assert!(
        waited > Some(0),
        "20 buyers over 1 s, 2 admitted at a time: a line forms\n{said}"
    );

    ensure_node_modules().await;
    let mut browser = Command::new("node");
    browser
        .arg(root.join("web/tests/report.mjs"))
        .arg(&out)
        .current_dir(&root)
        .env("CHROMIUM_PATH", CHROMIUM)
        .env(
            "FLASH_SCREENSHOTS",
            root.join("integration/artifacts/screenshots"),
        );
    let opened = run(browser, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let said = text(&opened);
    println!("{said}");
    assert!(
        opened.status.success(),
        "the report's browser test failed:\n{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_page_shows_a_rehearsal_live() {
    require_tools().await;
    ensure_node_modules().await;
    let sys = system().await;
    let base = format!("http://{}", sys.addr);
    let root = repo_root();
    let out = root.join("integration/artifacts/rehearsal-monitored");
    let _ = std::fs::remove_dir_all(&out);
    let mut browser = Command::new("node");
    browser
        .arg(root.join("web/tests/monitor.mjs"))
        .arg(&base)
        .current_dir(&root)
        .env("FLASH_ADMIN_SECRET", ADMIN_SECRET)
        .env("FLASH_REHEARSE_BIN", env!("CARGO_BIN_EXE_flash-rehearse"))
        .env("FLASH_REHEARSE_OUT", &out)
        .env("CHROMIUM_PATH", CHROMIUM)
        .env(
            "FLASH_SCREENSHOTS",
            root.join("integration/artifacts/screenshots"),
        );
    let watched = run(browser, Duration::from_secs(300)).await;
    sys.shutdown.trigger();
    let _ = sys.done.await;
    let watched = watched.unwrap_or_else(|e| panic!("{e}"));
    let said = text(&watched);
    println!("{said}");
    assert!(
        watched.status.success(),
        "the monitoring page's test during a rehearsal failed:\n{said}"
    );
}
