//! `/metrics` of every pod is valid Prometheus text: `promtool check metrics` passes on each.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_serves_metrics_that_promtool_accepts() {
    let env = Env::new("metrics");
    let Pods { gw, api, pay, http } = Pods::start(&env);
    // Some traffic first, so request counters and legacy gauges have samples.
    http.onsale_event(&gw.url, &api.url, 10, 1).await;
    assert_eq!(http.get(format!("{}/live", pay.url), None).await.0, 200);
    for (name, pod, expected) in [
        ("gateway", &gw, "flash_queue_length"),
        ("api", &api, "orders_created_total"),
        ("pay", &pay, "service_live"),
    ] {
        let resp = reqwest::get(format!("{}/metrics", pod.url))
            .await
            .expect("scrape");
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = resp.text().await.expect("body");
        let (ok, report) = promtool(&text);
        assert!(
            ok,
            "{name}: promtool check metrics failed:\n{report}\n{text}"
        );
        if expected != "service_live" {
            assert!(text.contains(expected), "{name}: no {expected} in\n{text}");
        }
        assert!(
            text.contains("http_requests_total"),
            "{name}: no request metrics"
        );
    }
}
