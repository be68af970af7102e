//! `eventshop loadtest` (SPEC §5): virtual users that drive a running shop over its public
//! HTTP API the way shoppers do, and a report of what the shop sustained.
//!
//! A run has three parts:
//!
//! 1. **Setup** ([`setup`]), not measured: as the administrator, make sure the load products
//!    exist (skus `LOAD-001`…, created with an `Idempotency-Key` so a second run reuses
//!    them) and hold plenty of stock; for a flash sale, put a new product on sale with a
//!    few units.
//! 2. **The run** ([`scenario`]): `--users` virtual users, started evenly over `--ramp`,
//!    act until `--duration` has passed. A shopper registers (a unique email per run),
//!    funds its wallet, then picks actions with the weights of Online Boutique's locust
//!    profile: browse-heavy, one checkout in 17. A checkout follows its order by polling
//!    `GET /api/orders/{id}` until it is confirmed or rejected, so "placement → confirmed"
//!    is measured on the client's clock and, from the order's history, on the shop's.
//!    Orders still being followed when the time is up are followed to the end.
//! 3. **The report** ([`report`]): requests/s, confirmed orders/s, latency percentiles per
//!    endpoint and for placement → confirmed (hdrhistogram), errors by kind, a timeline per
//!    second; as text, as the JSON of SPEC §5 (`--json`), and as an HTML page with SVG charts
//!    (`--report DIR`, or beside the JSON file). A flash sale ends with the oversell check:
//!    the administrator reads the product's inventory and the orders, and units confirmed
//!    must not exceed units stocked; if they do, [`run`] fails.
//!
//! # Why not goose
//!
//! goose (tag1consulting, the Rust counterpart of locust) was evaluated as the engine, at
//! 0.19. It does build here (43 crates the workspace does not have, among them a second
//! HTTP client, reqwest 0.13, with rustls on aws-lc, whose C library is compiled at build
//! time: about three minutes of `cargo check` on this 2-core machine), and its users,
//! weighted transactions and hatch rate map onto `--users`, the scenario weights and
//! `--ramp`. It was not taken because the parts this tool exists for sit outside it:
//!
//! - placement → confirmed is not a request but a request followed by polling; goose would
//!   record every poll as a request and the whole checkout as one transaction time, and
//!   the shop-clock measure from the order's history has no place in its metrics;
//! - its percentiles come from its own rounded buckets, not hdrhistogram, and its JSON
//!   report has its own shape, so SPEC's shape would be a second report computed anyway;
//! - the flash-sale verdict must read the shop after the run and fail the command, which
//!   its lifecycle (its own reports, its own exit) does not give a hook for;
//! - it parses its own command line and installs a process-wide Ctrl-C handler, neither of
//!   which belongs inside the `eventshop` binary.
//!
//! What remains is small: tokio tasks as users, the workspace's reqwest, hdrhistogram for
//! percentiles, indicatif for the live display and plotters for the charts.

mod arguments;
mod chart;
mod metrics;
mod progress;
mod report;
mod scenario;
mod setup;
mod shop;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use arguments::{LoadtestArguments, Payment, Scenario};
pub use report::{EndpointReport, FlashSaleCheck, LatencyReport, OrdersReport, Report, SecondReport};

use crate::metrics::Metrics;
use crate::scenario::Run;
use crate::shop::Shop;

/// Why a load test could not run or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments do not make a run.
    #[error("{0}")]
    Arguments(String),
    /// The shop could not be prepared: the run never started.
    #[error("setup: {0}")]
    Setup(String),
    /// The flash sale's check could not read the shop after the run.
    #[error("flash-sale check: {0}")]
    Check(String),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    /// The flash sale confirmed more units than were stocked (SPEC §2's invariant).
    #[error("OVERSOLD: {0}")]
    Oversold(String),
}

/// Runs the load test of `arguments`: setup, the run, the report (printed, and written
/// where the arguments say). Fails on bad arguments, a failed setup, or an oversell.
pub async fn run(arguments: LoadtestArguments) -> Result<Report, Error> {
    arguments.validate()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(arguments.users as usize + 8)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| Error::Setup(format!("cannot build the HTTP client: {error}")))?;
    let base = arguments.url.trim_end_matches('/').to_owned();
    eprintln!(
        "eventshop loadtest: scenario {}, {} users for {} (ramp {}) against {base}",
        arguments.scenario,
        arguments.users,
        humantime::format_duration(arguments.duration),
        humantime::format_duration(arguments.ramp),
    );
    let setup_started = Instant::now();
    let prepared = setup::prepare(&http, &base, &arguments).await?;
    eprintln!("setup: {} in {:.1} s", prepared.describe(), setup_started.elapsed().as_secs_f64());

    let started = Instant::now();
    let metrics = Arc::new(Metrics::new(started));
    let shop = Shop::new(http.clone(), base.clone(), metrics.clone());
    let run = Arc::new(Run::new(shop, prepared.catalog.clone(), prepared.flash_sale.clone(), &arguments, started));
    let progress = progress::Progress::start(run.clone(), &arguments);
    let mut users = Vec::with_capacity(arguments.users as usize);
    for index in 0..arguments.users {
        let offset = ramp_offset(arguments.ramp, index, arguments.users);
        let run = run.clone();
        users.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            if !run.over() {
                run.user(index).await;
            }
        }));
    }
    for user in users {
        // A panicking user is a bug of this tool; the others' figures still stand.
        if let Err(error) = user.await {
            metrics.record_error("loadtest: a virtual user panicked", &error.to_string());
        }
    }
    let elapsed = started.elapsed();
    progress.finish().await;

    let flash_sale = match &prepared.flash_sale {
        Some(sale) => Some(setup::check_flash_sale(&http, &base, &arguments, sale, &metrics).await?),
        None => None,
    };
    let report = Report::build(&arguments, metrics.finish(), elapsed, flash_sale);
    println!("{}", report.text());
    report.write_files(&arguments)?;
    match &report.flash_sale {
        Some(check) if check.oversold => Err(Error::Oversold(check.verdict.clone())),
        _ => Ok(report),
    }
}

/// The longest any one request may take before it counts as a timeout error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// When user `index` of `users` starts: evenly over the ramp, the first at once.
fn ramp_offset(ramp: Duration, index: u32, users: u32) -> Duration {
    if users <= 1 { Duration::ZERO } else { ramp.mul_f64(f64::from(index) / f64::from(users)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_start_evenly_over_the_ramp() {
        let ramp = Duration::from_secs(10);
        assert_eq!(ramp_offset(ramp, 0, 4), Duration::ZERO);
        assert_eq!(ramp_offset(ramp, 1, 4), Duration::from_millis(2_500));
        assert_eq!(ramp_offset(ramp, 3, 4), Duration::from_millis(7_500));
        assert_eq!(ramp_offset(ramp, 0, 1), Duration::ZERO);
        assert_eq!(ramp_offset(Duration::ZERO, 3, 4), Duration::ZERO);
    }
}
