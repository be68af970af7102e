//! Orders per second through the whole checkout saga, placement to confirmed, against a
//! RUNNING shop over HTTP, and the time each order takes to get there.
//!
//! ```sh
//! saga-bench --url http://127.0.0.1:8081 --admin-email E --admin-password P \
//!     [--buyers 32] [--orders 5000] [--concurrency 16] [--window 8] [--rate R] \
//!     [--products 8] [--payment wallet|card] [--poll-ms 5] [--warmup 200] [--timeout-s 120]
//! ```
//!
//! Setup (not timed): an administrator token, `--products` products at 1.00 EUR restocked
//! with enough units for every order, `--buyers` customers registered and logged in (argon2:
//! this is the slow part), each with a wallet deposit that pays for every order it will
//! place. Then `--warmup` orders through the same machinery, not reported.
//!
//! Mode 1, throughput (no `--rate`): `--concurrency` placers place the `--orders` orders
//! back to back, one request at a time each, with at most `concurrency × window` orders
//! in flight (placed, not yet settled). Each order is handed to one of `--concurrency`
//! pollers, which GET every order they follow in turn (`GET /api/orders/{id}`), then sleep
//! `--poll-ms`, until it is confirmed or rejected.
//!
//! Mode 2, latency at a rate (`--rate R`): open loop. Order i is due at start + i/R and is
//! placed then, whatever happened to the others (a task per placement); the pollers are as
//! above. Client times are measured from the moment an order was due, so a shop that falls
//! behind shows it (no coordinated omission).
//!
//! Two clocks for "placement → confirmed":
//! - client: from sending the POST (mode 2: from the order's due time) to the poll that saw
//!   `confirmed`; includes the polling delay (up to one poll pass);
//! - shop: the order's own history, `at` of `pending` to `at` of `confirmed` (the
//!   recorded-at of the events): the saga's time inside the shop, without the HTTP hops and
//!   without polling delay.
//!
//! The last line of output is `RESULT {json}` for scripts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use uuid::Uuid;

const PRICE: i64 = 100;
const PASSWORD: &str = "saga-bench-password";
/// Registrations and logins in parallel during setup (argon2 wants a core each).
const SETUP_PARALLELISM: usize = 4;

#[derive(Debug, Clone)]
struct Options {
    url: String,
    admin_email: String,
    admin_password: String,
    buyers: usize,
    orders: usize,
    concurrency: usize,
    window: usize,
    rate: Option<f64>,
    products: usize,
    card: bool,
    poll: Duration,
    warmup: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: saga-bench --url URL --admin-email E --admin-password P [--buyers N] [--orders M] \
[--concurrency C] [--window W] [--rate R] [--products P] [--payment wallet|card] [--poll-ms MS] [--warmup K] \
[--timeout-s S]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        url: String::new(),
        admin_email: String::new(),
        admin_password: String::new(),
        buyers: 32,
        orders: 5_000,
        concurrency: 16,
        window: 8,
        rate: None,
        products: 8,
        card: false,
        poll: Duration::from_millis(5),
        warmup: 200,
        timeout: Duration::from_secs(120),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = arguments.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |value: &str| value.parse::<usize>().map_err(|_| format!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--url" => options.url = value.trim_end_matches('/').to_owned(),
            "--admin-email" => options.admin_email = value,
            "--admin-password" => options.admin_password = value,
            "--buyers" => options.buyers = number(&value)?.max(1),
            "--orders" => options.orders = number(&value)?,
            "--concurrency" => options.concurrency = number(&value)?.max(1),
            "--window" => options.window = number(&value)?.max(1),
            "--rate" => {
                let rate = value.parse::<f64>().map_err(|_| format!("--rate: not a number: {value}"))?;
                if rate.is_nan() || rate <= 0.0 {
                    return Err("--rate must be above 0".to_owned());
                }
                options.rate = Some(rate);
            }
            "--products" => options.products = number(&value)?.max(1),
            "--payment" => {
                options.card = match value.as_str() {
                    "wallet" => false,
                    "card" => true,
                    other => return Err(format!("--payment: wallet or card, not {other}")),
                }
            }
            "--poll-ms" => options.poll = Duration::from_millis(number(&value)? as u64),
            "--warmup" => options.warmup = number(&value)?,
            "--timeout-s" => options.timeout = Duration::from_secs(number(&value)? as u64),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if options.url.is_empty() || options.admin_email.is_empty() || options.admin_password.is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(options).await {
        eprintln!("saga-bench: {error}");
        std::process::exit(1);
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What the orders are placed with.
#[derive(Debug)]
struct Shop {
    client: Client,
    url: String,
    products: Vec<String>,
    /// Access tokens of the buyers.
    buyers: Vec<String>,
    card: bool,
}

async fn run(options: Options) -> Result<(), Failure> {
    let client = Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?;
    let setup_started = Instant::now();
    let shop = Arc::new(setup(&client, &options).await?);
    eprintln!(
        "setup: {} products, {} buyers in {:.1} s",
        shop.products.len(),
        shop.buyers.len(),
        setup_started.elapsed().as_secs_f64()
    );
    if options.warmup > 0 {
        let warmup = measure(&shop, &options, options.warmup, None).await;
        eprintln!(
            "warmup: {} orders, {} confirmed, {:.0} confirmed/s",
            options.warmup,
            warmup.confirmed_client.len(),
            warmup.confirmed_per_second()
        );
    }
    let outcome = measure(&shop, &options, options.orders, options.rate).await;
    outcome.report(&options);
    Ok(())
}

async fn setup(client: &Client, options: &Options) -> Result<Shop, Failure> {
    let url = &options.url;
    let admin = token(client, url, &options.admin_email, &options.admin_password).await?;
    let total = options.orders + options.warmup;
    let per_product = (total / options.products + 1) as i64 * 2;
    let mut products = Vec::new();
    for index in 0..options.products {
        let body = json!({
            "sku": format!("SAGA-{}", Uuid::now_v7().simple()),
            "name": format!("Saga bench product {index}"),
            "description": "A product of the saga benchmark.",
            "price": {"amount": PRICE, "currency": "EUR"},
            "category": "bench",
        });
        let (status, product) =
            send(client.post(format!("{url}/api/products")).bearer_auth(&admin).json(&body)).await?;
        expect(status, StatusCode::CREATED, "create a product", &product)?;
        let id = product["id"].as_str().ok_or("a product id")?.to_owned();
        let mut left = per_product;
        while left > 0 {
            let quantity = left.min(1_000_000);
            let (status, body) = send(
                client
                    .post(format!("{url}/api/inventory/{id}/restock"))
                    .bearer_auth(&admin)
                    .json(&json!({"quantity": quantity})),
            )
            .await?;
            expect(status, StatusCode::OK, "restock", &body)?;
            left -= quantity;
        }
        products.push(id);
    }

    let per_buyer = (total / options.buyers + 1) as i64 * PRICE * 2;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..SETUP_PARALLELISM {
        let (client, url, next, card) = (client.clone(), url.clone(), next.clone(), options.card);
        let buyers = options.buyers;
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < buyers {
                tokens.push(buyer(&client, &url, if card { 0 } else { per_buyer }).await?);
            }
            Ok::<_, Failure>(tokens)
        }));
    }
    let mut buyers = Vec::new();
    for task in tasks {
        buyers.extend(task.await??);
    }
    Ok(Shop { client: client.clone(), url: url.clone(), products, buyers, card: options.card })
}

/// Registers a customer, logs in, deposits `deposit` cents (when above 0); answers the token.
async fn buyer(client: &Client, url: &str, deposit: i64) -> Result<String, Failure> {
    let email = format!("saga-{}@bench.test", Uuid::now_v7().simple());
    let (status, body) = send(
        client.post(format!("{url}/api/users")).json(&json!({"email": email, "password": PASSWORD, "name": "Buyer"})),
    )
    .await?;
    expect(status, StatusCode::CREATED, "register", &body)?;
    let access = token(client, url, &email, PASSWORD).await?;
    let mut left = deposit;
    while left > 0 {
        let amount = left.min(1_000_000_000);
        let body = json!({"amount": {"amount": amount, "currency": "EUR"}});
        let (status, answer) =
            send(client.post(format!("{url}/api/wallet/deposits")).bearer_auth(&access).json(&body)).await?;
        expect(status, StatusCode::CREATED, "deposit", &answer)?;
        left -= amount;
    }
    Ok(access)
}

async fn token(client: &Client, url: &str, email: &str, password: &str) -> Result<String, Failure> {
    let form = [("grant_type", "password"), ("username", email), ("password", password)];
    let (status, body) = send(client.post(format!("{url}/oauth/token")).form(&form)).await?;
    expect(status, StatusCode::OK, "log in", &body)?;
    Ok(body["access_token"].as_str().ok_or("an access token")?.to_owned())
}

async fn send(request: reqwest::RequestBuilder) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn expect(status: StatusCode, expected: StatusCode, what: &str, body: &Value) -> Result<(), Failure> {
    if status == expected { Ok(()) } else { Err(format!("{what}: {status} {body}").into()) }
}

/// One order on its way, as a poller follows it.
#[derive(Debug)]
struct InFlight {
    id: String,
    token: usize,
    /// When the clock of this order started: the POST (mode 1), its due time (mode 2).
    started: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

/// How one order ended, as a poller saw it.
#[derive(Debug)]
enum Settled {
    Confirmed {
        client: Duration,
        shop: Option<Duration>,
        seen: Instant,
        shop_window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
    Rejected {
        reason: String,
    },
    TimedOut,
}

#[derive(Debug, Default)]
struct Outcome {
    orders: usize,
    /// Time of the first POST sent.
    first_sent: Option<Instant>,
    /// Time the last POST was answered.
    last_accepted: Option<Instant>,
    /// Time the last settled order was seen.
    last_seen: Option<Instant>,
    placement: Vec<Duration>,
    confirmed_client: Vec<Duration>,
    confirmed_shop: Vec<Duration>,
    /// Earliest `pending` and latest `confirmed` by the shop's clock.
    shop_first_placed: Option<DateTime<Utc>>,
    shop_last_confirmed: Option<DateTime<Utc>>,
    rejected: BTreeMap<String, usize>,
    placement_errors: BTreeMap<String, usize>,
    poll_errors: usize,
    polls: usize,
    timed_out: usize,
    max_in_flight: usize,
}

/// What placers tell the collector.
#[derive(Debug)]
enum Report {
    Placed { sent: Instant, answered: Instant },
    PlacementFailed { sent: Instant, error: String },
}

/// What pollers tell the collector when they finish.
#[derive(Debug, Default)]
struct PollerTally {
    settled: Vec<Settled>,
    polls: usize,
    errors: usize,
    max_pending: usize,
}

async fn measure(shop: &Arc<Shop>, options: &Options, orders: usize, rate: Option<f64>) -> Outcome {
    let pollers = options.concurrency;
    let (reports, mut report_receiver) = mpsc::unbounded_channel::<Report>();
    let mut poller_senders = Vec::new();
    let mut poller_tasks = Vec::new();
    for _ in 0..pollers {
        let (sender, receiver) = mpsc::unbounded_channel::<InFlight>();
        poller_senders.push(sender);
        poller_tasks.push(tokio::spawn(poller(shop.clone(), receiver, options.poll, options.timeout)));
    }
    let poller_senders = Arc::new(poller_senders);
    let next = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now();

    let mut placers = Vec::new();
    match rate {
        None => {
            let window = Arc::new(Semaphore::new(options.concurrency * options.window));
            for _ in 0..options.concurrency {
                let (shop, next, senders, reports, window) =
                    (shop.clone(), next.clone(), poller_senders.clone(), reports.clone(), window.clone());
                placers.push(tokio::spawn(async move {
                    loop {
                        let Ok(permit) = window.clone().acquire_owned().await else { break };
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= orders {
                            break;
                        }
                        let sent = Instant::now();
                        place(&shop, index, sent, Some(permit), &senders, &reports).await;
                    }
                }));
            }
        }
        Some(rate) => {
            let (shop, senders, reports) = (shop.clone(), poller_senders.clone(), reports.clone());
            placers.push(tokio::spawn(async move {
                let mut spawned = Vec::with_capacity(orders);
                for index in 0..orders {
                    let due = begin + Duration::from_secs_f64(index as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let (shop, senders, reports) = (shop.clone(), senders.clone(), reports.clone());
                    spawned.push(tokio::spawn(async move { place(&shop, index, due, None, &senders, &reports).await }));
                }
                for task in spawned {
                    let _ = task.await;
                }
            }));
        }
    }
    drop(reports);
    drop(poller_senders);

    let mut outcome = Outcome { orders, ..Outcome::default() };
    let collector = async {
        while let Some(report) = report_receiver.recv().await {
            match report {
                Report::Placed { sent, answered } => {
                    outcome.placement.push(answered - sent);
                    outcome.first_sent = Some(outcome.first_sent.map_or(sent, |first| first.min(sent)));
                    outcome.last_accepted = Some(outcome.last_accepted.map_or(answered, |last| last.max(answered)));
                }
                Report::PlacementFailed { sent, error } => {
                    outcome.first_sent = Some(outcome.first_sent.map_or(sent, |first| first.min(sent)));
                    *outcome.placement_errors.entry(error).or_insert(0) += 1;
                }
            }
        }
    };
    collector.await;
    for placer in placers {
        let _ = placer.await;
    }
    for task in poller_tasks {
        let Ok(tally) = task.await else { continue };
        outcome.polls += tally.polls;
        outcome.poll_errors += tally.errors;
        outcome.max_in_flight += tally.max_pending;
        for settled in tally.settled {
            match settled {
                Settled::Confirmed { client, shop, seen, shop_window } => {
                    outcome.confirmed_client.push(client);
                    if let Some(shop) = shop {
                        outcome.confirmed_shop.push(shop);
                    }
                    if let Some((placed, confirmed)) = shop_window {
                        outcome.shop_first_placed =
                            Some(outcome.shop_first_placed.map_or(placed, |first| first.min(placed)));
                        outcome.shop_last_confirmed =
                            Some(outcome.shop_last_confirmed.map_or(confirmed, |last| last.max(confirmed)));
                    }
                    outcome.last_seen = Some(outcome.last_seen.map_or(seen, |last| last.max(seen)));
                }
                Settled::Rejected { reason } => *outcome.rejected.entry(reason).or_insert(0) += 1,
                Settled::TimedOut => outcome.timed_out += 1,
            }
        }
    }
    outcome
}

/// Places order `index` (product and buyer by round robin) and hands it to a poller.
async fn place(
    shop: &Shop,
    index: usize,
    started: Instant,
    permit: Option<OwnedSemaphorePermit>,
    pollers: &[mpsc::UnboundedSender<InFlight>],
    reports: &mpsc::UnboundedSender<Report>,
) {
    let token = index % shop.buyers.len();
    let product = &shop.products[index % shop.products.len()];
    let payment = if shop.card { json!({"type": "card", "token": "tok_visa"}) } else { json!({"type": "wallet"}) };
    let body = json!({
        "items": [{"product_id": product, "quantity": 1}],
        "shipping_address": {"name": "Bench Buyer", "line1": "1 Market Street", "city": "Berlin",
            "postal_code": "10115", "country": "DE"},
        "payment_method": payment,
    });
    let sent = Instant::now();
    let answer =
        send(shop.client.post(format!("{}/api/orders", shop.url)).bearer_auth(&shop.buyers[token]).json(&body)).await;
    let answered = Instant::now();
    match answer {
        Ok((StatusCode::ACCEPTED, accepted)) => match accepted["order_id"].as_str() {
            Some(id) => {
                let _ = reports.send(Report::Placed { sent, answered });
                let order = InFlight { id: id.to_owned(), token, started, _permit: permit };
                let _ = pollers[index % pollers.len()].send(order);
            }
            None => {
                let _ = reports.send(Report::PlacementFailed { sent, error: "202 without an order_id".to_owned() });
            }
        },
        Ok((status, _)) => {
            let _ = reports.send(Report::PlacementFailed { sent, error: format!("HTTP {status}") });
        }
        Err(error) => {
            let kind = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else {
                "request"
            };
            let _ = reports.send(Report::PlacementFailed { sent, error: format!("transport: {kind}") });
        }
    }
}

/// Follows the orders it is handed until each is confirmed, rejected or timed out: one
/// GET per order per pass, one pass every `interval`.
async fn poller(
    shop: Arc<Shop>,
    mut receiver: mpsc::UnboundedReceiver<InFlight>,
    interval: Duration,
    timeout: Duration,
) -> PollerTally {
    let mut tally = PollerTally::default();
    let mut pending: Vec<InFlight> = Vec::new();
    let mut open = true;
    loop {
        if pending.is_empty() && open {
            match receiver.recv().await {
                Some(order) => pending.push(order),
                None => open = false,
            }
        }
        while open {
            match receiver.try_recv() {
                Ok(order) => pending.push(order),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if pending.is_empty() && !open {
            return tally;
        }
        tally.max_pending = tally.max_pending.max(pending.len());
        let mut index = 0;
        while index < pending.len() {
            let order = &pending[index];
            tally.polls += 1;
            let answer = send(
                shop.client.get(format!("{}/api/orders/{}", shop.url, order.id)).bearer_auth(&shop.buyers[order.token]),
            )
            .await;
            let seen = Instant::now();
            let settled = match answer {
                Ok((StatusCode::OK, body)) => match body["status"].as_str() {
                    Some("pending" | "stock_reserved" | "paid") => None,
                    Some("rejected" | "cancelled") => {
                        Some(Settled::Rejected { reason: body["reason"].as_str().unwrap_or("cancelled").to_owned() })
                    }
                    Some(_) => {
                        let window = shop_times(&body);
                        Some(Settled::Confirmed {
                            client: seen - order.started,
                            shop: window.and_then(|(placed, confirmed)| (confirmed - placed).to_std().ok()),
                            seen,
                            shop_window: window,
                        })
                    }
                    None => {
                        tally.errors += 1;
                        None
                    }
                },
                _ => {
                    tally.errors += 1;
                    None
                }
            };
            let settled = settled.or_else(|| (seen - order.started > timeout).then_some(Settled::TimedOut));
            match settled {
                Some(settled) => {
                    tally.settled.push(settled);
                    pending.swap_remove(index);
                }
                None => index += 1,
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(interval).await;
        }
    }
}

/// `at` of the order's `pending` and of its `confirmed` status.
fn shop_times(order: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let history = order["history"].as_array()?;
    let at = |status: &str| {
        history
            .iter()
            .find(|change| change["status"] == status)
            .and_then(|change| change["at"].as_str())
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&Utc))
    };
    Some((at("pending")?, at("confirmed")?))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn milliseconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}

fn summary(durations: &mut [Duration]) -> Value {
    durations.sort_unstable();
    json!({
        "n": durations.len(),
        "p50_ms": milliseconds(percentile(durations, 0.50)),
        "p90_ms": milliseconds(percentile(durations, 0.90)),
        "p99_ms": milliseconds(percentile(durations, 0.99)),
        "max_ms": milliseconds(durations.last().copied().unwrap_or_default()),
    })
}

impl Outcome {
    fn placed_per_second(&self) -> f64 {
        match (self.first_sent, self.last_accepted) {
            (Some(first), Some(last)) if last > first => self.placement.len() as f64 / (last - first).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Confirmed orders ÷ time from the first POST to the poll that saw the last one settled.
    fn confirmed_per_second(&self) -> f64 {
        match (self.first_sent, self.last_seen) {
            (Some(first), Some(last)) if last > first => {
                self.confirmed_client.len() as f64 / (last - first).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Confirmed orders ÷ time from the first `pending` to the last `confirmed`, by the shop's clock.
    fn shop_confirmed_per_second(&self) -> f64 {
        match (self.shop_first_placed, self.shop_last_confirmed) {
            (Some(first), Some(last)) if last > first => {
                self.confirmed_shop.len() as f64 / (last - first).to_std().unwrap_or_default().as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn report(mut self, options: &Options) {
        let mode = match options.rate {
            None => format!(
                "throughput: {} placers, at most {} orders in flight",
                options.concurrency,
                options.concurrency * options.window
            ),
            Some(rate) => format!("open loop at {rate} orders/s"),
        };
        let (placed, confirmed, shop_confirmed) =
            (self.placed_per_second(), self.confirmed_per_second(), self.shop_confirmed_per_second());
        let result = json!({
            "mode": if options.rate.is_some() { "rate" } else { "throughput" },
            "rate": options.rate,
            "orders": self.orders,
            "concurrency": options.concurrency,
            "window": options.window,
            "buyers": options.buyers,
            "products": options.products,
            "payment": if options.card { "card" } else { "wallet" },
            "poll_ms": options.poll.as_millis() as u64,
            "placed": self.placement.len(),
            "confirmed": self.confirmed_client.len(),
            "rejected": self.rejected,
            "placement_errors": self.placement_errors,
            "poll_errors": self.poll_errors,
            "timed_out": self.timed_out,
            "polls": self.polls,
            "max_in_flight_seen": self.max_in_flight,
            "placed_per_s": placed.round(),
            "confirmed_per_s": confirmed.round(),
            "shop_confirmed_per_s": shop_confirmed.round(),
            "placement": summary(&mut self.placement),
            "to_confirmed_client": summary(&mut self.confirmed_client),
            "to_confirmed_shop": summary(&mut self.confirmed_shop),
        });
        let line = |name: &str, value: &Value| {
            format!(
                "{name:<28} p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  (n = {})",
                value["p50_ms"].as_f64().unwrap_or_default(),
                value["p90_ms"].as_f64().unwrap_or_default(),
                value["p99_ms"].as_f64().unwrap_or_default(),
                value["max_ms"].as_f64().unwrap_or_default(),
                value["n"],
            )
        };
        println!("{mode}; {} orders, {} buyers, {} products", self.orders, options.buyers, options.products);
        println!("placed                       {placed:>8.0} orders/s");
        println!("confirmed (client)           {confirmed:>8.0} orders/s  (first POST → last confirmation seen)");
        println!("confirmed (shop clock)       {shop_confirmed:>8.0} orders/s  (first pending → last confirmed)");
        println!("{}", line("POST /api/orders", &result["placement"]));
        println!("{}", line("placement → confirmed, client", &result["to_confirmed_client"]));
        println!("{}", line("pending → confirmed, shop", &result["to_confirmed_shop"]));
        println!(
            "rejected {:?}; placement errors {:?}; poll errors {}; timed out {}; {} polls",
            self.rejected, self.placement_errors, self.poll_errors, self.timed_out, self.polls
        );
        println!("RESULT {result}");
    }
}
