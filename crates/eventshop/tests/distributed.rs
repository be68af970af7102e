//! The distributed deployment (SPEC §8) as real processes: `eventshop serve` instances and
//! `eventshop gateway` processes on a fresh PostgreSQL database and a fresh NATS
//! namespace. Outside CI these tests skip when either server is unreachable; in CI
//! (`CI=true`) they fail.
//!
//! Each serve process of every service holds 2 PostgreSQL connections per service (20),
//! and a cluster runs two of them; the clusters of this file take turns so that, with the
//! other test files' shops, the server's 100 connections suffice.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const ADMIN_EMAIL: &str = "admin@shop.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const PASSWORD: &str = "customer-password";
/// Shared by every gateway of a cluster, as a deployment must.
const JWT_SECRET: &str = "distributed-test-secret-0123456789abcdef";
const PRICE: i64 = 1_000;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// PostgreSQL connections per service in each serve process.
const CONNECTIONS: u32 = 2;
/// Connections the clusters of this file may hold at once.
static CONNECTION_BUDGET: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(45);
/// Test namespaces on NATS: `dt<16 hex digits>`.
const NAMESPACE_PREFIX: &str = "dt";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventshop"));
    // Only what the test says: no EVENTSHOP_* of the developer's shell.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("EVENTSHOP_")) {
        command.env_remove(name);
    }
    command.env("EVENTSHOP_LOG", "warn").stderr(Stdio::inherit()).kill_on_drop(true);
    command
}

/// A running `eventshop serve` or `eventshop gateway`.
struct Process {
    child: Child,
    /// The first line it printed on stdout.
    first_line: String,
}

impl Process {
    async fn start(mut command: Command) -> Process {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("the eventshop binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first_line = tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line())
            .await
            .expect("eventshop started in time")
            .expect("stdout is readable")
            .expect("eventshop printed its first line before exiting");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Process { child, first_line }
    }

    /// SIGTERM, and whether it exited with 0 in time.
    async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("a running child");
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits in time");
        exit.expect("exit status").success()
    }

    /// SIGKILL, as a crash would.
    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }
}

/// A fresh database and NATS namespace, and the processes started on them.
struct Cluster {
    database: String,
    nats: String,
    namespace: String,
    client: Client,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Cluster {
    /// None (skipping) outside CI when PostgreSQL or NATS is not reachable. `connections`
    /// is what the test's serve processes will hold in all.
    async fn new(connections: u32) -> Option<Cluster> {
        let permit = CONNECTION_BUDGET.acquire_many(connections).await.expect("the semaphore is never closed");
        let database = fresh_database().await?;
        bus_nats::testing::connect(NAMESPACE_PREFIX).await?;
        Some(Cluster {
            database,
            nats: bus_nats::testing::test_url(),
            namespace: bus_nats::testing::fresh_namespace(NAMESPACE_PREFIX).as_str().to_owned(),
            client: Client::new(),
            _permit: permit,
        })
    }

    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = binary();
        command.args(arguments).args(["--bus", &self.nats, "--namespace", &self.namespace]);
        command
    }

    async fn serve(&self, services: &[&str]) -> Process {
        let mut command = self.command(&["serve"]);
        command
            .args(services)
            .args(["--store", &self.database, "--postgres-connections", &CONNECTIONS.to_string()])
            .env("EVENTSHOP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("EVENTSHOP_ADMIN_PASSWORD", ADMIN_PASSWORD);
        let process = Process::start(command).await;
        assert!(process.first_line.starts_with("eventshop serving "), "{}", process.first_line);
        process
    }

    /// A gateway and its base URL.
    async fn gateway(&self) -> (Process, String) {
        let mut command = self.command(&["gateway", "--listen", "127.0.0.1:0"]);
        command.env("EVENTSHOP_JWT_SECRET", JWT_SECRET);
        let process = Process::start(command).await;
        let base = process.first_line.strip_prefix("eventshop listening on ").expect("the address line").to_owned();
        (process, base)
    }

    /// `eventshop config ARGUMENTS` on this cluster: its success and its stdout.
    async fn config(&self, arguments: &[&str]) -> (bool, String) {
        // The subcommand's own arguments come first, then --bus and --namespace.
        let mut command = binary();
        command.arg("config").args(arguments).args(["--bus", &self.nats, "--namespace", &self.namespace]);
        let output = command.stdout(Stdio::piped()).output().await.expect("eventshop config runs");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The namespace's service instances, as `$SRV.INFO` / `$SRV.STATS` see them.
    async fn instances(&self) -> Vec<eventshop_core::bus::ServiceInstance> {
        let client = bus_nats::testing::connect(NAMESPACE_PREFIX).await.expect("NATS answered before");
        let namespace = bus_nats::Namespace::new(self.namespace.clone()).expect("a valid namespace");
        let bus = bus_nats::NatsBus::from_client(client, namespace);
        bus_nats::discovery::discover(&bus).await.expect("discovery")
    }
}

/// A gateway's client side: the shop's HTTP API through one base URL.
struct Shop<'a> {
    base: &'a str,
    client: &'a Client,
}

impl Shop<'_> {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn token(&self, email: &str, password: &str) -> String {
        let form = [("grant_type", "password"), ("username", email), ("password", password)];
        let (status, body) = send(self.request(Method::POST, "/oauth/token").form(&form)).await;
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    async fn admin(&self) -> String {
        // The first administrator is created by the serve processes as they start.
        eventually("the first administrator", Duration::from_secs(15), || async {
            let form = [("grant_type", "password"), ("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
            let (status, body) = send(self.request(Method::POST, "/oauth/token").form(&form)).await;
            (status == StatusCode::OK).then(|| body["access_token"].as_str().expect("a token").to_owned())
        })
        .await
    }

    async fn customer(&self, name: &str) -> String {
        let email = format!("{}-{}@shop.test", name.to_lowercase(), Uuid::now_v7().simple());
        let body = json!({"email": email, "password": PASSWORD, "name": name});
        let (status, created) = send(self.request(Method::POST, "/api/users").json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        self.token(&email, PASSWORD).await
    }

    /// A product at 10.00 EUR with `stock` units; answers its id.
    async fn stocked_product(&self, admin: &str, stock: i64) -> String {
        let body = json!({
            "sku": format!("D-{}", Uuid::now_v7().simple()), "name": "Cluster Mug", "description": "A mug.",
            "price": {"amount": PRICE, "currency": "EUR"}, "category": "kitchen",
        });
        let (status, product) = send(self.request(Method::POST, "/api/products").bearer_auth(admin).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{product}");
        let id = product["id"].as_str().expect("an id").to_owned();
        let path = format!("/api/inventory/{id}/restock");
        let (status, body) =
            send(self.request(Method::POST, &path).bearer_auth(admin).json(&json!({"quantity": stock}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    async fn deposit(&self, token: &str, amount: i64) {
        let body = json!({"amount": {"amount": amount, "currency": "EUR"}});
        let (status, body) =
            send(self.request(Method::POST, "/api/wallet/deposits").bearer_auth(token).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn balance(&self, token: &str) -> i64 {
        let (_, wallet) = send(self.request(Method::GET, "/api/wallet").bearer_auth(token)).await;
        wallet["balance"]["amount"].as_i64().expect("a balance")
    }

    async fn stock(&self, admin: &str, product: &str) -> Value {
        send(self.request(Method::GET, &format!("/api/inventory/{product}")).bearer_auth(admin)).await.1
    }

    /// Places an order paid from the wallet, retrying with the same Idempotency-Key until
    /// it is accepted (an instance may die with the request in hand); answers its id.
    async fn place(&self, token: &str, product: &str, quantity: i64) -> String {
        let body = json!({
            "items": [{"product_id": product, "quantity": quantity}],
            "shipping_address": {"name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "payment_method": {"type": "wallet"},
        });
        let key = Uuid::now_v7().to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let request = self
                .request(Method::POST, "/api/orders")
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .json(&body);
            let (status, accepted) = send(request).await;
            if status == StatusCode::ACCEPTED {
                return accepted["order_id"].as_str().expect("an order id").to_owned();
            }
            assert!(status.is_server_error(), "placing an order: {status} {accepted}");
            assert!(tokio::time::Instant::now() < deadline, "the order was never accepted: {status} {accepted}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the order reaches one of `statuses`, and answers it.
    async fn settled(&self, token: &str, order: &str, statuses: &[&str], within: Duration) -> Value {
        eventually(&format!("order {order} to reach {statuses:?}"), within, || async {
            let (_, order) = send(self.request(Method::GET, &format!("/api/orders/{order}")).bearer_auth(token)).await;
            statuses.contains(&order["status"].as_str().unwrap_or("")).then_some(order)
        })
        .await
    }
}

/// Sends and answers the status and the JSON body (Null when there is none); a request
/// that gets no answer at all counts as a 502.
async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let Ok(response) = request.send().await else {
        return (StatusCode::BAD_GATEWAY, Value::Null);
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// Polls `probe` until it returns `Some`, for effects that cross services.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new, empty database on the test PostgreSQL server, as a URL.
async fn fresh_database() -> Option<String> {
    use sqlx::Connection;
    let url = store_postgres::testing::test_database_url().await?;
    let name = format!("eventshop_dt_{}", Uuid::now_v7().simple());
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("the test database answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await.expect("CREATE DATABASE");
    let (server, _) = url.rsplit_once('/').expect("a database URL");
    Some(format!("{server}/{name}"))
}

/// Connections of a serve process running every service.
const ALL_SERVICES: u32 = 10 * CONNECTIONS;

/// Two instances of every service (started at once, so their migrations race) and two
/// gateways: the checkout works through either gateway, both instances of orders and
/// inventory take requests, and SIGTERM stops every process with 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_checks_out_through_either_gateway_and_spreads_the_load() {
    let Some(cluster) = Cluster::new(2 * ALL_SERVICES).await else { return };
    let servers = join_all([cluster.serve(&["all"]), cluster.serve(&["all"])]).await;
    let gateways = join_all([cluster.gateway(), cluster.gateway()]).await;
    let shops: Vec<Shop> = gateways.iter().map(|(_, base)| Shop { base, client: &cluster.client }).collect();

    let admin = shops[0].admin().await;
    let mut first_round = None;
    for (index, shop) in shops.iter().enumerate() {
        let other = &shops[1 - index];
        // Made through one gateway, used through the other: the tokens and the data are shared.
        let product = shop.stocked_product(&admin, 20).await;
        let buyer = shop.customer("Ann").await;
        other.deposit(&buyer, 50_000).await;
        let orders = join_all((0..6).map(|_| other.place(&buyer, &product, 1))).await;
        first_round.get_or_insert_with(|| (product.clone(), buyer.clone(), orders[0].clone()));
        for order in &orders {
            let order = shop.settled(&buyer, order, &["confirmed", "rejected"], Duration::from_secs(20)).await;
            assert_eq!(order["status"], "confirmed", "{order}");
        }
        assert_eq!(other.balance(&buyer).await, 50_000 - 6 * PRICE);
        let levels = eventually("the stock to be committed", Duration::from_secs(15), || async {
            let levels = shop.stock(&admin, &product).await;
            (levels["on_hand"] == 14 && levels["reserved"] == 0).then_some(levels)
        })
        .await;
        assert_eq!(levels["available"], 14);
    }

    // Both instances of orders and of inventory answered some of those requests. A queue
    // group picks an instance at random, so a handful of requests could all land on one:
    // enough reads of each make that vanishingly unlikely (2 × 0.5^32).
    let (product, buyer, order) = first_round.expect("two rounds ran");
    for _ in 0..32 {
        shops[0].stock(&admin, &product).await;
        shops[1].settled(&buyer, &order, &["confirmed"], Duration::from_secs(5)).await;
    }
    let instances = cluster.instances().await;
    for service in ["orders", "inventory"] {
        let counts: Vec<u64> = instances
            .iter()
            .filter(|instance| instance.name == service)
            .map(|instance| instance.requests.values().sum())
            .collect();
        assert_eq!(counts.len(), 2, "two instances of {service}: {instances:?}");
        assert!(counts.iter().all(|count| *count > 0), "both instances of {service} take requests: {counts:?}");
    }

    for (gateway, _) in gateways {
        assert!(gateway.terminate().await, "a gateway exits with 0 on SIGTERM");
    }
    for server in servers {
        assert!(server.terminate().await, "a serve process exits with 0 on SIGTERM");
    }
}

/// One instance of every service is killed (SIGKILL) while orders flow: every accepted
/// order still ends confirmed or rejected, and stock and money add up exactly.
#[tokio::test(flavor = "multi_thread")]
async fn the_living_instances_finish_the_work_of_a_killed_one() {
    const BUYERS: usize = 4;
    const ORDERS_EACH: usize = 8;
    const UNITS: i64 = 1_000;
    const DEPOSIT: i64 = 100_000;
    let Some(cluster) = Cluster::new(2 * ALL_SERVICES).await else { return };
    let mut servers = join_all([cluster.serve(&["all"]), cluster.serve(&["all"])]).await;
    let gateways = join_all([cluster.gateway(), cluster.gateway()]).await;
    let shops: Vec<Shop> = gateways.iter().map(|(_, base)| Shop { base, client: &cluster.client }).collect();
    let admin = shops[0].admin().await;
    let product = shops[0].stocked_product(&admin, UNITS).await;
    let shops = &shops;
    let buyers = join_all((0..BUYERS).map(|index| async move {
        let shop = &shops[index % 2];
        let token = shop.customer("Buyer").await;
        shop.deposit(&token, DEPOSIT).await;
        token
    }))
    .await;

    // Each buyer places orders one after another through alternating gateways; one
    // instance of every service dies once a few orders are accepted.
    let accepted = AtomicUsize::new(0);
    let accepted = &accepted;
    let placing = join_all(buyers.iter().enumerate().map(|(index, token)| {
        let product = &product;
        async move {
            let mut placed = Vec::new();
            for order in 0..ORDERS_EACH {
                let shop = &shops[(index + order) % 2];
                placed.push((token.clone(), shop.place(token, product, 1).await));
                accepted.fetch_add(1, Ordering::SeqCst);
            }
            placed
        }
    }));
    let victim = servers.remove(0);
    let kill = async move {
        while accepted.load(Ordering::SeqCst) < BUYERS + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        victim.kill().await;
        accepted.load(Ordering::SeqCst)
    };
    let (placed, accepted_before_the_kill) = tokio::join!(placing, kill);
    assert!(accepted_before_the_kill < BUYERS * ORDERS_EACH, "the kill came while orders were being placed");
    let placed: Vec<(String, String)> = placed.into_iter().flatten().collect();
    assert_eq!(placed.len(), BUYERS * ORDERS_EACH);

    let mut confirmed = 0;
    for (token, order) in &placed {
        let order = shops[0].settled(token, order, &["confirmed", "rejected"], Duration::from_secs(40)).await;
        if order["status"] == "confirmed" {
            confirmed += 1;
        }
    }
    eprintln!(
        "{confirmed} of {} orders confirmed; {accepted_before_the_kill} were accepted before the kill",
        placed.len()
    );
    let taken: i64 =
        join_all(buyers.iter().map(|token| shops[1].balance(token))).await.iter().map(|b| DEPOSIT - b).sum();
    assert_eq!(taken, confirmed * PRICE, "money taken = units sold × price");
    let levels = eventually("every reservation settled", Duration::from_secs(20), || async {
        let levels = shops[1].stock(&admin, &product).await;
        (levels["reserved"] == 0 && levels["on_hand"] == UNITS - confirmed).then_some(levels)
    })
    .await;
    assert_eq!(levels["available"].as_i64(), Some(UNITS - confirmed));
}

/// `eventshop config set` changes what running orders instances do: with payments not
/// running, an order waits for its payment until the timeout set live rejects it.
#[tokio::test(flavor = "multi_thread")]
async fn a_setting_changed_with_config_set_applies_to_running_instances() {
    let without_payments = ["identity", "catalog", "inventory", "orders"];
    let Some(cluster) = Cluster::new(2 * 4 * CONNECTIONS).await else { return };
    let servers = join_all([cluster.serve(&without_payments), cluster.serve(&without_payments)]).await;
    let (gateway, base) = cluster.gateway().await;
    let shop = Shop { base: &base, client: &cluster.client };

    let (ok, output) = cluster.config(&["get", "orders.payment_timeout"]).await;
    assert!(ok && output.contains("not set"), "{output}");
    let (ok, _) = cluster.config(&["set", "orders.payment_timeout", "soon"]).await;
    assert!(!ok, "a value that is no duration is refused");
    let (ok, _) = cluster.config(&["set", "orders.payment_timeot", "10s"]).await;
    assert!(!ok, "an unknown setting is refused");
    let (ok, _) = cluster.config(&["set", "orders.payment_timeout", "10s"]).await;
    assert!(ok);
    let (ok, output) = cluster.config(&["get", "orders.payment_timeout"]).await;
    assert_eq!((ok, output.as_str()), (true, "10s"));

    let admin = shop.admin().await;
    let product = shop.stocked_product(&admin, 5).await;
    let buyer = shop.customer("Bo").await;
    let order = shop.place(&buyer, &product, 1).await;
    // Under the default 30 s it would still wait; the live 1 s rejects it at once.
    let (ok, _) = cluster.config(&["set", "orders.payment_timeout", "1s"]).await;
    assert!(ok);
    let order = shop.settled(&buyer, &order, &["rejected", "confirmed"], Duration::from_secs(15)).await;
    assert_eq!((order["status"].as_str(), order["reason"].as_str()), (Some("rejected"), Some("timeout")), "{order}");

    assert!(gateway.terminate().await);
    for server in servers {
        assert!(server.terminate().await);
    }
}

/// What a distributed process refuses, before it touches any server.
#[tokio::test]
async fn serve_and_gateway_refuse_what_cannot_be_shared() {
    let run = |arguments: &'static [&'static str], secret: Option<&'static str>| async move {
        let mut command = binary();
        command.args(arguments).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(secret) = secret {
            command.env("EVENTSHOP_JWT_SECRET", secret);
        }
        let output = command.output().await.expect("eventshop runs");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, error) = run(&["serve", "orders", "--bus", "nats://127.0.0.1:1"], None).await;
    assert!(!ok && error.contains("--store postgres://"), "{error}");
    let (ok, error) =
        run(&["serve", "orders", "--store", "postgres://127.0.0.1:1/x", "--bus", "in-process"], None).await;
    assert!(!ok && error.contains("--bus nats://"), "{error}");
    let (ok, error) = run(&["serve", "ordrs", "--store", "postgres://127.0.0.1:1/x"], None).await;
    assert!(!ok && error.contains("unknown service \"ordrs\""), "{error}");
    let (ok, error) = run(&["gateway", "--bus", "nats://127.0.0.1:1"], None).await;
    assert!(!ok && error.contains("EVENTSHOP_JWT_SECRET"), "{error}");
    let (ok, error) = run(&["gateway", "--bus", "nats://127.0.0.1:1"], Some("short")).await;
    assert!(!ok && error.contains("at least 32"), "{error}");
    let (ok, error) =
        run(&["config", "set", "orders.payment_timeout", "soon", "--bus", "nats://127.0.0.1:1"], None).await;
    assert!(!ok && error.contains("duration"), "{error}");
}
