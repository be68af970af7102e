//! The synchronous baseline of the checkout saga: the same checkout done in ONE database
//! transaction in one process, so that `saga-bench`'s figures can be read against what the
//! plain design achieves on the same machine.
//!
//! ```sh
//! sync-checkout [--mode http|direct|serve] [--orders 5000] [--concurrency 16] [--buyers 32]
//!     [--products 8] [--warmup 200] [--db PATH] [--listen ADDR]
//! ```
//!
//! One SQLite file (WAL, `synchronous = FULL`, one writer connection and a pool of readers:
//! how `store-sqlite` opens each of its files) with plain tables: `products` (price, stock),
//! `wallets` (balance), `orders` and `order_lines`, `wallet_transactions` and `shipments`.
//! `POST /api/orders` `{user_id, items: [{product_id, quantity}]}` runs one `BEGIN
//! IMMEDIATE` transaction that reads every line's stock and the buyer's balance, and then
//! either records the order as rejected (`out_of_stock`, `payment_declined`) or decrements
//! the stock, debits the wallet, writes the capture to the ledger, inserts the order, its
//! lines and its shipment, and commits: the saga's reservation, capture, confirmation,
//! stock commit and shipment, at once. It answers 201 with the final status, so an order
//! is settled when its request returns: no 202, no polling.
//!
//! What it leaves out, on purpose, as the monolith would: events and their history, the
//! bus, per-service databases, idempotency keys, authentication (the buyer is named in the
//! body), problem+json validation, read models.
//!
//! Modes, with the saga-bench's load shape (`--concurrency` buyers placing back to back,
//! each order one unit of one product, products and buyers by round robin, paid from a
//! wallet funded at setup):
//! - `http` (default): serves on 127.0.0.1 (a free port) in this process and drives itself
//!   over loopback HTTP with reqwest, like saga-bench drives the shop;
//! - `direct`: calls the transaction from `--concurrency` tasks, no HTTP: the floor;
//! - `serve`: only the server, on `--listen` (default 127.0.0.1:8091), until killed.
//!
//! The last line of output is `RESULT {json}` for scripts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use uuid::Uuid;

const PRICE: i64 = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY, price INTEGER NOT NULL CHECK (price >= 0), stock INTEGER NOT NULL CHECK (stock >= 0));
CREATE TABLE IF NOT EXISTS wallets (
    user_id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0));
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    total INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id), product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
    unit_price INTEGER NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE TABLE IF NOT EXISTS wallet_transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
    order_id TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shipments (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL UNIQUE REFERENCES orders (id), status TEXT NOT NULL);
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    Direct,
    Serve,
}

#[derive(Debug, Clone)]
struct Options {
    mode: Mode,
    orders: usize,
    concurrency: usize,
    buyers: usize,
    products: usize,
    warmup: usize,
    db: Option<String>,
    listen: String,
}

const USAGE: &str = "usage: sync-checkout [--mode http|direct|serve] [--orders N] [--concurrency C] [--buyers B] \
[--products P] [--warmup K] [--db PATH] [--listen ADDR]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        mode: Mode::Http,
        orders: 5_000,
        concurrency: 16,
        buyers: 32,
        products: 8,
        warmup: 200,
        db: None,
        listen: "127.0.0.1:8091".to_owned(),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = arguments.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |value: &str| value.parse::<usize>().map_err(|_| format!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--mode" => {
                options.mode = match value.as_str() {
                    "http" => Mode::Http,
                    "direct" => Mode::Direct,
                    "serve" => Mode::Serve,
                    other => return Err(format!("--mode: http, direct or serve, not {other}")),
                }
            }
            "--orders" => options.orders = number(&value)?,
            "--concurrency" => options.concurrency = number(&value)?.max(1),
            "--buyers" => options.buyers = number(&value)?.max(1),
            "--products" => options.products = number(&value)?.max(1),
            "--warmup" => options.warmup = number(&value)?,
            "--db" => options.db = Some(value),
            "--listen" => options.listen = value,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

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
        eprintln!("sync-checkout: {error}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), Failure> {
    // A file of our own unless told otherwise, removed at the end with its WAL.
    let (path, temporary) = match &options.db {
        Some(path) => (path.clone(), false),
        None => {
            (std::env::temp_dir().join(format!("sync-checkout-{}.sqlite", Uuid::now_v7())).display().to_string(), true)
        }
    };
    let shop = Shop::open(&path).await?;
    let total = options.orders + options.warmup;
    shop.seed(options.products, options.buyers, total).await?;
    let outcome = match options.mode {
        Mode::Serve => {
            let listener = tokio::net::TcpListener::bind(&options.listen).await?;
            println!(
                "sync-checkout listening on http://{} (POST /api/orders; products 1..={}, buyers 1..={})",
                listener.local_addr()?,
                options.products,
                options.buyers
            );
            axum::serve(listener, router(shop.clone())).await?;
            return Ok(());
        }
        Mode::Http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let server = tokio::spawn(axum::serve(listener, router(shop.clone())).into_future());
            let client = reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?;
            let driver = Driver::Http { client, url };
            if options.warmup > 0 {
                measure(&driver, &options, options.warmup, 0).await;
            }
            let outcome = measure(&driver, &options, options.orders, options.warmup).await;
            server.abort();
            outcome
        }
        Mode::Direct => {
            let driver = Driver::Direct(shop.clone());
            if options.warmup > 0 {
                measure(&driver, &options, options.warmup, 0).await;
            }
            measure(&driver, &options, options.orders, options.warmup).await
        }
    };
    let stock_sold = shop.check_invariants(options.products, options.buyers, total).await?;
    outcome.report(&options, stock_sold);
    shop.writer.close().await;
    shop.reader.close().await;
    if temporary {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    Ok(())
}

/// The database: one writer connection (SQLite has one writer; this is how the store
/// opens its files too) and a few readers.
#[derive(Debug, Clone)]
struct Shop {
    writer: SqlitePool,
    reader: SqlitePool,
}

#[derive(Debug, Deserialize)]
struct PlaceOrder {
    user_id: i64,
    items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct OrderItem {
    product_id: i64,
    quantity: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: Uuid,
    status: String,
    reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Shop {
    async fn open(path: &str) -> Result<Shop, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::raw_sql(SCHEMA).execute(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Shop { writer, reader })
    }

    /// Products with twice the units `orders` need, buyers with twice the money.
    async fn seed(&self, products: usize, buyers: usize, orders: usize) -> Result<(), sqlx::Error> {
        let stock = (orders / products + 1) as i64 * 2;
        let balance = (orders / buyers + 1) as i64 * PRICE * 2;
        let mut transaction = self.writer.begin().await?;
        for id in 1..=products as i64 {
            sqlx::query("INSERT OR REPLACE INTO products (id, price, stock) VALUES (?, ?, ?)")
                .bind(id)
                .bind(PRICE)
                .bind(stock)
                .execute(&mut *transaction)
                .await?;
        }
        for id in 1..=buyers as i64 {
            sqlx::query("INSERT OR REPLACE INTO wallets (user_id, balance) VALUES (?, ?)")
                .bind(id)
                .bind(balance)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await
    }

    /// The whole checkout in one transaction; answers the order's final status.
    async fn checkout(&self, request: &PlaceOrder) -> Result<OrderPlaced, CheckoutError> {
        if request.items.is_empty() || request.items.len() > 50 {
            return Err(CheckoutError::Invalid("an order has 1 to 50 lines".to_owned()));
        }
        if let Some(item) = request.items.iter().find(|item| !(1..=1_000_000).contains(&item.quantity)) {
            return Err(CheckoutError::Invalid(format!("quantity {} of product {}", item.quantity, item.product_id)));
        }
        let order_id = Uuid::now_v7();
        let now = chrono::Utc::now().to_rfc3339();
        let mut transaction = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut total = 0i64;
        let mut priced = Vec::with_capacity(request.items.len());
        let mut reason = None;
        for item in &request.items {
            let row: Option<(i64, i64)> = sqlx::query_as("SELECT price, stock FROM products WHERE id = ?")
                .bind(item.product_id)
                .fetch_optional(&mut *transaction)
                .await?;
            let Some((price, stock)) = row else {
                return Err(CheckoutError::Invalid(format!("no product {}", item.product_id)));
            };
            if stock < item.quantity {
                reason = Some("out_of_stock");
            }
            total += price * item.quantity;
            priced.push((*item, price));
        }
        if reason.is_none() {
            let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = ?")
                .bind(request.user_id)
                .fetch_optional(&mut *transaction)
                .await?;
            if balance.unwrap_or(0) < total {
                reason = Some("payment_declined");
            }
        }
        let status = if reason.is_some() { "rejected" } else { "confirmed" };
        sqlx::query("INSERT INTO orders (id, user_id, status, reason, total, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(order_id.to_string())
            .bind(request.user_id)
            .bind(status)
            .bind(reason)
            .bind(total)
            .bind(&now)
            .execute(&mut *transaction)
            .await?;
        for (item, price) in &priced {
            sqlx::query("INSERT INTO order_lines (order_id, product_id, quantity, unit_price) VALUES (?, ?, ?, ?)")
                .bind(order_id.to_string())
                .bind(item.product_id)
                .bind(item.quantity)
                .bind(price)
                .execute(&mut *transaction)
                .await?;
        }
        if reason.is_none() {
            for (item, _) in &priced {
                sqlx::query("UPDATE products SET stock = stock - ? WHERE id = ?")
                    .bind(item.quantity)
                    .bind(item.product_id)
                    .execute(&mut *transaction)
                    .await?;
            }
            sqlx::query("UPDATE wallets SET balance = balance - ? WHERE user_id = ?")
                .bind(total)
                .bind(request.user_id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(
                "INSERT INTO wallet_transactions (user_id, kind, amount, order_id, at) VALUES (?, 'capture', ?, ?, ?)",
            )
            .bind(request.user_id)
            .bind(total)
            .bind(order_id.to_string())
            .bind(&now)
            .execute(&mut *transaction)
            .await?;
            sqlx::query("INSERT INTO shipments (id, order_id, status) VALUES (?, ?, 'pending')")
                .bind(Uuid::now_v7().to_string())
                .bind(order_id.to_string())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(OrderPlaced { order_id, status: status.to_owned(), reason: reason.map(str::to_owned) })
    }

    /// No oversell, no negative balance, money conserved; answers the units sold.
    async fn check_invariants(&self, products: usize, buyers: usize, orders: usize) -> Result<i64, Failure> {
        let stocked = (orders / products + 1) as i64 * 2 * products as i64;
        let funded = (orders / buyers + 1) as i64 * PRICE * 2 * buyers as i64;
        let left: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(stock), 0) FROM products").fetch_one(&self.reader).await?;
        let sold: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(quantity), 0) FROM order_lines JOIN orders ON orders.id = order_id \
             WHERE status = 'confirmed'",
        )
        .fetch_one(&self.reader)
        .await?;
        let balance: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(balance), 0) FROM wallets").fetch_one(&self.reader).await?;
        let captured: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions")
            .fetch_one(&self.reader)
            .await?;
        if left + sold != stocked || balance + captured != funded {
            return Err(format!(
                "invariants broken: stock {left} + sold {sold} != {stocked}, or balance {balance} + captured {captured} != {funded}"
            )
            .into());
        }
        Ok(sold)
    }
}

fn router(shop: Shop) -> Router {
    Router::new().route("/api/orders", post(place_order)).with_state(shop)
}

async fn place_order(
    State(shop): State<Shop>,
    Json(request): Json<PlaceOrder>,
) -> Result<(StatusCode, Json<OrderPlaced>), (StatusCode, String)> {
    match shop.checkout(&request).await {
        Ok(placed) => Ok((StatusCode::CREATED, Json(placed))),
        Err(CheckoutError::Invalid(message)) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
        Err(CheckoutError::Database(error)) => {
            eprintln!("checkout failed: {error}");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned()))
        }
    }
}

/// How the buyers reach the checkout.
#[derive(Debug)]
enum Driver {
    Http { client: reqwest::Client, url: String },
    Direct(Shop),
}

impl Driver {
    async fn place(&self, request: PlaceOrder) -> Result<OrderPlaced, String> {
        match self {
            Driver::Direct(shop) => shop.checkout(&request).await.map_err(|error| error.to_string()),
            Driver::Http { client, url } => {
                let body = json!({
                    "user_id": request.user_id,
                    "items": request.items.iter().map(|item| json!({"product_id": item.product_id, "quantity": item.quantity})).collect::<Vec<_>>(),
                });
                let response = client
                    .post(format!("{url}/api/orders"))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|error| format!("transport: {error}"))?;
                let status = response.status();
                if status != StatusCode::CREATED {
                    return Err(format!("HTTP {status}"));
                }
                response.json::<OrderPlaced>().await.map_err(|error| format!("body: {error}"))
            }
        }
    }
}

#[derive(Debug)]
struct Outcome {
    orders: usize,
    elapsed: Duration,
    latency: Histogram<u64>,
    confirmed: usize,
    rejected: usize,
    errors: Vec<String>,
}

/// `orders` orders by `--concurrency` buyers back to back; order `offset + i` picks its
/// product and buyer by round robin.
async fn measure(driver: &Driver, options: &Options, orders: usize, offset: usize) -> Outcome {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let buyers = (0..options.concurrency).map(|_| async {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        let (mut confirmed, mut rejected, mut errors) = (0, 0, Vec::new());
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= orders {
                break;
            }
            let global = offset + index;
            let request = PlaceOrder {
                user_id: (global % options.buyers) as i64 + 1,
                items: vec![OrderItem { product_id: (global % options.products) as i64 + 1, quantity: 1 }],
            };
            let sent = Instant::now();
            let answer = driver.place(request).await;
            latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
            match answer {
                Ok(placed) if placed.status == "confirmed" => confirmed += 1,
                Ok(_) => rejected += 1,
                Err(error) => errors.push(error),
            }
        }
        (latency, confirmed, rejected, errors)
    });
    // Joined on this task, not spawned: the buyers share the driver by reference.
    let results = futures::future::join_all(buyers).await;
    let elapsed = started.elapsed();
    let mut outcome = Outcome {
        orders,
        elapsed,
        latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        confirmed: 0,
        rejected: 0,
        errors: Vec::new(),
    };
    for (latency, confirmed, rejected, errors) in results {
        let _ = outcome.latency.add(&latency);
        outcome.confirmed += confirmed;
        outcome.rejected += rejected;
        outcome.errors.extend(errors);
    }
    outcome
}

fn milliseconds(microseconds: u64) -> f64 {
    (microseconds as f64 / 100.0).round() / 10.0
}

impl Outcome {
    fn report(&self, options: &Options, sold: i64) {
        let per_second = self.confirmed as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON);
        let quantile = |q: f64| milliseconds(self.latency.value_at_quantile(q));
        let mode = match options.mode {
            Mode::Http => "http",
            Mode::Direct => "direct",
            Mode::Serve => "serve",
        };
        println!(
            "{mode}: {} orders by {} concurrent buyers ({} buyers, {} products) in {:.2} s",
            self.orders,
            options.concurrency,
            options.buyers,
            options.products,
            self.elapsed.as_secs_f64()
        );
        println!(
            "confirmed                    {per_second:>8.0} orders/s  ({} confirmed, {} rejected)",
            self.confirmed, self.rejected
        );
        println!(
            "placement → confirmed        p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            quantile(0.50),
            quantile(0.90),
            quantile(0.99),
            milliseconds(self.latency.max())
        );
        if !self.errors.is_empty() {
            println!("errors: {} (first: {})", self.errors.len(), self.errors[0]);
        }
        println!("invariants hold: {sold} units sold in all, stock and money conserved");
        let result = json!({
            "mode": mode,
            "orders": self.orders,
            "concurrency": options.concurrency,
            "buyers": options.buyers,
            "products": options.products,
            "confirmed": self.confirmed,
            "rejected": self.rejected,
            "errors": self.errors.len(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "confirmed_per_s": per_second.round(),
            "latency_ms": {
                "p50": quantile(0.50), "p90": quantile(0.90), "p99": quantile(0.99),
                "max": milliseconds(self.latency.max()),
            },
        });
        println!("RESULT {result}");
    }
}
