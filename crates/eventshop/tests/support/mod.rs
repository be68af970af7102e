//! Starts the real `eventshop run` binary on port 0 and talks to it over HTTP, as a client
//! would.
//!
//! `TestShop::embedded()` runs it on SQLite in a fresh data directory with the in-process
//! bus. `TestShop::distributed()` runs it on a fresh PostgreSQL database and a fresh NATS
//! namespace; outside CI it skips (returns `None`) when either server is unreachable.

#![allow(dead_code, unused_macros)]

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// Declares each flow (an `async fn(&TestShop)` of the test file) as two tests: one on the
/// embedded deployment, one on PostgreSQL + NATS.
macro_rules! on_both_deployments {
    ($($flow:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $flow() {
                super::$flow(&$crate::support::TestShop::embedded().await).await;
            })*
        }
        mod distributed {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $flow() {
                if let Some(shop) = $crate::support::TestShop::distributed().await {
                    super::$flow(&shop).await;
                }
            })*
        }
    };
}

pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "customer-password";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestShop {
    pub base: String,
    pub client: Client,
    child: Child,
    /// The working directory; embedded shops keep their data in it.
    directory: tempfile::TempDir,
    /// A distributed shop's place among the few that may run at once.
    _permit: Option<tokio::sync::SemaphorePermit<'static>>,
}

impl TestShop {
    /// The embedded deployment: SQLite files in a new directory, the in-process bus.
    pub async fn embedded() -> TestShop {
        Self::start(&[]).await
    }

    /// Everything on a new PostgreSQL database and a new NATS namespace.
    pub async fn distributed() -> Option<TestShop> {
        // Each shop holds a few dozen PostgreSQL connections; more shops at once than this
        // would exhaust the server's max_connections.
        static AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let permit = AT_ONCE.acquire().await.expect("the semaphore is never closed");
        let database = fresh_database().await?;
        // Connecting first also sweeps away earlier runs' test namespaces.
        bus_nats::testing::connect(TEST_NAMESPACE_PREFIX).await?;
        let nats = bus_nats::testing::test_url();
        let namespace = bus_nats::testing::fresh_namespace(TEST_NAMESPACE_PREFIX);
        let namespace = namespace.as_str();
        let mut shop = Self::start(&["--store", &database, "--bus", &nats, "--namespace", namespace]).await;
        shop._permit = Some(permit);
        Some(shop)
    }

    async fn start(extra: &[&str]) -> TestShop {
        Self::start_embedded_in(tempfile::tempdir().expect("a temporary directory"), extra).await
    }

    /// The embedded shop on the data in `directory` (fresh, or left by an earlier shop).
    pub async fn start_embedded_in(directory: tempfile::TempDir, extra: &[&str]) -> TestShop {
        let path = directory.path().join("data").to_str().expect("a UTF-8 temporary path").to_owned();
        let mut arguments = vec!["--listen", "127.0.0.1:0", "--data-dir", &path];
        arguments.extend_from_slice(extra);
        Self::start_in(directory, &arguments, &[]).await
    }

    /// `eventshop run ARGUMENTS` in `directory` (its working directory), with `environment`
    /// added to the administrator's.
    pub async fn start_in(directory: tempfile::TempDir, arguments: &[&str], environment: &[(&str, &str)]) -> TestShop {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventshop"));
        // Only what the test says: no EVENTSHOP_* of the developer's shell.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("EVENTSHOP_")) {
            command.env_remove(name);
        }
        let mut child = command
            .arg("run")
            .args(arguments)
            .current_dir(directory.path())
            .env("EVENTSHOP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("EVENTSHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("EVENTSHOP_LOG", "warn")
            .envs(environment.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the eventshop binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(STARTUP_TIMEOUT, lines.next_line())
            .await
            .expect("eventshop printed its address in time")
            .expect("stdout is readable")
            .expect("eventshop printed its address before exiting");
        let base = first.strip_prefix("eventshop listening on ").expect("the address line").trim().to_owned();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TestShop { base, client: Client::new(), child, directory, _permit: None }
    }

    /// The directory the shop runs in (its working directory).
    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Stops the shop as an operator would (SIGTERM) and returns whether it exited with 0.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("a running child");
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits in time");
        exit.expect("exit status").success()
    }

    /// Kills the shop with SIGKILL, as a crash would, and hands back its directory.
    pub async fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().await.expect("SIGKILL");
        self.directory
    }

    pub async fn token(&self, email: &str, password: &str) -> Tokens {
        let response = self
            .request(Method::POST, "/oauth/token")
            .form(&[("grant_type", "password"), ("username", email), ("password", password)])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        Tokens {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn admin(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await.access
    }

    /// Registers a new customer with a unique email and logs in.
    pub async fn customer(&self, name: &str) -> (String, String) {
        let email = format!("{}-{}@shop.test", name.to_lowercase(), Uuid::now_v7().simple());
        let response = self
            .request(Method::POST, "/api/users")
            .json(&json!({"email": email, "password": PASSWORD, "name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
        let token = self.token(&email, PASSWORD).await.access;
        (email, token)
    }

    /// Creates a product as `admin` and answers its JSON.
    pub async fn product(&self, admin: &str, sku: &str, name: &str, price: i64, category: &str) -> Value {
        let body = json!({
            "sku": sku, "name": name, "description": format!("{name}, described."),
            "price": {"amount": price, "currency": "EUR"}, "category": category,
        });
        let (status, product) = send(self.request(Method::POST, "/api/products").bearer_auth(admin).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{product}");
        product
    }
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// Sends and answers the status and the JSON body (Null when there is none).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the shop answers");
    split(response).await
}

pub async fn split(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// Polls `probe` until it returns `Some`, for effects that cross services.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Test shops on NATS live in namespaces `it<16 hex digits>`.
const TEST_NAMESPACE_PREFIX: &str = "it";

/// A new, empty database on the test PostgreSQL server, as a URL.
async fn fresh_database() -> Option<String> {
    use sqlx::Connection;
    let url = store_postgres::testing::test_database_url().await?;
    let name = format!("eventshop_it_{}", Uuid::now_v7().simple());
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("the test database answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await.expect("CREATE DATABASE");
    let (server, _) = url.rsplit_once('/').expect("a database URL");
    Some(format!("{server}/{name}"))
}
