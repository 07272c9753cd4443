//! The rehearsal report in its four forms: the terminal summary, `report.json`, `report.md`
//! and `report.html` ([`html`]).

mod html;

use crate::audit::{ApiAudit, Check, EventState};
use crate::stats::{FailureGroup, Series, StepSummary};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tool: String,
    pub started_at: String,
    pub plan: serde_json::Value,
    pub events_before: Vec<EventState>,
    pub setup: Setup,
    pub sale: Sale,
    pub timeline: Timeline,
    /// The sale's timeline, interval by interval; its columns add up to the [`Sale`] totals.
    pub series: Series,
    pub steps: Vec<StepSummary>,
    pub errors: Vec<FailureGroup>,
    pub retries: Vec<FailureGroup>,
    pub audit: ApiAudit,
    pub database_audit: DatabaseAudit,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    pub registered: u64,
    pub logged_in: u64,
    pub login_seconds: f64,
    pub logins_per_second: f64,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcomes {
    pub paid: u64,
    pub sold_out: u64,
    /// Told SOLD_OUT while waiting in line.
    pub told_sold_out: u64,
    pub limit_reached: u64,
    pub payment_failed: u64,
    pub failed: u64,
    pub unfinished: u64,
    pub not_started: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sale {
    pub buyers: u64,
    /// Buyers whose journey started (all but those whose log-in before the sale failed or whom
    /// the deadline stopped before they arrived).
    pub arrivals: u64,
    pub seconds: f64,
    pub outcomes: Outcomes,
    pub requests: u64,
    pub requests_per_second: f64,
    pub admissions: u64,
    /// Admissions per second between the first and the last one.
    pub admissions_per_second: f64,
    pub orders: u64,
    /// Tickets in the orders placed.
    pub tickets_ordered: u64,
    pub paid_orders: u64,
    pub paid_tickets: i64,
    /// Paid orders per second of the sale.
    pub paid_per_second: f64,
    /// Paid orders per second between the first and the last PAID a buyer saw.
    pub paid_per_second_while_paying: f64,
    pub errors: u64,
    pub error_rate: f64,
    pub capacity_seen: Option<u64>,
}

/// Seconds since the sale clock started.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub first_admission_s: Option<f64>,
    pub last_admission_s: Option<f64>,
    pub first_paid_s: Option<f64>,
    pub last_paid_s: Option<f64>,
    /// Every ticket held or sold (the event read said nothing is available).
    pub sold_out_s: Option<f64>,
    /// Every ticket sold and paid.
    pub all_paid_s: Option<f64>,
    /// The first "Not enough tickets remaining" answer.
    pub first_sold_out_reply_s: Option<f64>,
    /// The last order placed (the sell-out, once nothing is left).
    pub last_hold_s: Option<f64>,
    /// The last buyer waiting in line told SOLD_OUT.
    pub last_told_sold_out_s: Option<f64>,
    /// The longest any waiting buyer went without hearing SOLD_OUT after the last order placed
    /// (or, for one who joined the line later, after joining): SPEC §4 says within 1 s.
    pub sold_out_to_last_told_s: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAudit {
    /// `skipped`, `passed`, `failed` or `unavailable`.
    pub status: String,
    pub detail: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub passed: bool,
    pub exit_code: i32,
    pub reasons: Vec<String>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |s| format!("{s:.2} s"))
}

fn mark(c: &Check) -> &'static str {
    match c.passed {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "skip",
    }
}

impl Report {
    /// The summary printed at the end of a run.
    pub fn terminal(&self) -> String {
        let mut o = String::new();
        let s = &self.sale;
        let _ = writeln!(o, "== flash-rehearse: {} ==", self.verdict_line());
        let _ = writeln!(
            o,
            "buyers {}  sale {:.2} s  requests {} ({:.0}/s)  errors {} ({:.3} %)",
            s.buyers,
            s.seconds,
            s.requests,
            s.requests_per_second,
            s.errors,
            s.error_rate * 100.0
        );
        let oc = &s.outcomes;
        let _ = writeln!(
            o,
            "outcomes: paid {}  sold out {}  told sold out in line {}  limit {}  payment failed {}  failed {}  unfinished {}  not started {}",
            oc.paid,
            oc.sold_out,
            oc.told_sold_out,
            oc.limit_reached,
            oc.payment_failed,
            oc.failed,
            oc.unfinished,
            oc.not_started
        );
        let _ = writeln!(
            o,
            "admissions {} ({:.0}/s)  paid orders {} / {} tickets ({:.1}/s over the sale, {:.1}/s while paying)  capacity seen {}",
            s.admissions,
            s.admissions_per_second,
            s.paid_orders,
            s.paid_tickets,
            s.paid_per_second,
            s.paid_per_second_while_paying,
            s.capacity_seen.map_or("—".into(), |c| c.to_string())
        );
        let t = &self.timeline;
        let _ = writeln!(
            o,
            "sold out at {}  every waiting buyer told within {} of the sell-out (or of joining)  all paid at {}  first/last admission {} / {}  last paid {}",
            secs(t.sold_out_s),
            secs(t.sold_out_to_last_told_s),
            secs(t.all_paid_s),
            secs(t.first_admission_s),
            secs(t.last_admission_s),
            secs(t.last_paid_s)
        );
        if self.setup.logged_in > 0 {
            let _ = writeln!(
                o,
                "pre-login: {} buyers in {:.2} s ({:.0}/s)",
                self.setup.logged_in, self.setup.login_seconds, self.setup.logins_per_second
            );
        }
        let _ = writeln!(
            o,
            "\n{:<26} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "step", "count", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for st in &self.steps {
            let _ = writeln!(
                o,
                "{:<26} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                st.name, st.count, st.mean_ms, st.p50_ms, st.p90_ms, st.p99_ms, st.max_ms
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(o, "\nerrors (step, status, message, count):");
            for e in &self.errors {
                let _ = writeln!(o, "  {} {} {:?} ×{}", e.step, e.status, e.message, e.count);
            }
        }
        if !self.retries.is_empty() {
            let _ = writeln!(o, "\nretried (recovered or not):");
            for e in &self.retries {
                let _ = writeln!(o, "  {} {} {:?} ×{}", e.step, e.status, e.message, e.count);
            }
        }
        let _ = writeln!(
            o,
            "\naudit through the API: {} ({} reads, {} ms to settle{})",
            if self.audit.passed { "PASS" } else { "FAIL" },
            self.audit.reads,
            self.audit.settle_ms,
            if self.audit.settled {
                ""
            } else {
                ", did not settle"
            }
        );
        for c in &self.audit.checks {
            let _ = writeln!(o, "  [{}] {} ({}): {}", mark(c), c.name, c.spec, c.detail);
        }
        let _ = writeln!(
            o,
            "audit through the database: {} — {}",
            self.database_audit.status, self.database_audit.detail
        );
        for c in &self.database_audit.checks {
            let _ = writeln!(o, "  [{}] {} ({}): {}", mark(c), c.name, c.spec, c.detail);
        }
        for r in &self.verdict.reasons {
            let _ = writeln!(o, "! {r}");
        }
        o
    }

    fn verdict_line(&self) -> &'static str {
        if self.verdict.passed {
            "PASSED"
        } else {
            "FAILED"
        }
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let s = &self.sale;
        let _ = writeln!(o, "# Sale rehearsal — {}\n", self.verdict_line());
        let _ = writeln!(
            o,
            "{} · started {} · {} buyers\n",
            self.tool, self.started_at, s.buyers
        );
        let _ = writeln!(o, "## Plan\n\n```json\n{}\n```\n", pretty(&self.plan));
        let _ = writeln!(o, "## Throughput\n");
        let _ = writeln!(o, "| measure | value |\n|---|---|");
        let rows: Vec<(&str, String)> = vec![
            ("sale duration", format!("{:.2} s", s.seconds)),
            (
                "requests",
                format!("{} ({:.0}/s)", s.requests, s.requests_per_second),
            ),
            (
                "admissions",
                format!("{} ({:.0}/s)", s.admissions, s.admissions_per_second),
            ),
            ("arrivals", s.arrivals.to_string()),
            (
                "orders placed / tickets",
                format!("{} / {}", s.orders, s.tickets_ordered),
            ),
            (
                "paid orders / tickets",
                format!(
                    "{} / {} ({:.1} orders/s over the sale, {:.1}/s while paying)",
                    s.paid_orders,
                    s.paid_tickets,
                    s.paid_per_second,
                    s.paid_per_second_while_paying
                ),
            ),
            (
                "errors",
                format!("{} ({:.3} %)", s.errors, s.error_rate * 100.0),
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
            let _ = writeln!(o, "| {k} | {v} |");
        }
        let oc = &s.outcomes;
        let _ = writeln!(
            o,
            "\n## Outcomes\n\n| paid | sold out | told sold out in line | limit reached | payment failed | failed | unfinished | not started |\n|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            oc.paid,
            oc.sold_out,
            oc.told_sold_out,
            oc.limit_reached,
            oc.payment_failed,
            oc.failed,
            oc.unfinished,
            oc.not_started
        );
        let t = &self.timeline;
        let _ = writeln!(
            o,
            "## Timeline (since the sale clock started)\n\n| moment | at |\n|---|---|\n| first admission | {} |\n| last admission | {} |\n| first paid | {} |\n| sold out (nothing available) | {} |\n| first sold-out answer | {} |\n| last order placed | {} |\n| last waiting buyer told SOLD_OUT | {} (each within {} of the sell-out, or of joining after it) |\n| all tickets paid | {} |\n| last paid | {} |\n",
            secs(t.first_admission_s),
            secs(t.last_admission_s),
            secs(t.first_paid_s),
            secs(t.sold_out_s),
            secs(t.first_sold_out_reply_s),
            secs(t.last_hold_s),
            secs(t.last_told_sold_out_s),
            secs(t.sold_out_to_last_told_s),
            secs(t.all_paid_s),
            secs(t.last_paid_s)
        );
        let _ = writeln!(
            o,
            "## Latency per step (ms)\n\n| step | count | mean | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for st in &self.steps {
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                st.name, st.count, st.mean_ms, st.p50_ms, st.p90_ms, st.p99_ms, st.max_ms
            );
        }
        let _ = writeln!(o, "\n## Errors\n");
        failure_table(&mut o, &self.errors, "No errors.");
        let _ = writeln!(o, "\n## Retried requests\n");
        failure_table(&mut o, &self.retries, "No retries.");
        let _ = writeln!(
            o,
            "\n## Audit through the API — {}\n\nSettled: {} after {} reads ({} ms); {} orders in the run, {} PAID ({} tickets).\n\n| check | SPEC | result | detail |\n|---|---|---|---|",
            if self.audit.passed { "PASS" } else { "FAIL" },
            self.audit.settled,
            self.audit.reads,
            self.audit.settle_ms,
            self.audit.orders_in_run,
            self.audit.paid_orders,
            self.audit.paid_tickets
        );
        for c in &self.audit.checks {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                c.name,
                c.spec,
                mark(c),
                c.detail.replace('|', "\\|")
            );
        }
        let _ = writeln!(
            o,
            "\n## Audit through the database — {}\n\n{}\n",
            self.database_audit.status, self.database_audit.detail
        );
        if !self.database_audit.checks.is_empty() {
            let _ = writeln!(o, "| check | SPEC | result | detail |\n|---|---|---|---|");
            for c in &self.database_audit.checks {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    c.name,
                    c.spec,
                    mark(c),
                    c.detail.replace('|', "\\|")
                );
            }
        }
        let _ = writeln!(o, "\n## Verdict: {}\n", self.verdict_line());
        for r in &self.verdict.reasons {
            let _ = writeln!(o, "- {r}");
        }
        o
    }

    /// Writes `report.json`, `report.md` and `report.html` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<ReportFiles> {
        std::fs::create_dir_all(dir)?;
        let files = ReportFiles {
            json: dir.join("report.json"),
            markdown: dir.join("report.md"),
            html: dir.join("report.html"),
        };
        let body = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&files.json, body)?;
        std::fs::write(&files.markdown, self.markdown())?;
        std::fs::write(&files.html, self.html().map_err(std::io::Error::other)?)?;
        Ok(files)
    }
}

/// Where [`Report::write`] put the reports.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn failure_table(o: &mut String, rows: &[FailureGroup], none: &str) {
    if rows.is_empty() {
        let _ = writeln!(o, "{none}");
        return;
    }
    let _ = writeln!(o, "| step | status | message | count |\n|---|---|---|---:|");
    for e in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            e.step,
            e.status,
            e.message.replace('|', "\\|"),
            e.count
        );
    }
}
