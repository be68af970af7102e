//! What the virtual users measure, in one place: latency histograms per endpoint and for
//! placement → confirmed (hdrhistogram, microseconds), errors by kind, order outcomes, and
//! a timeline of one summary per second for the charts.
//!
//! One mutex for all of it: a user holds it for a few hundred nanoseconds per request, far
//! below what one HTTP round trip costs, and a single recorder keeps the memory bounded
//! whatever the number of users (histograms are ~200 KB each at 3 significant figures).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs to an hour.
const HIGHEST_MICROSECONDS: u64 = 3_600_000_000;

/// A histogram of microseconds with `significant_figures` of precision.
pub(crate) fn histogram(significant_figures: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROSECONDS, significant_figures)
        .expect("constant bounds and precision are valid")
}

fn microseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Shared by every user of a run.
#[derive(Debug)]
pub(crate) struct Metrics {
    started: Instant,
    state: Mutex<Recorded>,
}

/// Everything recorded during a run.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub endpoints: BTreeMap<&'static str, EndpointRecord>,
    pub errors: BTreeMap<String, ErrorRecord>,
    /// Client clock: the 202 of the placement → the poll that saw the order confirmed.
    pub order_confirm: Histogram<u64>,
    /// Shop clock: `at` of `pending` → `at` of `confirmed` in the order's history.
    pub order_confirm_shop: Histogram<u64>,
    pub orders: OrderCounts,
    pub timeline: Timeline,
    pub requests: u64,
    pub error_count: u64,
}

#[derive(Debug)]
pub(crate) struct EndpointRecord {
    pub latency: Histogram<u64>,
    pub errors: u64,
}

/// How often one kind of error happened, and what the first one said.
#[derive(Debug, Clone)]
pub(crate) struct ErrorRecord {
    pub count: u64,
    pub sample: String,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct OrderCounts {
    pub placed: u64,
    pub confirmed: u64,
    /// Rejections by reason, whether the scenario expects them or not.
    pub rejected: BTreeMap<String, u64>,
    /// Orders not settled within `--order-timeout`.
    pub timed_out: u64,
}

/// How a followed order ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Confirmed (or further): the client's and, when the history says, the shop's time.
    Confirmed {
        client: Duration,
        shop: Option<Duration>,
    },
    Rejected {
        reason: String,
    },
    TimedOut,
}

/// What the progress display shows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Live {
    pub requests: u64,
    pub errors: u64,
    pub orders_placed: u64,
    pub orders_settled: u64,
    pub orders_confirmed: u64,
}

impl Metrics {
    pub fn new(started: Instant) -> Metrics {
        Metrics {
            started,
            state: Mutex::new(Recorded {
                endpoints: BTreeMap::new(),
                errors: BTreeMap::new(),
                order_confirm: histogram(3),
                order_confirm_shop: histogram(3),
                orders: OrderCounts::default(),
                timeline: Timeline::default(),
                requests: 0,
                error_count: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A poisoned lock only means a user panicked while recording; the counts stand.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// One request to `endpoint` that took `latency`; `error` is its kind and what it said
    /// when it failed.
    pub fn record_request(&self, endpoint: &'static str, latency: Duration, error: Option<(String, String)>) {
        let mut state = self.lock();
        let second = self.second();
        let value = microseconds(latency);
        let record =
            state.endpoints.entry(endpoint).or_insert_with(|| EndpointRecord { latency: histogram(3), errors: 0 });
        record.latency.saturating_record(value);
        state.requests += 1;
        let failed = error.is_some();
        if let Some((kind, sample)) = error {
            if let Some(record) = state.endpoints.get_mut(endpoint) {
                record.errors += 1;
            }
            state.add_error(kind, sample);
        }
        let bucket = state.timeline.at(second);
        bucket.requests += 1;
        bucket.latency.saturating_record(value);
        if failed {
            bucket.errors += 1;
        }
    }

    /// An error that is not one request's: an order that got stuck, a cart never cleared.
    pub fn record_error(&self, kind: &str, sample: &str) {
        let mut state = self.lock();
        let second = self.second();
        state.add_error(kind.to_owned(), sample.to_owned());
        state.timeline.at(second).errors += 1;
    }

    pub fn order_placed(&self) {
        self.lock().orders.placed += 1;
    }

    /// How a followed order ended. A rejection is counted here; whether it is also an
    /// error is the scenario's call.
    pub fn order_settled(&self, outcome: &Outcome) {
        let mut state = self.lock();
        let second = self.second();
        match outcome {
            Outcome::Confirmed { client, shop } => {
                state.orders.confirmed += 1;
                state.order_confirm.saturating_record(microseconds(*client));
                if let Some(shop) = shop {
                    state.order_confirm_shop.saturating_record(microseconds(*shop));
                }
                let bucket = state.timeline.at(second);
                bucket.orders_confirmed += 1;
                bucket.confirm.saturating_record(microseconds(*client));
            }
            Outcome::Rejected { reason } => *state.orders.rejected.entry(reason.clone()).or_insert(0) += 1,
            Outcome::TimedOut => state.orders.timed_out += 1,
        }
    }

    pub fn live(&self) -> Live {
        let state = self.lock();
        let orders = &state.orders;
        let settled = orders.confirmed + orders.rejected.values().sum::<u64>() + orders.timed_out;
        Live {
            requests: state.requests,
            errors: state.error_count,
            orders_placed: orders.placed,
            orders_settled: settled,
            orders_confirmed: orders.confirmed,
        }
    }

    /// Everything recorded, with the timeline closed.
    pub fn finish(&self) -> Recorded {
        let mut state = self.lock();
        let mut finished = Recorded {
            endpoints: std::mem::take(&mut state.endpoints),
            errors: std::mem::take(&mut state.errors),
            order_confirm: std::mem::replace(&mut state.order_confirm, histogram(1)),
            order_confirm_shop: std::mem::replace(&mut state.order_confirm_shop, histogram(1)),
            orders: std::mem::take(&mut state.orders),
            timeline: std::mem::take(&mut state.timeline),
            requests: state.requests,
            error_count: state.error_count,
        };
        finished.timeline.close();
        finished
    }
}

impl Recorded {
    fn add_error(&mut self, kind: String, sample: String) {
        self.error_count += 1;
        self.errors.entry(kind).or_insert_with(|| ErrorRecord { count: 0, sample }).count += 1;
    }
}

/// One summary per second of the run; only the current second holds histograms.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    pub seconds: Vec<Second>,
    current: Option<Accumulating>,
}

/// What one second of the run saw (events by the second they completed in).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub orders_confirmed: u64,
    /// Request latency, microseconds, over all endpoints.
    pub latency_p50: u64,
    pub latency_p99: u64,
    /// Placement → confirmed of the orders confirmed in this second, microseconds.
    pub confirm_p50: u64,
    pub confirm_p99: u64,
}

#[derive(Debug)]
struct Accumulating {
    second: u64,
    requests: u64,
    errors: u64,
    orders_confirmed: u64,
    latency: Histogram<u64>,
    confirm: Histogram<u64>,
}

impl Accumulating {
    fn new(second: u64) -> Accumulating {
        // Two figures are plenty for a chart and keep each second's histograms small.
        Accumulating {
            second,
            requests: 0,
            errors: 0,
            orders_confirmed: 0,
            latency: histogram(2),
            confirm: histogram(2),
        }
    }

    fn summary(&self) -> Second {
        let quantile = |histogram: &Histogram<u64>, quantile: f64| {
            if histogram.is_empty() { 0 } else { histogram.value_at_quantile(quantile) }
        };
        Second {
            second: self.second,
            requests: self.requests,
            errors: self.errors,
            orders_confirmed: self.orders_confirmed,
            latency_p50: quantile(&self.latency, 0.50),
            latency_p99: quantile(&self.latency, 0.99),
            confirm_p50: quantile(&self.confirm, 0.50),
            confirm_p99: quantile(&self.confirm, 0.99),
        }
    }
}

impl Timeline {
    /// The accumulator of `second`, closing the earlier ones (empty seconds included, so
    /// the chart shows a stall as zero). A late record of an earlier second counts in the
    /// current one.
    fn at(&mut self, second: u64) -> &mut Accumulating {
        let current = self.current.get_or_insert_with(|| Accumulating::new(0));
        if second > current.second {
            self.seconds.push(current.summary());
            for empty in current.second + 1..second {
                self.seconds.push(Second { second: empty, ..Second::default() });
            }
            *current = Accumulating::new(second);
        }
        current
    }

    fn close(&mut self) {
        if let Some(current) = self.current.take() {
            self.seconds.push(current.summary());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_endpoint_with_their_errors() {
        let metrics = Metrics::new(Instant::now());
        for millis in 1..=100 {
            metrics.record_request("GET /a", Duration::from_millis(millis), None);
        }
        metrics.record_request("GET /b", Duration::from_millis(5), Some(("GET /b: HTTP 500".into(), "boom".into())));
        metrics.record_request("GET /b", Duration::from_millis(5), Some(("GET /b: HTTP 500".into(), "later".into())));
        metrics.record_error("order stuck", "order 1");
        let recorded = metrics.finish();
        assert_eq!(recorded.requests, 102);
        assert_eq!(recorded.error_count, 3);
        let a = &recorded.endpoints["GET /a"];
        assert_eq!(a.latency.len(), 100);
        assert_eq!(a.errors, 0);
        // hdrhistogram answers within 0.1% at three significant figures.
        let p50 = a.latency.value_at_quantile(0.5);
        assert!((50_000..=50_050).contains(&p50), "{p50}");
        let p99 = a.latency.value_at_quantile(0.99);
        assert!((99_000..=99_100).contains(&p99), "{p99}");
        assert_eq!(recorded.endpoints["GET /b"].errors, 2);
        let error = &recorded.errors["GET /b: HTTP 500"];
        assert_eq!((error.count, error.sample.as_str()), (2, "boom"), "the first sample is kept");
        assert_eq!(recorded.errors["order stuck"].count, 1);
    }

    #[test]
    fn orders_are_counted_by_outcome() {
        let metrics = Metrics::new(Instant::now());
        metrics.order_placed();
        metrics.order_placed();
        metrics.order_placed();
        assert_eq!(metrics.live().orders_placed, 3);
        metrics.order_settled(&Outcome::Confirmed {
            client: Duration::from_millis(40),
            shop: Some(Duration::from_millis(30)),
        });
        metrics.order_settled(&Outcome::Rejected { reason: "out_of_stock".into() });
        let live = metrics.live();
        assert_eq!((live.orders_settled, live.orders_confirmed), (2, 1));
        metrics.order_settled(&Outcome::TimedOut);
        let recorded = metrics.finish();
        assert_eq!(recorded.orders.confirmed, 1);
        assert_eq!(recorded.orders.rejected["out_of_stock"], 1);
        assert_eq!(recorded.orders.timed_out, 1);
        assert_eq!(recorded.order_confirm.len(), 1);
        assert_eq!(recorded.order_confirm_shop.len(), 1);
    }

    #[test]
    fn the_timeline_has_one_summary_per_second_gaps_included() {
        let mut timeline = Timeline::default();
        for _ in 0..10 {
            timeline.at(0).requests += 1;
        }
        let second = timeline.at(3);
        second.requests += 1;
        second.latency.saturating_record(2_000);
        // A late record of an earlier second counts in the current one.
        timeline.at(1).requests += 1;
        timeline.close();
        let counts: Vec<(u64, u64)> = timeline.seconds.iter().map(|second| (second.second, second.requests)).collect();
        assert_eq!(counts, vec![(0, 10), (1, 0), (2, 0), (3, 2)]);
        let p50 = timeline.seconds[3].latency_p50;
        assert!((1_990..=2_010).contains(&p50), "{p50}");
    }
}
