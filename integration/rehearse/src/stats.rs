//! What a rehearsal measures while it runs: one HDR histogram per step, failures grouped by
//! step + status + message, the live counters the progress display reads, and the sale's
//! timeline as counts per interval ([`Samples`], bounded whatever the sale's length).

use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A measured step of the journey. HTTP steps time one request; `QueueWait`, `PaymentWait` and
/// `Journey` time a stretch of the journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Step {
    Register,
    Login,
    Events,
    SocketConnect,
    Enqueue,
    Status,
    QueueWait,
    Enter,
    Order,
    Pay,
    OrderStatus,
    PaymentWait,
    Leave,
    Journey,
    Audit,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::Login => "login",
            Step::Events => "events",
            Step::SocketConnect => "socket connect",
            Step::Enqueue => "enqueue",
            Step::Status => "queue status",
            Step::QueueWait => "wait for READY",
            Step::Enter => "enter",
            Step::Order => "order",
            Step::Pay => "pay",
            Step::OrderStatus => "order status",
            Step::PaymentWait => "wait for PAID/FAIL",
            Step::Leave => "leave",
            Step::Journey => "journey (arrival to PAID)",
            Step::Audit => "audit reads",
        }
    }

    /// Stretches of a journey rather than single requests.
    pub fn is_span(self) -> bool {
        matches!(self, Step::QueueWait | Step::PaymentWait | Step::Journey)
    }
}

/// Stage counters for the live display; each is a count of buyers who reached that stage.
#[derive(Default)]
pub struct Stages {
    pub arrived: AtomicU64,
    pub queued: AtomicU64,
    pub admitted: AtomicU64,
    pub ordered: AtomicU64,
    pub paid: AtomicU64,
    pub sold_out: AtomicU64,
    /// Buyers told SOLD_OUT while waiting in line (SPEC §4: sold out closes the line).
    pub told_sold_out: AtomicU64,
    pub failed: AtomicU64,
    pub finished: AtomicU64,
}

/// Relative times (ms since the sale clock started) of notable moments; 0 = not yet.
#[derive(Default)]
pub struct Moments {
    pub first_admission: AtomicU64,
    pub last_admission: AtomicU64,
    pub first_paid: AtomicU64,
    pub last_paid: AtomicU64,
    pub first_sold_out_reply: AtomicU64,
    /// The last order placed (a HOLD answered): the sell-out, once nothing is left.
    pub last_hold: AtomicU64,
    /// The last buyer waiting in line told SOLD_OUT.
    pub last_told_sold_out: AtomicU64,
    /// The event reads said nothing is available.
    pub sold_out: AtomicU64,
    /// The event reads said every ticket is sold.
    pub all_paid: AtomicU64,
}

fn mark_first(slot: &AtomicU64, ms: u64) {
    let ms = ms.max(1);
    let _ = slot.compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
}

fn mark_last(slot: &AtomicU64, ms: u64) {
    slot.fetch_max(ms.max(1), Ordering::Relaxed);
}

/// Key of a failure group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailureKey {
    pub step: Step,
    /// HTTP status, or `transport` / `socket` / `deadline` / `protocol`.
    pub status: String,
    pub message: String,
}

/// How often, as counts per interval of the sale clock, buyers did what the report charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub arrivals: u64,
    pub queued: u64,
    pub admitted: u64,
    /// Left the queue without an admission (told sold out, or a failure while waiting).
    pub gave_up: u64,
    pub orders: u64,
    /// Tickets in the orders placed.
    pub tickets: u64,
    pub paid: u64,
    pub errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.arrivals += o.arrivals;
        self.queued += o.queued;
        self.admitted += o.admitted;
        self.gave_up += o.gave_up;
        self.orders += o.orders;
        self.tickets += o.tickets;
        self.paid += o.paid;
        self.errors += o.errors;
    }
}

/// The sale's timeline: [`Counts`] per interval since the sale clock started. Intervals start at
/// [`Samples::FIRST_INTERVAL_MS`]; a sale longer than [`Samples::MAX_INTERVALS`] of them merges
/// neighbours and doubles the interval, so memory stays bounded and every count is kept.
#[derive(Debug, Clone)]
pub struct Samples {
    interval_ms: u64,
    intervals: Vec<Counts>,
}

impl Default for Samples {
    fn default() -> Self {
        Samples {
            interval_ms: Self::FIRST_INTERVAL_MS,
            intervals: Vec::new(),
        }
    }
}

impl Samples {
    pub const FIRST_INTERVAL_MS: u64 = 100;
    /// 5 minutes at 100 ms, 10 at 200 ms, …: a few thousand points is what a chart shows well.
    pub const MAX_INTERVALS: usize = 3000;

    /// The interval holding `at_ms`, created (with the ones before it) if need be.
    fn at(&mut self, at_ms: u64) -> &mut Counts {
        let mut i = at_ms / self.interval_ms;
        while i >= Self::MAX_INTERVALS as u64 {
            self.coarsen();
            i = at_ms / self.interval_ms;
        }
        let i = i as usize;
        if self.intervals.len() <= i {
            self.intervals.resize(i + 1, Counts::default());
        }
        &mut self.intervals[i]
    }

    /// Merges each pair of neighbouring intervals: half the points, twice the interval.
    fn coarsen(&mut self) {
        let merged = self
            .intervals
            .chunks(2)
            .map(|pair| {
                let mut c = pair[0];
                if let Some(second) = pair.get(1) {
                    c.add(second);
                }
                c
            })
            .collect();
        self.intervals = merged;
        self.interval_ms *= 2;
    }

    pub fn count(&mut self, at_ms: u64, what: impl FnOnce(&mut Counts)) {
        what(self.at(at_ms));
    }

    /// The timeline up to `until_ms` (intervals with nothing in them included), as columns.
    pub fn series(&self, until_ms: u64) -> Series {
        let mut s = self.clone();
        let _ = s.at(until_ms);
        let column = |f: fn(&Counts) -> u64| s.intervals.iter().map(f).collect::<Vec<u64>>();
        let mut waiting = 0u64;
        let queue_length = s
            .intervals
            .iter()
            .map(|c| {
                waiting = (waiting + c.queued).saturating_sub(c.admitted + c.gave_up);
                waiting
            })
            .collect();
        Series {
            interval_ms: s.interval_ms,
            arrivals: column(|c| c.arrivals),
            queued: column(|c| c.queued),
            admitted: column(|c| c.admitted),
            gave_up: column(|c| c.gave_up),
            orders: column(|c| c.orders),
            tickets: column(|c| c.tickets),
            paid: column(|c| c.paid),
            errors: column(|c| c.errors),
            queue_length,
        }
    }
}

/// The sale's timeline as the reports carry it: interval `i` covers
/// `[i × intervalMs, (i + 1) × intervalMs)` ms of the sale clock; each column but `queueLength`
/// counts what happened in it, so a column's sum is its total over the sale.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub interval_ms: u64,
    /// Buyers who started their journey.
    pub arrivals: Vec<u64>,
    /// Buyers the server put in its queue.
    pub queued: Vec<u64>,
    pub admitted: Vec<u64>,
    /// Buyers who left the queue without an admission.
    pub gave_up: Vec<u64>,
    /// Orders placed.
    pub orders: Vec<u64>,
    /// Tickets in the orders placed.
    pub tickets: Vec<u64>,
    /// Orders whose buyer saw them PAID.
    pub paid: Vec<u64>,
    /// Failed requests of the sale.
    pub errors: Vec<u64>,
    /// Buyers waiting in the queue at the end of the interval.
    pub queue_length: Vec<u64>,
}

pub struct Recorder {
    started: Instant,
    samples: Mutex<Samples>,
    histograms: Mutex<HashMap<Step, Histogram<u64>>>,
    errors: Mutex<BTreeMap<FailureKey, u64>>,
    retries: Mutex<BTreeMap<FailureKey, u64>>,
    pub requests: AtomicU64,
    pub error_count: AtomicU64,
    pub stages: Stages,
    pub moments: Moments,
    /// `readyCapacity` as the server reported it (0 = not seen).
    pub capacity_seen: AtomicU64,
    /// (in line since, told SOLD_OUT at), ms on the sale clock, of each buyer told SOLD_OUT while
    /// waiting: one entry per buyer, so bounded by the plan's buyers.
    told: Mutex<Vec<(u64, u64)>>,
}

/// Histograms keep microseconds up to one hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Recorder {
            started,
            samples: Mutex::new(Samples::default()),
            histograms: Mutex::new(HashMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            retries: Mutex::new(BTreeMap::new()),
            requests: AtomicU64::new(0),
            error_count: AtomicU64::new(0),
            stages: Stages::default(),
            moments: Moments::default(),
            capacity_seen: AtomicU64::new(0),
            told: Mutex::new(Vec::new()),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Milliseconds since the sale clock started (at least 1 once it has started).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    pub fn time(&self, step: Step, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Ok(mut h) = self.histograms.lock() {
            let _ = h.entry(step).or_insert_with(histogram).record(us);
        }
    }

    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn sample(&self, at_ms: u64, what: impl FnOnce(&mut Counts)) {
        if let Ok(mut s) = self.samples.lock() {
            s.count(at_ms, what);
        }
    }

    /// The timeline from the sale clock's start until now.
    pub fn series(&self) -> Series {
        let until = self.now_ms();
        match self.samples.lock() {
            Ok(s) => s.series(until),
            Err(_) => Series::default(),
        }
    }

    pub fn error(&self, step: Step, status: impl Into<String>, message: impl Into<String>) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        self.sample(self.now_ms(), |c| c.errors += 1);
        let key = FailureKey {
            step,
            status: status.into(),
            message: clip(message.into()),
        };
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(key).or_default() += 1;
        }
    }

    pub fn retry(&self, step: Step, status: impl Into<String>, message: impl Into<String>) {
        let key = FailureKey {
            step,
            status: status.into(),
            message: clip(message.into()),
        };
        if let Ok(mut e) = self.retries.lock() {
            *e.entry(key).or_default() += 1;
        }
    }

    /// A buyer started their journey.
    pub fn arrived(&self) {
        self.stages.arrived.fetch_add(1, Ordering::Relaxed);
        self.sample(self.now_ms(), |c| c.arrivals += 1);
    }

    /// The server put a buyer in its queue.
    pub fn queued(&self) {
        self.stages.queued.fetch_add(1, Ordering::Relaxed);
        self.sample(self.now_ms(), |c| c.queued += 1);
    }

    /// A queued buyer stopped waiting without an admission.
    pub fn gave_up_waiting(&self) {
        self.sample(self.now_ms(), |c| c.gave_up += 1);
    }

    pub fn admitted(&self, at: Instant) {
        let ms = self.ms_at(at);
        mark_first(&self.moments.first_admission, ms);
        mark_last(&self.moments.last_admission, ms);
        self.stages.admitted.fetch_add(1, Ordering::Relaxed);
        self.sample(ms, |c| c.admitted += 1);
    }

    /// The server took an order of `qty` tickets.
    pub fn ordered(&self, qty: u32) {
        self.stages.ordered.fetch_add(1, Ordering::Relaxed);
        self.sample(self.now_ms(), |c| {
            c.orders += 1;
            c.tickets += u64::from(qty);
        });
    }

    pub fn paid(&self) {
        let ms = self.now_ms();
        mark_first(&self.moments.first_paid, ms);
        mark_last(&self.moments.last_paid, ms);
        self.stages.paid.fetch_add(1, Ordering::Relaxed);
        self.sample(ms, |c| c.paid += 1);
    }

    pub fn sold_out_reply(&self) {
        mark_first(&self.moments.first_sold_out_reply, self.now_ms());
        self.stages.sold_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn held(&self) {
        mark_last(&self.moments.last_hold, self.now_ms());
    }

    /// A waiting buyer, in line since `queued_at`, read SOLD_OUT (status or socket push).
    pub fn told_sold_out(&self, queued_at: Instant) {
        let now = self.now_ms();
        mark_last(&self.moments.last_told_sold_out, now);
        self.stages.told_sold_out.fetch_add(1, Ordering::Relaxed);
        self.told
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((self.ms_at(queued_at), now));
    }

    /// The longest any waiting buyer went without hearing SOLD_OUT after `sold_out_ms` (the last
    /// order placed) or, for one who joined the line later, after joining; `None` if nobody was
    /// told.
    pub fn longest_unaware_ms(&self, sold_out_ms: u64) -> Option<u64> {
        self.told
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|&(queued, told)| told.saturating_sub(queued.max(sold_out_ms)))
            .max()
    }

    pub fn saw_sold_out(&self) {
        mark_first(&self.moments.sold_out, self.now_ms());
    }

    pub fn saw_all_paid(&self) {
        mark_first(&self.moments.all_paid, self.now_ms());
    }

    pub fn saw_capacity(&self, capacity: u64) {
        if capacity > 0 {
            let _ = self.capacity_seen.compare_exchange(
                0,
                capacity,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    pub fn step_summaries(&self) -> Vec<StepSummary> {
        let Ok(h) = self.histograms.lock() else {
            return Vec::new();
        };
        let mut steps: Vec<_> = h
            .iter()
            .map(|(step, h)| StepSummary::of(*step, h))
            .collect();
        steps.sort_by_key(|s| s.step);
        steps
    }

    pub fn errors(&self) -> Vec<FailureGroup> {
        groups(&self.errors)
    }

    pub fn retries(&self) -> Vec<FailureGroup> {
        groups(&self.retries)
    }
}

fn groups(map: &Mutex<BTreeMap<FailureKey, u64>>) -> Vec<FailureGroup> {
    let Ok(m) = map.lock() else {
        return Vec::new();
    };
    let mut v: Vec<_> = m
        .iter()
        .map(|(k, n)| FailureGroup {
            step: k.step.name().to_owned(),
            status: k.status.clone(),
            message: k.message.clone(),
            count: *n,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.step.cmp(&b.step)));
    v
}

fn clip(mut s: String) -> String {
    const MAX: usize = 160;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Latency percentiles of one step, in milliseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    #[serde(skip)]
    pub step: Option<Step>,
    pub name: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl StepSummary {
    fn of(step: Step, h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        StepSummary {
            step: Some(step),
            name: step.name().to_owned(),
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailureGroup {
    pub step: String,
    pub status: String,
    pub message: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let r = Recorder::new(Instant::now());
        for ms in 1..=100 {
            r.time(Step::Order, Duration::from_millis(ms));
        }
        let s = r.step_summaries();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 100);
        assert!((s[0].p50_ms - 50.0).abs() < 0.1, "{:?}", s[0]);
        assert!((s[0].p99_ms - 99.0).abs() < 0.1, "{:?}", s[0]);
        assert!((s[0].max_ms - 100.0).abs() < 0.1, "{:?}", s[0]);
    }

    #[test]
    fn failures_are_grouped_by_step_status_and_message() {
        let r = Recorder::new(Instant::now());
        r.error(Step::Order, "500", "Internal server error");
        r.error(Step::Order, "500", "Internal server error");
        r.error(Step::Pay, "400", "Order is not eligible for payment");
        let e = r.errors();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].count, 2);
        assert_eq!(e[0].step, "order");
        assert_eq!(r.error_count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_timeline_counts_each_interval_and_the_queue_between() {
        let mut s = Samples::default();
        s.count(10, |c| c.queued += 1);
        s.count(20, |c| c.queued += 1);
        s.count(150, |c| c.admitted += 1);
        s.count(250, |c| c.gave_up += 1);
        s.count(260, |c| c.errors += 1);
        let t = s.series(450);
        assert_eq!(t.interval_ms, 100);
        assert_eq!(t.queued, vec![2, 0, 0, 0, 0]);
        assert_eq!(t.admitted, vec![0, 1, 0, 0, 0]);
        assert_eq!(t.errors, vec![0, 0, 1, 0, 0]);
        assert_eq!(t.queue_length, vec![2, 1, 0, 0, 0]);
    }

    #[test]
    fn a_long_sale_merges_intervals_and_keeps_every_count() {
        let mut s = Samples::default();
        let last = Samples::FIRST_INTERVAL_MS * Samples::MAX_INTERVALS as u64 * 3;
        let mut n = 0u64;
        for ms in (0..last).step_by(37) {
            s.count(ms, |c| c.paid += 1);
            n += 1;
        }
        let t = s.series(last);
        assert!(t.paid.len() <= Samples::MAX_INTERVALS, "{}", t.paid.len());
        assert_eq!(t.interval_ms, Samples::FIRST_INTERVAL_MS * 4);
        assert_eq!(t.paid.iter().sum::<u64>(), n);
        // 37 ms apart: each 400 ms interval holds 10 or 11 of them.
        assert!(
            t.paid[..t.paid.len() - 1]
                .iter()
                .all(|p| (10..=11).contains(p))
        );
    }

    #[test]
    fn first_and_last_moments_are_kept() {
        let r = Recorder::new(Instant::now());
        r.admitted(r.started() + Duration::from_millis(5));
        r.admitted(r.started() + Duration::from_millis(50));
        r.admitted(r.started() + Duration::from_millis(20));
        assert_eq!(r.moments.first_admission.load(Ordering::Relaxed), 5);
        assert_eq!(r.moments.last_admission.load(Ordering::Relaxed), 50);
    }
}
