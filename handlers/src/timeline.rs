//! The monitoring timeline behind the admin charts: every second, each instance records what it
//! saw (requests, latency, joins, admissions) and the shared figures of that instant (line
//! lengths, phases, order and payment counts) into the [`TimelineStore`]; an admin reads the
//! last [`TIMELINE_SECONDS`] as per-second series with the sale's phase changes as markers.
//!
//! Every instance writes into the same store (Redis on the pods), so whichever answers, the
//! series are the same. Memory is bounded by the store: at most [`TIMELINE_SECONDS`] records,
//! each with a fixed set of fields per active line (the promoter's lines, which MUST stay few)
//! and the site-wide ones.

use crate::common::{AccessDenied, admin};
use crate::queue::wait_estimate;
use crate::settings::QueueSettings;
use crate::{Ports, classify};
use flash_core::domain::{
    EventStatus, LinePhase, QueueScope, ShopCounts, TIMELINE_SECONDS, TimelineRecord,
};
use flash_core::ports::{Clock, EventListing, EventStore, PaymentStore, QueueStore, TimelineStore};
use flash_core::{Context, StoreError, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Joins and admissions counted by this instance since the last sample, per line. Bounded by
/// the lines that exist (a join is counted only once its event was found on sale).
#[derive(Debug, Default)]
pub struct Tally(Mutex<HashMap<QueueScope, LineTally>>);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LineTally {
    arrivals: u64,
    admissions: u64,
    /// Phases the line changed to, one bit per [`phase_code`].
    changes: u8,
    /// Joined as the only line of its event: no order of the event can predate the line.
    own: bool,
}

impl Tally {
    /// A new ticket in `scope`; `own_line`: the line is the only one its event sells through.
    pub fn arrival(&self, scope: QueueScope, own_line: bool) {
        self.with(scope, |t| {
            t.arrivals += 1;
            t.own |= own_line;
        });
    }

    pub fn admissions(&self, scope: QueueScope, n: u64) {
        if n > 0 {
            self.with(scope, |t| t.admissions += n);
        }
    }

    /// The promoter changed the line's phase (only the pass that changed it reports it, so
    /// each change is one marker whatever the number of promoters).
    pub fn phase_changed(&self, scope: QueueScope, phase: LinePhase) {
        self.with(scope, |t| t.changes |= 1 << phase_code(phase));
    }

    fn with(&self, scope: QueueScope, f: impl FnOnce(&mut LineTally)) {
        // A poisoned tally only loses monitoring counts; the sale goes on.
        if let Ok(mut m) = self.0.lock() {
            f(m.entry(scope).or_default());
        }
    }

    fn take(&self) -> HashMap<QueueScope, LineTally> {
        self.0
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

/// What the host's own HTTP counters say, cumulative since it started: the sampler turns them
/// into per-second counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostCounters {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// `(upper bound in seconds, requests at or under it)`, ascending, `f64::INFINITY` last.
    pub latency: Vec<(f64, u64)>,
}

/// One sample: the joins this instance counted since the last one (the host adds them to
/// `queue_arrivals_total` whether or not the store took the record), and the store's answer.
#[derive(Debug)]
pub struct Sampled {
    pub arrivals: u64,
    pub recorded: Result<(), StoreError>,
}

/// What one instance samples: the HTTP counters it serves, and which shared figures it can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleScope {
    /// Line lengths, admitted tickets, phases (any instance with the queue store).
    pub queues: bool,
    /// Order and payment counts (an instance with the order store: the api).
    pub shop: bool,
}

/// A phase as a number, as records and the `flash_queue_phase` gauge keep it (0: none known).
pub fn phase_code(p: LinePhase) -> u8 {
    match p {
        LinePhase::Prequeue { .. } => 1,
        LinePhase::Open => 2,
        LinePhase::SoldOut => 3,
        LinePhase::Closed => 4,
    }
}

/// Every phase code, in the order of a sale (the order of markers within one second).
const PHASE_CODES: [u8; 4] = [1, 2, 3, 4];

fn phase_name(code: u64) -> Option<&'static str> {
    match code {
        1 => Some("PREQUEUE"),
        2 => Some("OPEN"),
        3 => Some("SOLD_OUT"),
        4 => Some("CLOSED"),
        _ => None,
    }
}

const SITE: &str = "site";

/// Reads one count of [`ShopCounts`].
type CountOf = fn(&ShopCounts) -> u64;

/// The order and payment counts a record keeps per line, by field name: the series turns each
/// into a rate.
const COUNTS: [(&str, CountOf); 6] = [
    ("orders_created", |c| c.orders_total),
    ("orders_paid", |c| c.orders_paid),
    ("orders_failed", |c| c.orders_failed),
    ("orders_expired", |c| c.orders_expired),
    ("payments_ok", |c| c.payments_ok),
    ("payments_failed", |c| c.payments_failed),
];

/// Whole seconds a record is left to its samplers after its second ends before it is read.
const SETTLE_SECONDS: u64 = 1;

/// Events on sale whose orders are sampled even before their line is active.
const SAMPLED_SALES: usize = 32;

fn field(line: &str, name: &str) -> String {
    format!("{line}|{name}")
}

/// A latency bound as a field suffix: whole microseconds, or `inf`.
fn bound_key(le: f64) -> String {
    if le.is_finite() {
        format!("le|{}", (le * 1e6).round() as u64)
    } else {
        "le|inf".to_owned()
    }
}

fn bound_of(key: &str) -> Option<f64> {
    let raw = key.strip_prefix("site|le|")?;
    if raw == "inf" {
        Some(f64::INFINITY)
    } else {
        raw.parse::<u64>().ok().map(|us| us as f64 / 1e6)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

classify!(TimelineError {} store: Store access: Access);

/// What an admin asks for: one line, and optionally only the seconds after `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineQuery {
    pub line: QueueScope,
    /// Unix seconds; only later seconds are returned (a chart adds them to what it has).
    pub since: Option<u64>,
}

/// One phase change of a line: the sale's start, sell-out, re-opening, close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub second: u64,
    pub phase: &'static str,
}

/// Per-second series of one line and of the site, aligned on `seconds`; `None` where a second
/// has no figure (no instance sampled it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineView {
    /// The newest complete second this answer covers (the next `since`).
    pub until: u64,
    pub seconds: Vec<u64>,
    pub queued: Vec<Option<u64>>,
    pub admitted: Vec<Option<u64>>,
    pub arrivals: Vec<Option<u64>>,
    pub admissions: Vec<Option<u64>>,
    pub estimated_wait: Vec<Option<u64>>,
    pub orders_created: Vec<Option<f64>>,
    pub orders_paid: Vec<Option<f64>>,
    pub orders_failed: Vec<Option<f64>>,
    pub orders_expired: Vec<Option<f64>>,
    pub payments_ok: Vec<Option<f64>>,
    pub payments_failed: Vec<Option<f64>>,
    pub requests: Vec<Option<u64>>,
    pub client_errors: Vec<Option<u64>>,
    pub server_errors: Vec<Option<u64>>,
    /// Seconds, the bound of the latency bucket holding the 99th percentile.
    pub p99: Vec<Option<f64>>,
    pub markers: Vec<Marker>,
    /// The line's phase in its newest record.
    pub phase: Option<&'static str>,
    /// Every line with figures in the records read (for the page's line picker).
    pub lines: Vec<String>,
}

pub struct Timeline {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    events: Arc<dyn EventStore>,
    payments: Arc<dyn PaymentStore>,
    store: Arc<dyn TimelineStore>,
    tally: Arc<Tally>,
    capacity: u64,
    gate_ttl: Duration,
    /// The host's counters at the last sample (zero at start: a process's counters start at 0).
    previous: Mutex<HostCounters>,
    /// Event lines seen active, with the last second they were: their orders and payments are
    /// still charted for [`TIMELINE_SECONDS`] after the line empties (payments land after the
    /// last buyer left it). Bounded like the records.
    recent: Mutex<HashMap<QueueScope, u64>>,
}

impl Timeline {
    pub fn new(p: &Ports, s: &QueueSettings, tally: Arc<Tally>) -> Self {
        Timeline {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            events: p.events.clone(),
            payments: p.payments.clone(),
            store: p.timeline.clone(),
            tally,
            capacity: s.capacity,
            gate_ttl: s.gate_ttl,
            previous: Mutex::new(HostCounters::default()),
            recent: Mutex::default(),
        }
    }

    /// Records this instance's second: what its counters gained since the last sample (since
    /// the start, for the first), its joins and admissions, and the shared figures `scope` lets
    /// it read. A figure that cannot be read is left out of the second (logged at debug level:
    /// during an outage the store's own failure is what the host reports, once).
    pub async fn sample(&self, host: HostCounters, scope: SampleScope) -> Sampled {
        let now = self.clock.now();
        let second = u64::try_from(now.unix_seconds()).unwrap_or(0);
        let mut adds = Vec::new();
        let mut levels = Vec::new();
        let before = self
            .previous
            .lock()
            .map(|mut p| std::mem::replace(&mut *p, host.clone()))
            .unwrap_or_default();
        let gained = |now: u64, then: u64| now.saturating_sub(then);
        adds.push((
            field(SITE, "requests"),
            gained(host.requests, before.requests),
        ));
        adds.push((
            field(SITE, "4xx"),
            gained(host.client_errors, before.client_errors),
        ));
        adds.push((
            field(SITE, "5xx"),
            gained(host.server_errors, before.server_errors),
        ));
        for (le, n) in &host.latency {
            let then = before
                .latency
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0, |(_, c)| *c);
            adds.push((field(SITE, &bound_key(*le)), gained(*n, then)));
        }
        let mut arrivals = 0;
        for (line, t) in self.tally.take() {
            arrivals += t.arrivals;
            let line = line.to_string();
            adds.push((field(&line, "arrivals"), t.arrivals));
            adds.push((field(&line, "admissions"), t.admissions));
            if t.own {
                adds.push((field(&line, "own"), 1));
            }
            for code in PHASE_CODES {
                if t.changes & (1 << code) != 0 {
                    adds.push((field(&line, &format!("marker|{code}")), 1));
                }
            }
        }
        let lines = if scope.queues || scope.shop {
            self.lines().await
        } else {
            Vec::new()
        };
        if scope.queues {
            self.sample_queues(&lines, now, &mut levels).await;
        }
        if scope.shop {
            let selling = [lines.as_slice(), &self.on_sale().await].concat();
            let sold = self.recently_active(&selling, second);
            self.sample_shop(&sold, &mut levels).await;
        }
        Sampled {
            arrivals,
            recorded: self.store.record(second, &adds, &levels).await,
        }
    }

    /// The lines with figures: the active ones and the site-wide one, even when it is empty.
    async fn lines(&self) -> Vec<QueueScope> {
        let mut scopes = match self.queue.active_scopes().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "queue figures unavailable for the timeline");
                return Vec::new();
            }
        };
        if !scopes.contains(&QueueScope::Global) {
            scopes.push(QueueScope::Global);
        }
        scopes
    }

    /// The lines of the events on sale (at most [`SAMPLED_SALES`], the latest to start): their
    /// order counts are sampled before anyone joins them, so the first orders have a baseline.
    async fn on_sale(&self) -> Vec<QueueScope> {
        match self.events.list(EventListing::Public).await {
            Ok(events) => events
                .iter()
                .rev()
                .filter(|e| e.status == EventStatus::Onsale)
                .take(SAMPLED_SALES)
                .map(|e| QueueScope::Event(e.id))
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "events unavailable for the timeline");
                Vec::new()
            }
        }
    }

    /// The event lines active now or within the last [`TIMELINE_SECONDS`] (remembered here).
    fn recently_active(&self, active: &[QueueScope], second: u64) -> Vec<QueueScope> {
        let Ok(mut recent) = self.recent.lock() else {
            return active.to_vec();
        };
        for &scope in active {
            if scope.event().is_some() {
                recent.insert(scope, second);
            }
        }
        recent.retain(|_, seen| second.saturating_sub(*seen) < TIMELINE_SECONDS);
        recent.keys().copied().collect()
    }

    /// Order and payment counts: the site's (charted for the site-wide line, whose buyers may
    /// buy any event sold through it) and each event line's own.
    async fn sample_shop(&self, lines: &[QueueScope], levels: &mut Vec<(String, u64)>) {
        let counts =
            |line: &str, c: ShopCounts| COUNTS.map(|(name, of)| (field(line, name), of(&c)));
        match self.payments.counts().await {
            Ok(c) => levels.extend(counts(SITE, c)),
            Err(e) => {
                tracing::debug!(error = %e, "order figures unavailable for the timeline");
                return;
            }
        }
        for &scope in lines {
            let Some(event) = scope.event() else { continue };
            match self.payments.event_counts(event).await {
                Ok(c) => levels.extend(counts(&scope.to_string(), c)),
                Err(e) => {
                    tracing::debug!(error = %e, %scope, "line order figures unavailable for the timeline");
                }
            }
        }
    }

    async fn sample_queues(
        &self,
        lines: &[QueueScope],
        now: Timestamp,
        levels: &mut Vec<(String, u64)>,
    ) {
        for &scope in lines {
            let s = match self.queue.stats(scope, now).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, %scope, "line figures unavailable for the timeline");
                    continue;
                }
            };
            let line = scope.to_string();
            let wait = wait_estimate(s.queued, &s, self.capacity, self.gate_ttl);
            levels.extend([
                (field(&line, "queued"), s.queued),
                (field(&line, "admitted"), s.admitted),
                (field(&line, "wait"), wait),
                (field(&line, "phase"), u64::from(phase_code(s.phase))),
            ]);
        }
    }

    /// The last [`TIMELINE_SECONDS`] of `q.line` and of the site (admins only), complete
    /// seconds only, and not the one just ended: either may still gain counts from instances.
    pub async fn read(
        &self,
        cx: &Context,
        q: TimelineQuery,
    ) -> Result<TimelineView, TimelineError> {
        admin(cx).map_err(TimelineError::Access)?;
        let now = u64::try_from(self.clock.now().unix_seconds()).unwrap_or(0);
        // The second just ended may still be written: a sampler stamps its record with the
        // second it started in and writes it after its reads. Reading it now would hide, from an
        // incremental reader, what such a sampler adds.
        let until = now.saturating_sub(1 + SETTLE_SECONDS);
        let oldest = until.saturating_sub(TIMELINE_SECONDS - 1);
        let from = q.since.map_or(oldest, |s| s.saturating_add(1)).max(oldest);
        if from > until {
            return Ok(TimelineView {
                until,
                ..TimelineView::default()
            });
        }
        // One second before the first, for the rates taken from counts and the first marker.
        let records = self
            .store
            .read(from.saturating_sub(1), until)
            .await
            .map_err(TimelineError::Store)?;
        Ok(series(&records, q.line, from, until))
    }
}

/// Turns records (oldest first, possibly one before `from`) into the series of `line`: its own
/// figures, the site's requests and errors, and the order and payment rates of its event (the
/// site's, for the site-wide line).
fn series(records: &[TimelineRecord], scope: QueueScope, from: u64, until: u64) -> TimelineView {
    let mut v = TimelineView {
        until,
        ..TimelineView::default()
    };
    let line = &scope.to_string();
    let shop_line = if scope.event().is_some() { line } else { SITE };
    let get = |r: &TimelineRecord, name: &str| r.fields.get(&field(line, name)).copied();
    let site = |r: &TimelineRecord, name: &str| r.fields.get(&field(SITE, name)).copied();
    let shop = |r: &TimelineRecord, name: &str| r.fields.get(&field(shop_line, name)).copied();
    let mut lines = std::collections::BTreeSet::new();
    let mut last_counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut last_phase = None;
    // The second before, when it was read and the line was not sampled in it.
    let mut line_absent_at: Option<u64> = None;
    for r in records {
        let phase = get(r, "phase");
        // A line that sells its event alone and was absent the second before starts here: its
        // event had no orders before it, so its first counts are that second's.
        let starts_here = line_absent_at.filter(|_| get(r, "own").is_some_and(|n| n > 0));
        let mut rates: BTreeMap<&str, Option<f64>> = BTreeMap::new();
        for (name, _) in COUNTS {
            let now = shop(r, name);
            let before = last_counts
                .get(name)
                .copied()
                .or(starts_here.map(|t| (t, 0)));
            let rate = match (now, before) {
                (Some(n), Some((t, before))) if r.second > t => {
                    Some(n.saturating_sub(before) as f64 / (r.second - t) as f64)
                }
                _ => None,
            };
            if let Some(n) = now {
                last_counts.insert(name, (r.second, n));
            }
            rates.insert(name, rate);
        }
        // Sampled as active (its phase) or as recently active (its counts).
        let line_present = phase.is_some() || COUNTS.iter().any(|(n, _)| get(r, n).is_some());
        line_absent_at = (!line_present).then_some(r.second);
        if r.second < from {
            continue;
        }
        // A line with figures: sampled while busy, or joined or admitted from (a line busy
        // only between two samples, its buyers admitted and gone in milliseconds, has those).
        for key in r.fields.keys() {
            if let Some((l, "phase" | "arrivals" | "admissions")) = key.split_once('|')
                && l != SITE
            {
                lines.insert(l.to_owned());
            }
        }
        last_phase = phase.or(last_phase);
        for code in PHASE_CODES {
            if get(r, &format!("marker|{code}")).is_some_and(|n| n > 0)
                && let Some(name) = phase_name(u64::from(code))
            {
                v.markers.push(Marker {
                    second: r.second,
                    phase: name,
                });
            }
        }
        v.seconds.push(r.second);
        v.queued.push(get(r, "queued"));
        v.admitted.push(get(r, "admitted"));
        // A sampled second without a count for the line had none.
        v.arrivals.push(Some(get(r, "arrivals").unwrap_or(0)));
        v.admissions.push(Some(get(r, "admissions").unwrap_or(0)));
        v.estimated_wait.push(get(r, "wait"));
        v.orders_created.push(rates["orders_created"]);
        v.orders_paid.push(rates["orders_paid"]);
        v.orders_failed.push(rates["orders_failed"]);
        v.orders_expired.push(rates["orders_expired"]);
        v.payments_ok.push(rates["payments_ok"]);
        v.payments_failed.push(rates["payments_failed"]);
        v.requests.push(site(r, "requests"));
        v.client_errors.push(site(r, "4xx"));
        v.server_errors.push(site(r, "5xx"));
        v.p99.push(p99(r));
    }
    v.phase = last_phase.and_then(phase_name);
    v.lines = lines.into_iter().collect();
    v
}

/// The bound of the bucket holding the 99th percentile of a second's requests (the bound
/// below `+Inf` when it is past every finite one); `None` without requests.
fn p99(r: &TimelineRecord) -> Option<f64> {
    let mut buckets: Vec<(f64, u64)> = r
        .fields
        .iter()
        .filter_map(|(k, n)| bound_of(k).map(|b| (b, *n)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let wanted = (total as f64 * 0.99).ceil() as u64;
    let mut largest_finite = None;
    for (le, n) in &buckets {
        if le.is_finite() {
            largest_finite = Some(*le);
        }
        if *n >= wanted {
            return if le.is_finite() {
                Some(*le)
            } else {
                largest_finite
            };
        }
    }
    largest_finite
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event line of these tests, written `L|…` in their records.
    const L: &str = "7f2c0d1e-5a7b-4c3d-9e8f-0a1b2c3d4e5f";

    fn line() -> QueueScope {
        QueueScope::parse(L).expect("an event line")
    }

    fn record(second: u64, fields: &[(&str, u64)]) -> TimelineRecord {
        let key = |k: &str| match k.strip_prefix("L|") {
            Some(rest) => format!("{L}|{rest}"),
            None => k.to_owned(),
        };
        TimelineRecord {
            second,
            fields: fields.iter().map(|(k, v)| (key(k), *v)).collect(),
        }
    }

    #[test]
    fn rates_from_counts_markers_from_phase_changes_and_p99_from_buckets() {
        let records = [
            record(9, &[("L|phase", 1), ("L|marker|1", 1)]),
            record(
                10,
                &[
                    ("L|phase", 2),
                    ("L|marker|2", 1),
                    ("L|queued", 5),
                    ("L|orders_created", 1),
                    ("site|orders_created", 4),
                ],
            ),
            record(
                12,
                &[
                    ("L|phase", 3),
                    ("L|marker|2", 1),
                    ("L|marker|3", 1),
                    ("L|arrivals", 2),
                    ("L|orders_created", 2),
                    ("site|orders_created", 10),
                    ("site|le|5000", 98),
                    ("site|le|50000", 99),
                    ("site|le|inf", 100),
                    ("site|requests", 100),
                ],
            ),
        ];
        let v = series(&records, line(), 10, 12);
        assert_eq!(v.seconds, vec![10, 12]);
        assert_eq!(v.queued, vec![Some(5), None]);
        assert_eq!(
            v.orders_created,
            vec![None, Some(0.5)],
            "an event line charts its own orders"
        );
        let site = series(&records, QueueScope::Global, 10, 12);
        assert_eq!(
            site.orders_created,
            vec![None, Some(3.0)],
            "the site-wide line charts the site's"
        );
        assert_eq!(
            v.markers,
            vec![
                Marker {
                    second: 10,
                    phase: "OPEN"
                },
                Marker {
                    second: 12,
                    phase: "OPEN"
                },
                Marker {
                    second: 12,
                    phase: "SOLD_OUT"
                },
            ]
        );
        assert_eq!(v.phase, Some("SOLD_OUT"));
        assert_eq!(v.p99, vec![None, Some(0.05)]);
        assert_eq!(v.requests, vec![None, Some(100)]);
        assert_eq!(
            v.arrivals,
            vec![Some(0), Some(2)],
            "a sampled second without joins"
        );
        assert_eq!(v.lines, vec![L.to_owned()]);
    }

    #[test]
    fn a_line_that_sells_its_event_alone_counts_its_first_second_from_zero() {
        // Second 9: sampled, the line not there yet. Second 10: the line appears with 2 orders.
        let fresh = [
            record(9, &[("site|requests", 1)]),
            record(10, &[("L|own", 1), ("L|phase", 2), ("L|orders_created", 2)]),
            record(11, &[("L|phase", 2), ("L|orders_created", 3)]),
        ];
        let v = series(&fresh, line(), 10, 11);
        assert_eq!(v.orders_created, vec![Some(2.0), Some(1.0)]);
        // Joined between two samples only: still a line to pick.
        let brief = [record(10, &[("L|arrivals", 1)])];
        assert_eq!(
            series(&brief, QueueScope::Global, 10, 10).lines,
            vec![L.to_owned()]
        );
        // Not its event's only line: orders may predate it, so its first second has no rate.
        let shared = [
            record(9, &[("site|requests", 1)]),
            record(10, &[("L|phase", 2), ("L|orders_created", 2)]),
            record(11, &[("L|phase", 2), ("L|orders_created", 3)]),
        ];
        assert_eq!(
            series(&shared, line(), 10, 11).orders_created,
            vec![None, Some(1.0)]
        );
        // Already there the second before (a window starting mid-sale): no made-up spike.
        let midway = [
            record(9, &[("L|phase", 2)]),
            record(
                10,
                &[("L|own", 1), ("L|phase", 2), ("L|orders_created", 50)],
            ),
        ];
        assert_eq!(series(&midway, line(), 10, 10).orders_created, vec![None]);
    }

    #[test]
    fn p99_past_every_finite_bound_reads_as_the_largest_one() {
        let r = record(1, &[("site|le|1000", 0), ("site|le|inf", 10)]);
        assert_eq!(p99(&r), Some(0.001));
        assert_eq!(p99(&record(1, &[("site|le|inf", 0)])), None);
    }
}
