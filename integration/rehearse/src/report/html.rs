//! `report.html`: the report as one self-contained page that opens from disk, offline. The
//! tables are written here; the charts of the sale's timeline are drawn in the browser by uPlot
//! (vendored in `web/vendor`, pinned in `web/package.json`) from the report itself, embedded as
//! the JSON blob `#report-data` — the same document as `report.json`, so the charts show the
//! JSON's totals. Every string that comes from the plan, the server or the run is escaped.

use super::{DatabaseAudit, Report, mark};
use crate::audit::Check;
use crate::stats::{FailureGroup, StepSummary};
use std::fmt::Write as _;

const UPLOT_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/vendor/uPlot.iife.min.js"
));
const UPLOT_CSS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/vendor/uPlot.min.css"
));
const UPLOT_LICENSE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/vendor/uPlot.LICENSE"
));
const REPORT_JS: &str = include_str!("report.js");
const REPORT_CSS: &str = include_str!("report.css");

/// Only what the page carries runs or styles it; it loads nothing, from anywhere.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'";

/// Text for HTML content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&` only ever occur inside
/// JSON strings, where their `\u` escapes mean the same, so no `</script>` or `<!--` can end or
/// bend the block.
fn script_json<T: serde::Serialize>(v: &T) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string(v)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// The version in the vendored build's first line, `/*! https://… (v1.6.32) */`.
fn uplot_version() -> &'static str {
    UPLOT_JS
        .lines()
        .next()
        .and_then(|l| l.split("(v").nth(1))
        .and_then(|l| l.split(')').next())
        .unwrap_or("unknown")
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |s| format!("{s:.2} s"))
}

impl Report {
    /// The self-contained `report.html`.
    pub fn html(&self) -> Result<String, serde_json::Error> {
        let data = script_json(self)?;
        let mut o = String::with_capacity(UPLOT_JS.len() + data.len() + 32 * 1024);
        let verdict = self.verdict_line();
        let _ = write!(
            o,
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
             <title>Sale rehearsal — {verdict} — {}</title>\n<style>\n{UPLOT_CSS}\n{REPORT_CSS}</style>\n\
             </head>\n<body>\n",
            esc(&self.started_at)
        );
        self.header(&mut o);
        o.push_str("<main>\n");
        self.totals(&mut o);
        self.timeline(&mut o);
        self.latency(&mut o);
        self.failures(&mut o);
        self.audits(&mut o);
        self.configuration(&mut o);
        o.push_str("</main>\n");
        let _ = writeln!(
            o,
            "<footer><p>Written by {}. Charts drawn with uPlot {} (MIT License, © Leon Sorokin), \
             inlined with this report's data: the page needs no network.</p></footer>",
            esc(&self.tool),
            esc(uplot_version())
        );
        let _ = write!(
            o,
            "<script type=\"application/json\" id=\"report-data\">{data}</script>\n\
             <script>/*!\n{UPLOT_LICENSE}*/\n{UPLOT_JS}</script>\n<script>\n{REPORT_JS}</script>\n\
             </body>\n</html>\n"
        );
        Ok(o)
    }

    fn header(&self, o: &mut String) {
        let verdict = self.verdict_line();
        let _ = write!(
            o,
            "<header class=\"verdict {}\">\n<h1>Sale rehearsal — <span id=\"verdict\">{verdict}</span></h1>\n\
             <p>{} · started {} · {} buyers · sale {:.2} s</p>\n",
            verdict.to_ascii_lowercase(),
            esc(&self.tool),
            esc(&self.started_at),
            self.sale.buyers,
            self.sale.seconds
        );
        if !self.verdict.reasons.is_empty() {
            o.push_str("<ul class=\"reasons\">\n");
            for r in &self.verdict.reasons {
                let _ = writeln!(o, "<li>{}</li>", esc(r));
            }
            o.push_str("</ul>\n");
        }
        o.push_str("</header>\n");
    }

    fn totals(&self, o: &mut String) {
        let s = &self.sale;
        let oc = &s.outcomes;
        o.push_str("<section id=\"totals\">\n<h2>Totals</h2>\n<dl class=\"totals\">\n");
        let rows: [(&str, String); 10] = [
            ("arrivals", s.arrivals.to_string()),
            (
                "admissions",
                format!("{} ({:.0}/s)", s.admissions, s.admissions_per_second),
            ),
            (
                "orders placed / tickets",
                format!("{} / {}", s.orders, s.tickets_ordered),
            ),
            ("paid (as buyers saw it)", oc.paid.to_string()),
            (
                "paid (audit)",
                format!("{} orders / {} tickets", s.paid_orders, s.paid_tickets),
            ),
            (
                "requests",
                format!("{} ({:.0}/s)", s.requests, s.requests_per_second),
            ),
            (
                "errors",
                format!(
                    "{} ({:.3} %; {} before the sale)",
                    s.errors,
                    s.error_rate * 100.0,
                    self.setup.errors
                ),
            ),
            (
                "outcomes",
                format!(
                    "paid {} · sold out {} · told sold out in line {} · limit {} · payment failed {} · failed {} · unfinished {} · not started {}",
                    oc.paid,
                    oc.sold_out,
                    oc.told_sold_out,
                    oc.limit_reached,
                    oc.payment_failed,
                    oc.failed,
                    oc.unfinished,
                    oc.not_started
                ),
            ),
            (
                "capacity seen",
                s.capacity_seen.map_or("—".into(), |c| c.to_string()),
            ),
            (
                "pre-login",
                format!(
                    "{} buyers in {:.2} s",
                    self.setup.logged_in, self.setup.login_seconds
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(&v));
        }
        o.push_str("</dl>\n</section>\n");
    }

    fn timeline(&self, o: &mut String) {
        let t = &self.timeline;
        let _ = write!(
            o,
            "<section id=\"timeline\">\n<h2>The sale, second by second</h2>\n\
             <p class=\"note\">Counted every {} ms of the sale clock; dashed lines mark its moments.</p>\n\
             <noscript><p>The charts need JavaScript; every other part of this page does not.</p></noscript>\n\
             <div id=\"charts\" class=\"charts\"></div>\n\
             <table class=\"moments\">\n<caption>Moments (since the sale clock started)</caption>\n<tbody>\n",
            self.series.interval_ms
        );
        for (name, at) in [
            ("first admission", t.first_admission_s),
            ("last admission", t.last_admission_s),
            ("first paid", t.first_paid_s),
            ("sold out (nothing available)", t.sold_out_s),
            ("first sold-out answer", t.first_sold_out_reply_s),
            ("last order placed", t.last_hold_s),
            ("last waiting buyer told SOLD_OUT", t.last_told_sold_out_s),
            (
                "longest a waiting buyer went unaware of the sell-out",
                t.sold_out_to_last_told_s,
            ),
            ("all tickets paid", t.all_paid_s),
            ("last paid", t.last_paid_s),
        ] {
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{name}</th><td>{}</td></tr>",
                secs(at)
            );
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }

    fn latency(&self, o: &mut String) {
        o.push_str("<section id=\"latency\">\n<h2>Latency per step</h2>\n");
        let (spans, requests): (Vec<&StepSummary>, Vec<&StepSummary>) = self
            .steps
            .iter()
            .partition(|s| s.step.is_some_and(|st| st.is_span()));
        latency_table(
            o,
            "Requests (one HTTP request or socket handshake)",
            &requests,
        );
        latency_table(o, "Stretches of the journey", &spans);
        o.push_str("</section>\n");
    }

    fn failures(&self, o: &mut String) {
        o.push_str("<section id=\"errors\">\n<h2>Errors</h2>\n");
        failure_table(o, "Failed requests", &self.errors, "No errors.");
        failure_table(
            o,
            "Retried requests (recovered or not)",
            &self.retries,
            "No retries.",
        );
        o.push_str("</section>\n");
    }

    fn audits(&self, o: &mut String) {
        let a = &self.audit;
        let _ = write!(
            o,
            "<section id=\"audit\">\n<h2>Audit of SPEC §8</h2>\n\
             <h3>Through the API — <span class=\"result\">{}</span></h3>\n\
             <p>Settled: {} after {} reads ({} ms); {} orders in the run, {} PAID ({} tickets).</p>\n",
            if a.passed { "PASS" } else { "FAIL" },
            if a.settled { "yes" } else { "no" },
            a.reads,
            a.settle_ms,
            a.orders_in_run,
            a.paid_orders,
            a.paid_tickets
        );
        check_table(o, "api", &a.checks);
        let DatabaseAudit {
            status,
            detail,
            checks,
        } = &self.database_audit;
        let _ = write!(
            o,
            "<h3>Through the database — <span class=\"result\">{}</span></h3>\n<p>{}</p>\n",
            esc(status),
            esc(detail)
        );
        if !checks.is_empty() {
            check_table(o, "database", checks);
        }
        o.push_str("</section>\n");
    }

    fn configuration(&self, o: &mut String) {
        o.push_str(
            "<section id=\"configuration\">\n<h2>Configuration it ran with</h2>\n\
             <table class=\"plan\">\n<tbody>\n",
        );
        if let Some(plan) = self.plan.as_object() {
            for (k, v) in plan {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "—".to_owned(),
                    other => other.to_string(),
                };
                let _ = writeln!(
                    o,
                    "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                    esc(k),
                    esc(&shown)
                );
            }
        }
        o.push_str("</tbody>\n</table>\n");
        if !self.events_before.is_empty() {
            o.push_str(
                "<table class=\"events\">\n<caption>Events before the sale</caption>\n<thead><tr>\
                 <th scope=\"col\">event</th><th scope=\"col\">id</th><th scope=\"col\">status</th>\
                 <th scope=\"col\">total</th><th scope=\"col\">sold</th><th scope=\"col\">held</th>\
                 </tr></thead>\n<tbody>\n",
            );
            for e in &self.events_before {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.name),
                    esc(&e.id),
                    esc(&e.status),
                    e.total_qty,
                    e.sold_qty,
                    e.held_qty.map_or("—".into(), |h| h.to_string())
                );
            }
            o.push_str("</tbody>\n</table>\n");
        }
        o.push_str("</section>\n");
    }
}

/// Percentiles with bars on one scale per table: the largest `max` is the full width.
fn latency_table(o: &mut String, caption: &str, steps: &[&StepSummary]) {
    if steps.is_empty() {
        return;
    }
    let top = steps.iter().map(|s| s.max_ms).fold(0.0_f64, f64::max);
    let width = |ms: f64| {
        if top > 0.0 {
            (ms / top * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    let _ = write!(
        o,
        "<table class=\"latency\">\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">step</th>\
         <th scope=\"col\">count</th><th scope=\"col\">mean ms</th><th scope=\"col\">p50 ms</th>\
         <th scope=\"col\">p90 ms</th><th scope=\"col\">p99 ms</th><th scope=\"col\">max ms</th>\
         <th scope=\"col\" class=\"bars\">p50 · p90 · p99 · max</th></tr></thead>\n<tbody>\n",
        esc(caption)
    );
    for s in steps {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{:.2}</td><td class=\"bars\"><span class=\"bar max\" style=\"width:{:.1}%\"></span>\
             <span class=\"bar p99\" style=\"width:{:.1}%\"></span><span class=\"bar p90\" style=\"width:{:.1}%\"></span>\
             <span class=\"bar p50\" style=\"width:{:.1}%\"></span></td></tr>",
            esc(&s.name),
            s.count,
            s.mean_ms,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.max_ms,
            width(s.max_ms),
            width(s.p99_ms),
            width(s.p90_ms),
            width(s.p50_ms)
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

fn failure_table(o: &mut String, caption: &str, rows: &[FailureGroup], none: &str) {
    let _ = writeln!(o, "<h3>{}</h3>", esc(caption));
    if rows.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(none));
        return;
    }
    o.push_str(
        "<table class=\"failures\">\n<thead><tr><th scope=\"col\">step</th><th scope=\"col\">status</th>\
         <th scope=\"col\">message</th><th scope=\"col\">count</th></tr></thead>\n<tbody>\n",
    );
    for e in rows {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.step),
            esc(&e.status),
            esc(&e.message),
            e.count
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

fn check_table(o: &mut String, which: &str, checks: &[Check]) {
    let _ = write!(
        o,
        "<table class=\"checks\" id=\"checks-{which}\">\n<thead><tr><th scope=\"col\">check</th>\
         <th scope=\"col\">SPEC</th><th scope=\"col\">result</th><th scope=\"col\">detail</th></tr></thead>\n<tbody>\n"
    );
    for c in checks {
        let m = mark(c);
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"result {}\">{m}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.spec),
            m.to_ascii_lowercase(),
            esc(&c.detail)
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ApiAudit, EventState};
    use crate::report::{Outcomes, Sale, Setup, Timeline, Verdict};
    use crate::stats::{Samples, Step};
    use serde_json::{Value, json};

    fn check(name: &str, spec: &str, passed: Option<bool>, detail: &str) -> Check {
        Check {
            name: name.into(),
            spec: spec.into(),
            passed,
            detail: detail.into(),
        }
    }

    fn step(step: Step, count: u64, p50: f64, p99: f64) -> StepSummary {
        StepSummary {
            step: Some(step),
            name: step.name().into(),
            count,
            mean_ms: p50 * 1.1,
            p50_ms: p50,
            p90_ms: (p50 + p99) / 2.0,
            p99_ms: p99,
            max_ms: p99 * 1.3,
        }
    }

    /// A 3-second sale of 20 buyers for 12 tickets, one order of 2 tickets, one failed request;
    /// `prefix` and `name` are the plan's and the event's text.
    fn fixture(prefix: &str, name: &str) -> Report {
        let mut samples = Samples::default();
        for i in 0..20u64 {
            let at = i * 50;
            samples.count(at, |c| c.arrivals += 1);
            samples.count(at + 20, |c| c.queued += 1);
        }
        for i in 0..12u64 {
            let at = 400 + i * 150;
            samples.count(at, |c| c.admitted += 1);
            samples.count(at + 30, |c| {
                c.orders += 1;
                c.tickets += if i == 0 { 2 } else { 1 };
            });
            if i < 10 {
                samples.count(at + 400, |c| c.paid += 1);
            }
        }
        for i in 0..8u64 {
            samples.count(2300 + i * 10, |c| c.gave_up += 1);
        }
        samples.count(1200, |c| c.errors += 1);
        let series = samples.series(3000);
        Report {
            tool: "flash-rehearse 0.1.0".into(),
            started_at: "2026-12-06T20:00:00Z".into(),
            plan: json!({
                "gateway_url": "http://127.0.0.1:8080",
                "api_url": "http://127.0.0.1:8080",
                "users": 20,
                "user_prefix": prefix,
                "qty": {"min": 1, "max": 2},
                "think": {"minMs": 0, "maxMs": 0},
                "capacity": null,
                "max_error_rate": 0.1,
            }),
            events_before: vec![EventState {
                id: "5fc5e855-f1e6-4c0a-a758-5f76eb6aee4e".into(),
                name: name.into(),
                status: "ONSALE".into(),
                total_qty: 12,
                sold_qty: 0,
                held_qty: Some(0),
                available_qty: Some(12),
                max_per_user: Some(2),
            }],
            setup: Setup {
                registered: 0,
                logged_in: 20,
                login_seconds: 0.4,
                logins_per_second: 50.0,
                requests: 21,
                errors: 2,
            },
            sale: Sale {
                buyers: 20,
                arrivals: 20,
                seconds: 3.0,
                outcomes: Outcomes {
                    paid: 10,
                    told_sold_out: 8,
                    payment_failed: 2,
                    ..Outcomes::default()
                },
                requests: 180,
                requests_per_second: 60.0,
                admissions: 12,
                admissions_per_second: 7.3,
                orders: 12,
                tickets_ordered: 13,
                paid_orders: 10,
                paid_tickets: 11,
                paid_per_second: 3.3,
                paid_per_second_while_paying: 6.0,
                errors: 3,
                error_rate: 3.0 / 201.0,
                capacity_seen: Some(3),
            },
            timeline: Timeline {
                first_admission_s: Some(0.4),
                last_admission_s: Some(2.05),
                first_paid_s: Some(0.83),
                last_paid_s: Some(2.18),
                sold_out_s: Some(2.1),
                all_paid_s: None,
                first_sold_out_reply_s: Some(2.3),
                last_hold_s: Some(1.98),
                last_told_sold_out_s: Some(2.38),
                sold_out_to_last_told_s: Some(0.4),
            },
            series,
            steps: vec![
                step(Step::Login, 20, 3.0, 9.0),
                step(Step::Enqueue, 20, 2.0, 6.0),
                step(Step::Order, 12, 4.0, 15.0),
                step(Step::QueueWait, 12, 800.0, 1900.0),
            ],
            errors: vec![FailureGroup {
                step: "order".into(),
                status: "500".into(),
                message: format!("{name} failed"),
                count: 1,
            }],
            retries: Vec::new(),
            audit: ApiAudit {
                passed: true,
                settled: true,
                settle_ms: 120,
                reads: 2,
                checks: vec![
                    check(
                        "no oversell: sold + held ≤ total",
                        "§8.1",
                        Some(true),
                        "11 + 0 ≤ 12",
                    ),
                    check("admitted ≤ capacity", "§8.6", Some(true), "3 ≤ 3"),
                    check(
                        "every requested payment settled",
                        "§8.5",
                        None,
                        "not checked",
                    ),
                ],
                events_after: Vec::new(),
                orders_in_run: 12,
                paid_orders: 10,
                paid_tickets: 11,
            },
            database_audit: DatabaseAudit {
                status: "skipped".into(),
                detail: "no --database-url / DATABASE_URL given".into(),
                checks: Vec::new(),
            },
            verdict: Verdict {
                passed: false,
                exit_code: 1,
                reasons: vec!["3 failed requests (1.493 %) exceed --max-error-rate 0.000 %".into()],
            },
        }
    }

    fn written(report: &Report) -> (String, Value) {
        let dir =
            std::env::temp_dir().join(format!("flash-rehearse-html-{}", uuid::Uuid::new_v4()));
        let files = report.write(&dir).expect("reports are written");
        let html = std::fs::read_to_string(&files.html).expect("report.html");
        let json = serde_json::from_str(&std::fs::read_to_string(&files.json).expect("json"))
            .expect("report.json is JSON");
        let _ = std::fs::remove_dir_all(&dir);
        (html, json)
    }

    fn blob(html: &str) -> Value {
        let open = "<script type=\"application/json\" id=\"report-data\">";
        let start = html.find(open).expect("the page has the report's data") + open.len();
        let end = start
            + html[start..]
                .find("</script>")
                .expect("the data block ends");
        serde_json::from_str(&html[start..end]).expect("the data block is JSON")
    }

    fn column_sum(series: &Value, key: &str) -> u64 {
        series[key]
            .as_array()
            .unwrap_or_else(|| panic!("no column {key}"))
            .iter()
            .map(|v| v.as_u64().expect("counts"))
            .sum()
    }

    #[test]
    fn the_page_carries_the_json_report_and_its_columns_add_up_to_its_totals() {
        let (html, json) = written(&fixture("test", "Spring Concert"));
        let data = blob(&html);
        assert_eq!(data, json, "the page's data is report.json");

        let series = &data["series"];
        let sale = &json["sale"];
        assert_eq!(series["intervalMs"], 100);
        assert_eq!(series["arrivals"].as_array().map(Vec::len), Some(31));
        for (column, total) in [
            ("arrivals", &sale["arrivals"]),
            ("admitted", &sale["admissions"]),
            ("orders", &sale["orders"]),
            ("tickets", &sale["ticketsOrdered"]),
            ("paid", &sale["outcomes"]["paid"]),
        ] {
            assert_eq!(
                Some(column_sum(series, column)),
                total.as_u64(),
                "{column} against {total}"
            );
        }
        let before = json["setup"]["errors"].as_u64().unwrap();
        assert_eq!(
            Some(column_sum(series, "errors") + before),
            sale["errors"].as_u64()
        );
        // 20 queued by 1 s, 4 of them admitted by then; 12 admitted and 8 gave up in all.
        let waiting = series["queueLength"].as_array().unwrap();
        assert_eq!(waiting.last(), Some(&json!(0)));
        assert_eq!(waiting.iter().filter_map(Value::as_u64).max(), Some(16));
    }

    #[test]
    fn the_page_shows_the_verdict_the_audit_the_latencies_and_the_plan() {
        let (html, _) = written(&fixture("test", "Spring Concert"));
        assert!(html.starts_with("<!doctype html>"));
        assert!(
            html.contains("<span id=\"verdict\">FAILED</span>"),
            "{html}"
        );
        assert!(html.contains("exceed --max-error-rate"));
        assert_eq!(
            html.matches("<td class=\"result pass\">PASS</td>").count(),
            2
        );
        assert_eq!(
            html.matches("<td class=\"result skip\">skip</td>").count(),
            1
        );
        assert!(html.contains("<th scope=\"row\">wait for READY</th>"));
        assert!(html.contains("<th scope=\"row\">user_prefix</th><td>test</td>"));
        assert!(html.contains("<td>Spring Concert</td>"));
        assert!(html.contains("<div id=\"charts\" class=\"charts\"></div>"));
        // Self-contained: the charting library and the stylesheet are inlined, nothing is fetched.
        assert!(html.contains(UPLOT_JS) && html.contains(UPLOT_CSS));
        assert!(
            html.contains("content=\"default-src 'none';"),
            "a policy that loads nothing"
        );
        for fetched in ["src=\"http", "href=\"http", "<link", "src=\"//", "import("] {
            assert!(!html.contains(fetched), "the page refers to {fetched}");
        }
    }

    #[test]
    fn text_from_the_plan_and_the_server_is_escaped() {
        let prefix = "</script><img src=x onerror=alert(1)>";
        let name = "Rock & <b>Roll</b> \"live\"";
        let (html, _) = written(&fixture(prefix, name));
        assert!(!html.contains("<img"), "raw markup from the plan");
        assert!(!html.contains("<b>Roll"), "raw markup from the server");
        assert!(html.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("<td>Rock &amp; &lt;b&gt;Roll&lt;/b&gt; &quot;live&quot;</td>"));
        // Only this page's own three scripts end, and the data still reads back as it was.
        assert_eq!(html.matches("</script>").count(), 3);
        let data = blob(&html);
        assert_eq!(data["plan"]["user_prefix"], prefix);
        assert_eq!(data["eventsBefore"][0]["name"], name);
        assert_eq!(data["errors"][0]["message"], format!("{name} failed"));
    }

    #[test]
    fn the_inlined_files_cannot_end_their_own_elements() {
        for (file, text, end) in [
            ("uPlot.iife.min.js", UPLOT_JS, "</script"),
            ("report.js", REPORT_JS, "</script"),
            ("uPlot.min.css", UPLOT_CSS, "</style"),
            ("report.css", REPORT_CSS, "</style"),
        ] {
            assert!(!text.is_empty(), "{file} is empty");
            assert!(
                !text.to_ascii_lowercase().contains(end),
                "{file} contains {end}"
            );
        }
        assert!(UPLOT_LICENSE.contains("MIT License"));
        assert!(
            !UPLOT_LICENSE.contains("*/"),
            "the license ends its comment"
        );
    }

    #[test]
    fn the_inlined_uplot_is_the_version_web_pins() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/package.json");
        let package: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("web/package.json"))
                .expect("web/package.json is JSON");
        assert_eq!(
            package["devDependencies"]["uplot"].as_str(),
            Some(uplot_version()),
            "web/vendor/uPlot.iife.min.js is not the uplot web/package.json pins: run `sh web/vendor/update.sh`"
        );
    }
}
