//! The web page in a real browser: `web/tests/e2e.mjs` (playwright-core driving Debian's
//! Chromium headless) against the whole system started on an ephemeral port, plus the serving
//! rules of the page and the check that the vendored Socket.IO client and uPlot are the pinned
//! npm packages.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and Node.js with npm. A missing tool
//! fails the test with a message saying what to install: these tests never pass silently.
//! `web/node_modules` is installed with `npm ci` when missing or older than the lock file.
//! Screenshots go to `integration/artifacts/screenshots/` (git-ignored).

mod common;

use common::{flash_up, stop};
use flash::up::Running;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN_SECRET: &str = "browser-test-admin-secret";
/// The browser script stops itself after 480 s; this is the last resort.
const E2E_TIMEOUT: Duration = Duration::from_secs(540);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn web_dir() -> PathBuf {
    repo_root().join("web")
}

/// Runs a command to completion with a deadline; returns (success, stdout + stderr).
fn run(mut cmd: Command, timeout: Duration) -> (bool, String) {
    let what = format!("{cmd:?}");
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run {what}: {e}"),
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    let mut output = out.join().unwrap_or_default();
    output.push_str(&err.join().unwrap_or_default());
    match status {
        Some(s) => (s.success(), output),
        None => (
            false,
            format!("{output}\n{what} did not finish within {timeout:?} and was killed"),
        ),
    }
}

/// Node.js 20 or later (playwright-core's minimum) and npm.
fn require_node() {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let Some(version) = version else {
        panic!(
            "the browser tests need Node.js 20 or later (`node` on PATH) with npm; \
             none was found"
        );
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the browser tests need Node.js 20 or later (playwright-core), found {version}"
    );
    let npm = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        npm,
        "the browser tests need `npm` on PATH beside node {version}"
    );
}

fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's Chromium at {CHROMIUM}: install it with \
         `apt-get update && apt-get install -y chromium`"
    );
}

/// `npm ci` in `web/` when `node_modules` is missing or older than `package-lock.json`; once
/// per test process.
fn ensure_node_modules() {
    static INSTALL: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    require_node();
    let web = web_dir();
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(web.join("node_modules/.package-lock.json"));
    let locked = modified(web.join("package-lock.json"));
    let stale = match (installed, locked) {
        (Some(i), Some(l)) => l > i,
        _ => true,
    };
    if stale {
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web);
        let (ok, output) = run(cmd, Duration::from_secs(300));
        assert!(ok, "`npm ci` in web/ failed:\n{output}");
    }
    *done = true;
}

/// The system on an ephemeral port: 2 admissions at a time, fast promotion and payments,
/// 12-second access tokens (so the page must refresh them), demo users test0000…test0005.
async fn system(payment_success_rate: &str) -> Running {
    flash_up(&[
        "--demo-users",
        "6",
        "--admin-register-secret",
        ADMIN_SECRET,
        "--payment-success-rate",
        payment_success_rate,
        "--payment-processing-min-ms",
        "100",
        "--payment-processing-max-ms",
        "300",
        "--queue-ready-capacity",
        "2",
        "--queue-promotion-interval-ms",
        "100",
        "--queue-ws-refresh-ms",
        "1000",
        "--jwt-access-exp",
        "12s",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_and_admins_use_the_page_in_a_real_browser() {
    require_chromium();
    require_node();
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm ci task");
    let sys = system("1").await;
    let failing = system("0").await;
    let base = format!("http://{}", sys.addr);
    let root = repo_root();
    let mut cmd = Command::new("node");
    cmd.arg(web_dir().join("tests/e2e.mjs"))
        .arg(&base)
        .current_dir(&root)
        .env("FLASH_ADMIN_SECRET", ADMIN_SECRET)
        .env("FLASH_FAILING_BASE_URL", format!("http://{}", failing.addr))
        .env("CHROMIUM_PATH", CHROMIUM)
        .env(
            "FLASH_SCREENSHOTS",
            root.join("integration/artifacts/screenshots"),
        );
    let (ok, output) = tokio::task::spawn_blocking(move || run(cmd, E2E_TIMEOUT))
        .await
        .expect("browser test task");
    println!("{output}");
    stop(sys).await;
    stop(failing).await;
    assert!(ok, "the browser tests failed:\n{output}");
}

/// The exact version `web/package.json` pins `package` to, checked to be what npm installed.
fn pinned_and_installed(package: &str) -> String {
    let web = web_dir();
    let read_json = |p: PathBuf| -> Value {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let pinned = read_json(web.join("package.json"))["devDependencies"][package]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !pinned.is_empty() && pinned.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "web/package.json must pin {package} to an exact version, found {pinned:?}"
    );
    let installed = read_json(web.join(format!("node_modules/{package}/package.json")))["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(installed, pinned, "npm installed another {package}");
    pinned
}

/// `web/vendor/<vendored>` is `node_modules/<package>/<published>` byte for byte; returns it.
fn assert_vendored(package: &str, pinned: &str, vendored: &str, published: &str) -> Vec<u8> {
    let web = web_dir();
    let copy = std::fs::read(web.join("vendor").join(vendored)).unwrap_or_default();
    let original =
        std::fs::read(web.join("node_modules").join(package).join(published)).unwrap_or_default();
    assert!(
        !original.is_empty(),
        "the npm package {package} has no {published}"
    );
    assert!(
        copy == original,
        "web/vendor/{vendored} differs from {published} of {package} {pinned} on npm: \
         run `sh web/vendor/update.sh`"
    );
    copy
}

/// `web/vendor/<vendored>` is the pinned `package`'s `<published>` (see [`assert_vendored`]),
/// whose first 200 bytes carry `banner(pinned version)`; the pinned version.
fn assert_vendored_release(
    package: &str,
    vendored: &str,
    published: &str,
    banner: impl Fn(&str) -> String,
) -> String {
    ensure_node_modules();
    let pinned = pinned_and_installed(package);
    let copy = assert_vendored(package, &pinned, vendored, published);
    let header = String::from_utf8_lossy(&copy[..copy.len().min(200)]).into_owned();
    assert!(
        header.contains(&banner(&pinned)),
        "unexpected header {header:?}"
    );
    pinned
}

#[test]
fn the_vendored_socket_io_client_is_the_pinned_npm_package() {
    assert_vendored_release(
        "socket.io-client",
        "socket.io.esm.min.js",
        "dist/socket.io.esm.min.js",
        |v| format!("Socket.IO v{v}"),
    );
}

/// uPlot draws the rehearsal report's charts (inlined into report.html by `flash-rehearse`).
#[test]
fn the_vendored_uplot_is_the_pinned_npm_package() {
    let pinned = assert_vendored_release(
        "uplot",
        "uPlot.iife.min.js",
        "dist/uPlot.iife.min.js",
        |v| format!("uPlot (v{v})"),
    );
    assert_vendored("uplot", &pinned, "uPlot.min.css", "dist/uPlot.min.css");
    let license = assert_vendored("uplot", &pinned, "uPlot.LICENSE", "LICENSE");
    assert!(String::from_utf8_lossy(&license).contains("MIT License"));
}

/// The page and the API share one origin: the page never answers an API path, and the API's
/// own answers (JSON, 404s, Socket.IO) are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_beside_the_api() {
    let sys = system("1").await;
    let base = format!("http://{}", sys.addr);
    let http = reqwest::Client::new();
    let html_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    // What a browser's address bar asks for.
    let browse = |url: String| http.get(url).header("accept", html_accept).send();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("x-request-id"));
    let html = page.text().await.unwrap();
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script")
        .to_owned();
    assert!(script.starts_with(&format!("/assets/{}/", flash::web::version())));

    let js = http.get(format!("{base}{script}")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    let h = js.headers();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");

    let deep = browse(format!("{base}/checkout/123")).await.unwrap();
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.unwrap().contains("<main id=\"main\""));

    // API paths answer as the API whatever the browser accepts.
    let events = browse(format!("{base}/events")).await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let missing_event = browse(format!(
        "{base}/events/3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    ))
    .await
    .unwrap();
    assert_eq!(missing_event.status(), 404);
    let body: Value = missing_event.json().await.unwrap();
    assert_eq!(body["message"], "Event not found");
    let metrics = browse(format!("{base}/metrics")).await.unwrap();
    assert!(metrics.text().await.unwrap().contains("orders_paid_total"));

    // Unknown addresses: the legacy JSON 404 for API clients, the page for browsers.
    let unknown = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["message"], "Cannot GET /nowhere");
    let posted = http.post(format!("{base}/")).send().await.unwrap();
    assert_eq!(posted.status(), 404);

    // Socket.IO still answers its Engine.IO handshake.
    let eio = browse(format!("{base}/socket.io/?EIO=4&transport=polling"))
        .await
        .unwrap();
    assert_eq!(eio.status(), 200);
    assert!(eio.text().await.unwrap().starts_with("0{"));

    stop(sys).await;
}
