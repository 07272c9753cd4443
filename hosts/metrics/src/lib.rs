//! `flash-metrics`: the in-process Prometheus registry (fed by the HTTP layers of `flash-http`
//! and the background jobs of `flash-runtime`, neither depending on the other), and a writer for
//! the legacy metrics that are computed at scrape time.
//!
//! `/metrics` = [`Metrics::render`] of the registry followed by the legacy text the host computes
//! (queue lengths, order and payment counts…) with [`LegacyText`]. Names must not collide between
//! the two parts: the registry holds only names the legacy system never had.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prometheus::{
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, register_histogram_vec_with_registry, register_histogram_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_vec_with_registry, register_int_gauge_with_registry,
};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// The Prometheus text exposition content type (legacy `/metrics` and `/live`).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What [`MetricSet::http_totals`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpTotals {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// `(upper bound in seconds, requests at or under it)`, ascending, `+Inf` last.
    pub latency: Vec<(f64, u64)>,
}

/// The legacy `/live` body.
pub const LIVE_BODY: &str =
    "# HELP service_live Service liveness signal\n# TYPE service_live gauge\nservice_live 1\n";

/// Route label for requests that matched no route (bounded cardinality).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Buckets for the admission wait: a flash-sale queue waits seconds to tens of minutes.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// Buckets for the READY push: the target is 250 ms at p99.
pub const READY_PUSH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
];

/// The process's metrics. Cheap to clone: one shared pointer (it is cloned with the router
/// state on every request); the metrics are reached through [`MetricSet`].
#[derive(Clone, Debug)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// Every metric of [`Metrics`].
#[derive(Debug)]
pub struct MetricSet {
    registry: Registry,
    /// `http_requests_total{service,route,method,status}`.
    pub http_requests_total: IntCounterVec,
    /// `http_request_duration_seconds{service,route,method}`.
    pub http_request_duration_seconds: HistogramVec,
    /// Time from enqueue to admission (READY).
    pub queue_wait_seconds: Histogram,
    /// Tickets admitted (QUEUED → READY).
    pub queue_admissions_total: IntCounter,
    /// Tickets created by joins on this instance (counted by the timeline's sampler).
    pub queue_arrivals_total: IntCounter,
    /// Time from a promotion to the READY push on a socket of this instance.
    pub queue_ready_push_seconds: Histogram,
    /// `bus_published_total{queue}`: messages confirmed by the broker.
    pub bus_published_total: IntCounterVec,
    /// `bus_consumed_total{queue,outcome}`, outcome = `ack` | `retry` | `dead_letter`.
    pub bus_consumed_total: IntCounterVec,
    /// `bus_dead_lettered_total{queue}`.
    pub bus_dead_lettered_total: IntCounterVec,
    /// OK payment results for orders that could no longer be paid.
    pub orders_refund_required_total: IntCounter,
    /// Outbox rows not yet published.
    pub outbox_backlog: IntGauge,
    /// `pool_connections{pool,state}`, state = `idle` | `in_use`.
    pub pool_connections: IntGaugeVec,
    /// `pool_connections_max{pool}`.
    pub pool_connections_max: IntGaugeVec,
}

impl Metrics {
    /// A fresh registry with every metric above registered.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let r = &registry;
        let m = MetricSet {
            http_requests_total: register_int_counter_vec_with_registry!(
                counter(
                    "http_requests_total",
                    "HTTP requests handled, by route template and status",
                )?,
                &["service", "route", "method", "status"],
                r
            )?,
            http_request_duration_seconds: register_histogram_vec_with_registry!(
                "http_request_duration_seconds",
                "HTTP request latency in seconds, by route template",
                &["service", "route", "method"],
                prometheus::DEFAULT_BUCKETS.to_vec(),
                r
            )?,
            queue_wait_seconds: register_histogram_with_registry!(
                "queue_wait_seconds",
                "Time a ticket waited in the queue before admission, in seconds",
                QUEUE_WAIT_BUCKETS.to_vec(),
                r
            )?,
            queue_ready_push_seconds: register_histogram_with_registry!(
                "queue_ready_push_seconds",
                "Time from a promotion to the READY push on a socket of this instance, in seconds",
                READY_PUSH_BUCKETS.to_vec(),
                r
            )?,
            queue_admissions_total: register_int_counter_with_registry!(
                counter(
                    "queue_admissions_total",
                    "Queue tickets admitted (QUEUED to READY)",
                )?,
                r
            )?,
            queue_arrivals_total: register_int_counter_with_registry!(
                counter(
                    "queue_arrivals_total",
                    "Queue tickets created by joins (new arrivals in a line)",
                )?,
                r
            )?,
            bus_published_total: register_int_counter_vec_with_registry!(
                counter(
                    "bus_published_total",
                    "Bus messages published and confirmed, by queue",
                )?,
                &["queue"],
                r
            )?,
            bus_consumed_total: register_int_counter_vec_with_registry!(
                counter(
                    "bus_consumed_total",
                    "Bus messages consumed, by queue and outcome (ack, retry, dead_letter)",
                )?,
                &["queue", "outcome"],
                r
            )?,
            bus_dead_lettered_total: register_int_counter_vec_with_registry!(
                counter(
                    "bus_dead_lettered_total",
                    "Bus messages sent to the dead-letter queue, by queue",
                )?,
                &["queue"],
                r
            )?,
            orders_refund_required_total: register_int_counter_with_registry!(
                counter(
                    "orders_refund_required_total",
                    "Successful payments for orders that could no longer be paid (refund required)",
                )?,
                r
            )?,
            outbox_backlog: register_int_gauge_with_registry!(
                "outbox_backlog",
                "Outbox messages written but not yet published",
                r
            )?,
            pool_connections: register_int_gauge_vec_with_registry!(
                "pool_connections",
                "Connections of a pool, by state (idle, in_use)",
                &["pool", "state"],
                r
            )?,
            pool_connections_max: register_int_gauge_vec_with_registry!(
                "pool_connections_max",
                "Configured maximum size of a connection pool",
                &["pool"],
                r
            )?,
            registry,
        };
        Ok(Metrics(Arc::new(m)))
    }
}

impl MetricSet {
    /// Records one finished HTTP request.
    pub fn observe_http(
        &self,
        service: &str,
        route: &str,
        method: &Method,
        status: u16,
        seconds: f64,
    ) {
        let method = method_label(method);
        let code = StatusCode::from_u16(status).ok();
        let status_label = code.as_ref().map_or("000", StatusCode::as_str);
        self.http_requests_total
            .with_label_values(&[service, route, method, status_label])
            .inc();
        self.http_request_duration_seconds
            .with_label_values(&[service, route, method])
            .observe(seconds);
    }

    /// This process's HTTP figures over every route, cumulative since it started (the
    /// monitoring timeline's sampler takes per-second differences of them).
    pub fn http_totals(&self) -> HttpTotals {
        use prometheus::core::Collector as _;
        let mut t = HttpTotals::default();
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for family in self.http_requests_total.collect() {
            for m in family.get_metric() {
                let n = m.get_counter().get_value() as u64;
                let status = m
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "status")
                    .map_or("", |l| l.value());
                t.requests += n;
                if status.starts_with('4') {
                    t.client_errors += n;
                } else if status.starts_with('5') {
                    t.server_errors += n;
                }
            }
        }
        let mut total = 0u64;
        for family in self.http_request_duration_seconds.collect() {
            for m in family.get_metric() {
                let h = m.get_histogram();
                total += h.get_sample_count();
                for (i, b) in h.get_bucket().iter().enumerate() {
                    match buckets.get_mut(i) {
                        Some(slot) => slot.1 += b.cumulative_count(),
                        None => buckets.push((b.upper_bound(), b.cumulative_count())),
                    }
                }
            }
        }
        if buckets.is_empty() {
            buckets = prometheus::DEFAULT_BUCKETS
                .iter()
                .map(|b| (*b, 0))
                .collect();
        }
        buckets.push((f64::INFINITY, total));
        t.latency = buckets;
        t
    }

    /// The `/metrics` response: the registry in text format, then `extra` (legacy metrics
    /// computed at scrape time, see [`LegacyText`]).
    pub fn render(&self, extra: &str) -> (HeaderMap, String) {
        let mut buf = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %err, "failed to encode metrics");
            buf.clear();
        }
        let mut text = String::from_utf8(buf).unwrap_or_default();
        text.push_str(extra);
        (prometheus_headers(), text)
    }
}

/// The legacy `/live` response parts: Prometheus content type and [`LIVE_BODY`].
pub fn live_body() -> (HeaderMap, &'static str) {
    (prometheus_headers(), LIVE_BODY)
}

fn prometheus_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE),
    );
    headers
}

/// Known methods keep their name; anything else is `OTHER`, so clients cannot inflate the label
/// set.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[(&Method, &str)] = &[
        (&Method::GET, "GET"),
        (&Method::POST, "POST"),
        (&Method::PUT, "PUT"),
        (&Method::PATCH, "PATCH"),
        (&Method::DELETE, "DELETE"),
        (&Method::HEAD, "HEAD"),
        (&Method::OPTIONS, "OPTIONS"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("OTHER", |(_, name)| name)
}

/// The options of a counter: its name must end in `_total`.
fn counter(name: &str, help: &str) -> prometheus::Result<Opts> {
    if name.ends_with("_total") {
        Ok(Opts::new(name, help))
    } else {
        Err(prometheus::Error::Msg(format!(
            "counter {name} must end in _total"
        )))
    }
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: &'static str,
    samples: Vec<String>,
}

/// Writes metrics computed at scrape time in the text format: one `# HELP` / `# TYPE` per name
/// however many times it is written, samples of a name kept together, in first-write order.
#[derive(Debug, Default)]
pub struct LegacyText {
    order: Vec<String>,
    families: HashMap<String, Family>,
}

impl LegacyText {
    pub fn new() -> Self {
        LegacyText::default()
    }

    /// An unlabelled gauge sample. Legacy gauges named `…_total` (`orders_hold_total`,
    /// `queue_waiting_users_total`, …) are declared `untyped`: promtool refuses a non-counter
    /// ending in `_total`, and PromQL treats untyped samples exactly like gauges.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.sample(name, help, gauge_type(name), &[], value)
    }

    /// An unlabelled counter sample (name should end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.sample(name, help, "counter", &[], value)
    }

    /// A labelled gauge sample (typed as in [`LegacyText::gauge`]).
    pub fn gauge_with(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        self.sample(name, help, gauge_type(name), labels, value)
    }

    /// A labelled counter sample.
    pub fn counter_with(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        self.sample(name, help, "counter", labels, value)
    }

    /// A labelled counter family, declared even before it has samples (its `HELP` and `TYPE`
    /// are served, so dashboards and rules can name it while nothing is counted yet).
    pub fn declare_counter(&mut self, name: &str, help: &str) -> &mut Self {
        self.families.entry(name.to_owned()).or_insert_with(|| {
            self.order.push(name.to_owned());
            Family {
                help: help.to_owned(),
                kind: "counter",
                samples: Vec::new(),
            }
        });
        self
    }

    /// The text, ready to pass to [`Metrics::render`].
    pub fn finish(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            if let Some(f) = self.families.get(name) {
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
                let _ = writeln!(out, "# TYPE {name} {}", f.kind);
                for s in &f.samples {
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn sample(
        &mut self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        let mut line = String::from(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape_label(v));
            }
            line.push('}');
        }
        line.push(' ');
        line.push_str(&format_value(value));
        let family = self.families.entry(name.to_owned()).or_insert_with(|| {
            self.order.push(name.to_owned());
            Family {
                help: help.to_owned(),
                kind,
                samples: Vec::new(),
            }
        });
        debug_assert_eq!(family.kind, kind, "metric {name} written with two types");
        family.samples.push(line);
        self
    }
}

fn gauge_type(name: &str) -> &'static str {
    if name.ends_with("_total") {
        "untyped"
    } else {
        "gauge"
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The checks of `promtool check metrics` that a `/metrics` test needs: one HELP and TYPE per
/// family, samples of a family together after its TYPE, counters and only counters (or untyped)
/// named `…_total`. `Err` names the first problem.
pub fn lint_exposition(text: &str) -> Result<(), String> {
    let mut seen_help = HashSet::new();
    let mut seen_type = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !seen_help.insert(name.to_owned()) {
                return Err(format!("duplicate HELP for {name}"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_owned();
            let kind = parts.next().unwrap_or_default().to_owned();
            if kind == "counter" && !name.ends_with("_total") {
                return Err(format!("counter {name} should end in _total"));
            }
            if !matches!(kind.as_str(), "counter" | "untyped") && name.ends_with("_total") {
                return Err(format!("non-counter {name} should not end in _total"));
            }
            if seen_type.insert(name.clone(), kind).is_some() {
                return Err(format!("duplicate TYPE for {name}"));
            }
            if !current.is_empty() {
                finished.insert(std::mem::take(&mut current));
            }
            current = name;
        } else if line.starts_with('#') {
            // Other comments are allowed anywhere.
        } else {
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    sample
                        .strip_suffix(s)
                        .filter(|f| seen_type.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(sample);
            if family != current || finished.contains(family) {
                return Err(format!("sample {sample} outside its family block"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_text_writes_one_header_per_family() {
        let mut t = LegacyText::new();
        t.gauge_with(
            "flash_queue_length",
            "Queue length",
            &[("event", "global")],
            3.0,
        )
        .gauge("flash_queue_events", "Events", 2.0)
        .gauge_with(
            "flash_queue_length",
            "Queue length",
            &[("event", "a\"b")],
            1.0,
        )
        .counter("orders_paid_total", "Paid orders", 7.0)
        .gauge("orders_hold_total", "Orders in HOLD", 2.0)
        .gauge(
            "flash_queue_metrics_collected_at",
            "Scrape time",
            1_762_149_814.5,
        );
        let text = t.finish();
        assert_eq!(
            text,
            "# HELP flash_queue_length Queue length\n# TYPE flash_queue_length gauge\n\
             flash_queue_length{event=\"global\"} 3\nflash_queue_length{event=\"a\\\"b\"} 1\n\
             # HELP flash_queue_events Events\n# TYPE flash_queue_events gauge\nflash_queue_events 2\n\
             # HELP orders_paid_total Paid orders\n# TYPE orders_paid_total counter\norders_paid_total 7\n\
             # HELP orders_hold_total Orders in HOLD\n# TYPE orders_hold_total untyped\norders_hold_total 2\n\
             # HELP flash_queue_metrics_collected_at Scrape time\n# TYPE flash_queue_metrics_collected_at gauge\n\
             flash_queue_metrics_collected_at 1762149814.5\n"
        );
        assert_eq!(lint_exposition(&text), Ok(()));
    }

    #[test]
    fn a_declared_family_is_served_before_its_first_sample_and_keeps_it_after() {
        let mut t = LegacyText::new();
        t.declare_counter("flash_line_orders_total", "Orders per line");
        let empty = t.finish();
        assert_eq!(
            empty,
            "# HELP flash_line_orders_total Orders per line
# TYPE flash_line_orders_total counter
"
        );
        assert_eq!(lint_exposition(&empty), Ok(()));
        t.counter_with(
            "flash_line_orders_total",
            "Orders per line",
            &[("event", "e1")],
            2.0,
        )
        .declare_counter("flash_line_orders_total", "Orders per line");
        assert_eq!(
            t.finish(),
            format!("{empty}flash_line_orders_total{{event=\"e1\"}} 2\n")
        );
    }

    #[test]
    fn render_combines_registry_and_legacy_text() {
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        m.observe_http("api", "/orders/{id}", &Method::GET, 200, 0.012);
        m.queue_admissions_total.inc();
        m.queue_wait_seconds.observe(3.0);
        m.bus_consumed_total
            .with_label_values(&["payments_request", "ack"])
            .inc();
        m.pool_connections
            .with_label_values(&["postgres", "idle"])
            .set(4);
        let extra = LegacyText::new()
            .gauge("queue_ready_users", "Ready users", 5.0)
            .finish();
        let (headers, text) = m.render(&extra);
        assert_eq!(headers[header::CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
        assert!(text.contains(
            "http_requests_total{method=\"GET\",route=\"/orders/{id}\",service=\"api\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
        assert!(text.contains("queue_admissions_total 1"));
        assert!(text.contains("queue_wait_seconds_count 1"));
        assert!(text.ends_with("queue_ready_users 5\n"));
        assert_eq!(lint_exposition(&text), Ok(()));
    }

    #[test]
    fn counters_must_end_in_total_and_a_name_is_registered_once() {
        assert!(counter("payments", "x").is_err());
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        let fresh = IntCounter::with_opts(counter("outbox_backlog_total", "x").unwrap()).unwrap();
        assert!(m.registry.register(Box::new(fresh)).is_ok());
        let again = IntGauge::new("outbox_backlog", "again").unwrap();
        assert!(m.registry.register(Box::new(again)).is_err());
    }

    #[test]
    fn lint_catches_what_promtool_refuses() {
        let dup = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n# HELP a_total x\n";
        assert!(lint_exposition(dup).is_err());
        assert!(lint_exposition("# HELP a x\n# TYPE a counter\na 1\n").is_err());
        assert!(lint_exposition("# HELP b_total x\n# TYPE b_total gauge\nb_total 1\n").is_err());
        let split = "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na 2\n";
        assert!(lint_exposition(split).is_err());
    }

    #[test]
    fn live_body_is_the_legacy_text() {
        let (headers, body) = live_body();
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            body.lines().collect::<Vec<_>>(),
            [
                "# HELP service_live Service liveness signal",
                "# TYPE service_live gauge",
                "service_live 1",
            ]
        );
    }

    #[test]
    fn value_formatting() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap_or_default()),
            "OTHER"
        );
    }
}
