//! The report of a run: as text on stdout, as JSON (SPEC §5's fields first, then more),
//! and as an HTML page with the charts.
//!
//! Rates are over the whole run, from the first user's start to the last user's end
//! (orders still followed after `--duration` included), so a rate is never flattered by
//! leaving out the tail. Latencies are in milliseconds, with microsecond precision, from
//! hdrhistogram at three significant figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::arguments::LoadtestArguments;
use crate::metrics::{Recorded, Second};
use crate::setup::FlashSale;

/// Everything a run measured. The first five fields are SPEC §5's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Requests answered (any status) per second of the run.
    pub requests_per_second: f64,
    /// Orders seen confirmed per second of the run.
    pub orders_per_second: f64,
    /// Failed requests, unexpected rejections, stuck orders: every error of every kind.
    pub errors: u64,
    /// Placement (the 202) → the poll that saw the order confirmed, client clock.
    pub order_confirm_ms: LatencyReport,
    /// Per endpoint, named by method and route.
    pub endpoints: BTreeMap<String, EndpointReport>,
    pub scenario: String,
    pub url: String,
    pub users: u32,
    pub duration_s: f64,
    pub ramp_s: f64,
    /// From the first user's start to the last user's end.
    pub elapsed_s: f64,
    pub requests: u64,
    pub orders: OrdersReport,
    /// `pending` → `confirmed` by the order's own history: the saga inside the shop,
    /// without HTTP hops or polling delay.
    pub order_confirm_shop_ms: LatencyReport,
    pub errors_by_kind: BTreeMap<String, ErrorReport>,
    pub flash_sale: Option<FlashSaleCheck>,
    pub timeline: Vec<SecondReport>,
}

/// Percentiles of a latency, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One endpoint: how often it was called, how often it failed, how long it took (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    pub count: u64,
    pub errors: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrdersReport {
    pub placed: u64,
    pub confirmed: u64,
    /// By reason; a flash sale's `out_of_stock` are expected, not errors.
    pub rejected: BTreeMap<String, u64>,
    pub timed_out: u64,
    pub placed_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub count: u64,
    /// What the first one said (a body, or the transport error).
    pub sample: String,
}

/// One second of the run, for the charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecondReport {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub orders_confirmed: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub confirm_p50_ms: f64,
    pub confirm_p99_ms: f64,
}

/// The flash sale's verdict: were more units confirmed than stocked?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashSaleCheck {
    pub product_id: String,
    pub sku: String,
    pub units_stocked: u64,
    /// Units in orders confirmed (or later), from the administrator's list of orders.
    pub units_confirmed: u64,
    /// Confirmations the users saw while following their orders.
    pub units_confirmed_seen_by_users: u64,
    /// Units in orders still pending when the check ran.
    pub units_in_flight: u64,
    /// Units inventory committed: stocked − on hand.
    pub units_committed: u64,
    pub inventory: InventoryLevels,
    pub oversold: bool,
    pub verdict: String,
    /// Whether the product was discontinued after the check.
    pub discontinued: bool,
}

/// `GET /api/inventory/{product_id}` after the sale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InventoryLevels {
    pub on_hand: u64,
    pub reserved: u64,
    pub available: i64,
}

impl FlashSaleCheck {
    /// Oversold when more units were confirmed than stocked, or inventory holds more
    /// committed and reserved than it ever had.
    pub(crate) fn judge(
        sale: &FlashSale,
        confirmed: u64,
        seen_by_users: u64,
        in_flight: u64,
        committed: u64,
        inventory: InventoryLevels,
        discontinued: bool,
    ) -> FlashSaleCheck {
        let stocked = u64::from(sale.units);
        let oversold = confirmed > stocked || committed + inventory.reserved > stocked || inventory.available < 0;
        let mut verdict = if oversold {
            format!(
                "OVERSOLD: {confirmed} units confirmed, {committed} committed + {} reserved, of {stocked} stocked",
                inventory.reserved
            )
        } else {
            format!(
                "no oversell: {confirmed} of {stocked} units confirmed ({committed} committed, {} reserved)",
                inventory.reserved
            )
        };
        if seen_by_users != confirmed {
            let _ = write!(verdict, "; the users saw {seen_by_users} confirmed");
        }
        if committed != confirmed {
            let _ = write!(verdict, "; inventory committed {committed}, not {confirmed}");
        }
        if in_flight > 0 {
            let _ = write!(verdict, "; {in_flight} units still in orders in flight");
        }
        FlashSaleCheck {
            product_id: sale.product_id.clone(),
            sku: sale.sku.clone(),
            units_stocked: stocked,
            units_confirmed: confirmed,
            units_confirmed_seen_by_users: seen_by_users,
            units_in_flight: in_flight,
            units_committed: committed,
            inventory,
            oversold,
            verdict,
            discontinued,
        }
    }
}

fn milliseconds(microseconds: u64) -> f64 {
    microseconds as f64 / 1_000.0
}

/// Rounds to the microsecond, in milliseconds.
fn round_ms(milliseconds: f64) -> f64 {
    (milliseconds * 1_000.0).round() / 1_000.0
}

impl LatencyReport {
    pub(crate) fn of(histogram: &Histogram<u64>) -> LatencyReport {
        if histogram.is_empty() {
            return LatencyReport::default();
        }
        LatencyReport {
            count: histogram.len(),
            p50: milliseconds(histogram.value_at_quantile(0.50)),
            p90: milliseconds(histogram.value_at_quantile(0.90)),
            p99: milliseconds(histogram.value_at_quantile(0.99)),
            max: milliseconds(histogram.max()),
            mean: round_ms(histogram.mean() / 1_000.0),
        }
    }
}

impl From<&Second> for SecondReport {
    fn from(second: &Second) -> Self {
        SecondReport {
            second: second.second,
            requests: second.requests,
            errors: second.errors,
            orders_confirmed: second.orders_confirmed,
            latency_p50_ms: milliseconds(second.latency_p50),
            latency_p99_ms: milliseconds(second.latency_p99),
            confirm_p50_ms: milliseconds(second.confirm_p50),
            confirm_p99_ms: milliseconds(second.confirm_p99),
        }
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() { 0.0 } else { (count as f64 / elapsed.as_secs_f64() * 100.0).round() / 100.0 }
}

impl Report {
    pub(crate) fn build(
        arguments: &LoadtestArguments,
        recorded: Recorded,
        elapsed: Duration,
        flash_sale: Option<FlashSaleCheck>,
    ) -> Report {
        let endpoints = recorded
            .endpoints
            .iter()
            .map(|(name, record)| {
                let latency = LatencyReport::of(&record.latency);
                let report = EndpointReport {
                    count: latency.count,
                    errors: record.errors,
                    p50: latency.p50,
                    p90: latency.p90,
                    p99: latency.p99,
                    max: latency.max,
                    mean: latency.mean,
                };
                ((*name).to_owned(), report)
            })
            .collect();
        let mut errors_by_kind: BTreeMap<String, ErrorReport> = recorded
            .errors
            .iter()
            .map(|(kind, error)| (kind.clone(), ErrorReport { count: error.count, sample: error.sample.clone() }))
            .collect();
        let mut errors = recorded.error_count;
        if let Some(check) = flash_sale.as_ref().filter(|check| check.oversold) {
            errors += 1;
            errors_by_kind.insert("oversell".to_owned(), ErrorReport { count: 1, sample: check.verdict.clone() });
        }
        let orders = &recorded.orders;
        Report {
            requests_per_second: per_second(recorded.requests, elapsed),
            orders_per_second: per_second(orders.confirmed, elapsed),
            errors,
            order_confirm_ms: LatencyReport::of(&recorded.order_confirm),
            endpoints,
            scenario: arguments.scenario.to_string(),
            url: arguments.url.clone(),
            users: arguments.users,
            duration_s: arguments.duration.as_secs_f64(),
            ramp_s: arguments.ramp.as_secs_f64(),
            elapsed_s: round_ms(elapsed.as_secs_f64()),
            requests: recorded.requests,
            orders: OrdersReport {
                placed: orders.placed,
                confirmed: orders.confirmed,
                rejected: orders.rejected.clone(),
                timed_out: orders.timed_out,
                placed_per_second: per_second(orders.placed, elapsed),
            },
            order_confirm_shop_ms: LatencyReport::of(&recorded.order_confirm_shop),
            errors_by_kind,
            flash_sale,
            timeline: recorded.timeline.seconds.iter().map(SecondReport::from).collect(),
        }
    }

    /// The report as a person reads it.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\n{} scenario, {} users, {} s (ramp {} s); {:.1} s from first start to last end",
            self.scenario, self.users, self.duration_s, self.ramp_s, self.elapsed_s
        );
        let rejected: Vec<String> =
            self.orders.rejected.iter().map(|(reason, count)| format!("{count} rejected ({reason})")).collect();
        let rejected = if rejected.is_empty() { "0 rejected".to_owned() } else { rejected.join(", ") };
        let _ = writeln!(
            text,
            "{} requests ({:.1}/s); orders: {} placed, {} confirmed ({:.2}/s), {rejected}, {} stuck; {} errors\n",
            self.requests,
            self.requests_per_second,
            self.orders.placed,
            self.orders.confirmed,
            self.orders_per_second,
            self.orders.timed_out,
            self.errors,
        );
        let _ = writeln!(
            text,
            "{:<36} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let row = |text: &mut String, name: &str, count: u64, errors: u64, latency: [f64; 4]| {
            let _ = writeln!(
                text,
                "{name:<36} {count:>8} {errors:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                latency[0], latency[1], latency[2], latency[3]
            );
        };
        for (name, endpoint) in &self.endpoints {
            row(
                &mut text,
                name,
                endpoint.count,
                endpoint.errors,
                [endpoint.p50, endpoint.p90, endpoint.p99, endpoint.max],
            );
        }
        for (name, latency) in [
            ("placement → confirmed", &self.order_confirm_ms),
            ("  pending → confirmed, shop clock", &self.order_confirm_shop_ms),
        ] {
            row(&mut text, name, latency.count, 0, [latency.p50, latency.p90, latency.p99, latency.max]);
        }
        if self.errors_by_kind.is_empty() {
            let _ = writeln!(text, "\nno errors");
        } else {
            let _ = writeln!(text, "\nerrors by kind:");
            for (kind, error) in &self.errors_by_kind {
                let _ = writeln!(text, "  {:>6}  {kind}  (first: {})", error.count, error.sample);
            }
        }
        if let Some(check) = &self.flash_sale {
            let _ = writeln!(text, "\nflash sale of {} ({}): {}", check.sku, check.product_id, check.verdict);
        }
        text
    }

    /// Where the JSON and the HTML go: `--report DIR` holds both; otherwise the HTML sits
    /// beside `--json FILE`.
    pub(crate) fn destinations(arguments: &LoadtestArguments) -> (Option<PathBuf>, Option<PathBuf>) {
        match (&arguments.json, &arguments.report) {
            (json, Some(directory)) => (
                Some(json.clone().unwrap_or_else(|| directory.join("loadtest.json"))),
                Some(directory.join("loadtest.html")),
            ),
            (Some(json), None) => (Some(json.clone()), Some(json.with_extension("html"))),
            (None, None) => (None, None),
        }
    }

    pub(crate) fn write_files(&self, arguments: &LoadtestArguments) -> Result<(), Error> {
        let (json, html) = Report::destinations(arguments);
        if let Some(path) = json {
            let text = serde_json::to_string_pretty(self).map_err(|error| Error::Write {
                path: path.display().to_string(),
                source: std::io::Error::other(error),
            })?;
            write(&path, &text)?;
            eprintln!("JSON report: {}", path.display());
        }
        if let Some(path) = html {
            write(&path, &crate::chart::html(self))?;
            eprintln!("HTML report: {}", path.display());
        }
        Ok(())
    }
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    let failed = |source| Error::Write { path: path.display().to_string(), source };
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, contents).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::Utc;
    use clap::Parser;

    use super::*;
    use crate::metrics::{Metrics, Outcome};

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        arguments: LoadtestArguments,
    }

    fn arguments(extra: &[&str]) -> LoadtestArguments {
        let base = ["loadtest", "--users", "4", "--duration", "10s", "--scenario", "browse"];
        Command::parse_from(base.iter().chain(extra)).arguments
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let mut histogram = crate::metrics::histogram(3);
        for millis in 1..=1_000u64 {
            histogram.saturating_record(millis * 1_000);
        }
        let latency = LatencyReport::of(&histogram);
        assert_eq!(latency.count, 1_000);
        // Three significant figures: within 0.1% of the exact nearest-rank value.
        for (observed, exact) in
            [(latency.p50, 500.0), (latency.p90, 900.0), (latency.p99, 990.0), (latency.max, 1_000.0)]
        {
            assert!((observed - exact).abs() <= exact * 0.001, "{observed} vs {exact}");
        }
        assert!((latency.mean - 500.5).abs() < 0.5, "{}", latency.mean);
        assert_eq!(LatencyReport::of(&crate::metrics::histogram(3)), LatencyReport::default());
    }

    #[test]
    fn rates_are_over_the_whole_run() {
        let metrics = Metrics::new(Instant::now());
        for _ in 0..300 {
            metrics.record_request("GET /api/products/{id}", Duration::from_millis(2), None);
        }
        metrics.order_placed();
        metrics.order_settled(&Outcome::Confirmed { client: Duration::from_millis(80), shop: None });
        let report = Report::build(&arguments(&[]), metrics.finish(), Duration::from_secs(10), None);
        assert_eq!(report.requests_per_second, 30.0);
        assert_eq!(report.orders_per_second, 0.1);
        assert_eq!(report.orders.placed_per_second, 0.1);
        assert_eq!(report.endpoints["GET /api/products/{id}"].count, 300);
        assert_eq!(report.order_confirm_ms.count, 1);
        assert_eq!(report.errors, 0);
    }

    #[test]
    fn the_json_has_spec_fields() {
        let metrics = Metrics::new(Instant::now());
        metrics.record_request("GET /api/cart", Duration::from_millis(3), None);
        let report = Report::build(&arguments(&[]), metrics.finish(), Duration::from_secs(1), None);
        let json = serde_json::to_value(&report).unwrap();
        for field in ["requests_per_second", "orders_per_second", "errors"] {
            assert!(json[field].is_number(), "{field}");
        }
        for field in ["p50", "p90", "p99", "max"] {
            assert!(json["order_confirm_ms"][field].is_number(), "order_confirm_ms.{field}");
        }
        for field in ["count", "p50", "p90", "p99"] {
            assert!(json["endpoints"]["GET /api/cart"][field].is_number(), "endpoints.NAME.{field}");
        }
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back.endpoints, report.endpoints);
    }

    fn sale(units: u32) -> FlashSale {
        FlashSale { product_id: "p".into(), sku: "LOAD-FLASH-X".into(), units, created_at: Utc::now() }
    }

    #[test]
    fn a_flash_sale_is_oversold_only_past_its_stock() {
        let levels = |on_hand: u64, reserved: u64| InventoryLevels {
            on_hand,
            reserved,
            available: on_hand as i64 - reserved as i64,
        };
        let sold_out = FlashSaleCheck::judge(&sale(5), 5, 5, 0, 5, levels(0, 0), true);
        assert!(!sold_out.oversold, "{}", sold_out.verdict);
        assert!(sold_out.verdict.starts_with("no oversell: 5 of 5"));
        let oversold = FlashSaleCheck::judge(&sale(5), 6, 6, 0, 5, levels(0, 0), true);
        assert!(oversold.oversold);
        assert!(oversold.verdict.starts_with("OVERSOLD"));
        let over_reserved = FlashSaleCheck::judge(&sale(5), 4, 4, 2, 4, levels(1, 2), true);
        assert!(over_reserved.oversold, "4 committed + 2 reserved of 5");
        let lagging = FlashSaleCheck::judge(&sale(5), 3, 3, 0, 2, levels(3, 0), true);
        assert!(!lagging.oversold);
        assert!(lagging.verdict.contains("inventory committed 2, not 3"));
    }

    #[test]
    fn an_oversell_is_an_error_of_the_report() {
        let check = FlashSaleCheck::judge(
            &sale(1),
            2,
            2,
            0,
            1,
            InventoryLevels { on_hand: 0, reserved: 0, available: 0 },
            true,
        );
        let report =
            Report::build(&arguments(&[]), Metrics::new(Instant::now()).finish(), Duration::from_secs(1), Some(check));
        assert_eq!(report.errors, 1);
        assert!(report.errors_by_kind.contains_key("oversell"));
        assert!(report.text().contains("OVERSOLD"));
    }

    #[test]
    fn the_html_goes_beside_the_json_or_into_the_report_directory() {
        let (json, html) = Report::destinations(&arguments(&["--json", "out/run.json"]));
        assert_eq!((json.unwrap(), html.unwrap()), (PathBuf::from("out/run.json"), PathBuf::from("out/run.html")));
        let (json, html) = Report::destinations(&arguments(&["--report", "reports"]));
        assert_eq!(
            (json.unwrap(), html.unwrap()),
            (PathBuf::from("reports/loadtest.json"), PathBuf::from("reports/loadtest.html"))
        );
        assert_eq!(Report::destinations(&arguments(&[])), (None, None));
    }

    #[test]
    fn files_are_written() {
        let directory = tempfile::tempdir().unwrap();
        let report_directory = directory.path().join("nested/report");
        let arguments = arguments(&["--report", report_directory.to_str().unwrap()]);
        let metrics = Metrics::new(Instant::now());
        metrics.record_request("GET /api/products", Duration::from_millis(4), None);
        let report = Report::build(&arguments, metrics.finish(), Duration::from_secs(1), None);
        report.write_files(&arguments).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report_directory.join("loadtest.json")).unwrap()).unwrap();
        assert_eq!(json["endpoints"]["GET /api/products"]["count"], 1);
        let html = std::fs::read_to_string(report_directory.join("loadtest.html")).unwrap();
        assert!(html.contains("<svg"), "charts are inline SVG");
    }
}
