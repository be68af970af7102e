//! Live settings in the NATS key-value bucket: one instance changes a setting and another
//! sees it without a restart, even across a restart of the server.
//!
//! Needs NATS with JetStream at `EVENTSHOP_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`); without it the tests skip, or fail under `CI=true`. The
//! restart test runs its own `nats-server` (from `PATH`) on a free port.

use std::time::Duration;

use bus_nats::config::NatsSettings;
use bus_nats::{Namespace, NatsBus};
use eventshop_core::settings::Settings;
use eventshop_core::testing::skip_unless_ci;
use tokio::sync::watch;

/// Long enough for any change to arrive, even after a server restart (a broken watch is
/// noticed by its missed heartbeats, within about ten seconds); a liveness bound.
const PATIENCE: Duration = Duration::from_secs(30);

fn fresh_namespace() -> Namespace {
    bus_nats::testing::fresh_namespace("t")
}

/// Two instances of one fresh namespace on the shared server.
async fn two_instances() -> Option<(NatsBus, NatsBus)> {
    let namespace = fresh_namespace();
    let (first, second) = (bus_nats::testing::connect("t").await?, bus_nats::testing::connect("t").await?);
    Some((NatsBus::from_client(first, namespace.clone()), NatsBus::from_client(second, namespace)))
}

async fn delete_bucket(bus: &NatsBus) {
    bus.jetstream().delete_key_value(bus.namespace().config_bucket()).await.expect("delete the bucket");
}

/// Waits until the watched value is `expected`.
async fn until_value(receiver: &mut watch::Receiver<Option<String>>, expected: Option<&str>) {
    let changed = receiver.wait_for(|value| value.as_deref() == expected);
    let seen = matches!(tokio::time::timeout(PATIENCE, changed).await, Ok(Ok(_)));
    assert!(seen, "never saw {expected:?}; last {:?}", *receiver.borrow());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_setting_changed_by_one_instance_reaches_the_watchers_of_another() {
    let Some((first, second)) = two_instances().await else { return };
    let (mine, theirs) =
        (NatsSettings::open(&first).await.expect("open"), NatsSettings::open(&second).await.expect("open"));
    theirs.set("orders.payment_timeout", "30s").await.expect("set");

    let mut timeout = mine.watch("orders.payment_timeout").await.expect("watch");
    assert_eq!(timeout.borrow_and_update().as_deref(), Some("30s"), "the current value comes first");
    let mut unset = mine.watch("orders.never_set").await.expect("watch");
    assert_eq!(*unset.borrow_and_update(), None);

    theirs.set("orders.payment_timeout", "10s").await.expect("set");
    until_value(&mut timeout, Some("10s")).await;
    theirs.set("orders.payment_timeout", "5s").await.expect("set");
    until_value(&mut timeout, Some("5s")).await;
    theirs.set("orders.never_set", "now set").await.expect("set");
    until_value(&mut unset, Some("now set")).await;
    assert_eq!(mine.get("orders.payment_timeout").await.expect("get").as_deref(), Some("5s"));

    // A deleted setting is absent again.
    let bucket = second.jetstream().get_key_value(second.namespace().config_bucket()).await.expect("bucket");
    bucket.delete("orders.payment_timeout").await.expect("delete");
    until_value(&mut timeout, None).await;
    assert_eq!(mine.get("orders.payment_timeout").await.expect("get"), None);
    delete_bucket(&first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_is_idempotent_and_keeps_the_values() {
    let Some((first, second)) = two_instances().await else { return };
    let (one, two) = tokio::join!(NatsSettings::open(&first), NatsSettings::open(&second));
    let (one, two) = (one.expect("open at the same time"), two.expect("open at the same time"));
    one.set("catalog.page_size", "50").await.expect("set");
    let again = NatsSettings::open(&first).await.expect("open again");
    assert_eq!(again.get("catalog.page_size").await.expect("get").as_deref(), Some("50"));
    assert_eq!(two.get("catalog.page_size").await.expect("get").as_deref(), Some("50"));
    assert_eq!(two.get("catalog.missing").await.expect("get"), None);

    let bucket = first.jetstream().get_key_value(first.namespace().config_bucket()).await.expect("bucket");
    let config = &bucket.stream.cached_info().config;
    assert_eq!(config.max_messages_per_subject, 5, "history of five values");
    assert_eq!(config.storage, async_nats::jetstream::stream::StorageType::File);
    delete_bucket(&first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_that_are_not_keys_are_refused() {
    let Some((first, _second)) = two_instances().await else { return };
    let settings = NatsSettings::open(&first).await.expect("open");
    assert!(settings.set("orders.*", "1").await.is_err());
    assert!(settings.watch("orders.>").await.is_err());
    assert!(settings.get("").await.is_err());
    delete_bucket(&first).await;
}

/// A NATS server of this test's own, with JetStream on disk, that can be restarted.
struct PrivateServer {
    port: u16,
    store: tempfile::TempDir,
    process: Option<tokio::process::Child>,
}

impl PrivateServer {
    async fn start() -> Option<Self> {
        let binary_found = std::process::Command::new("nats-server").arg("--version").output().is_ok();
        if !binary_found {
            return skip_unless_ci("the restart test needs nats-server on PATH");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut server = PrivateServer { port, store: tempfile::tempdir().expect("tempdir"), process: None };
        server.run().await;
        Some(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let process = tokio::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server");
        self.process = Some(process);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().await.expect("stop nats-server");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_keeps_following_across_a_server_restart() {
    let Some(mut server) = PrivateServer::start().await else { return };
    let connect = |url: String| async move {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await
            .expect("connect to the private server")
    };
    let namespace = Namespace::default();
    let watching = NatsBus::from_client(connect(server.url()).await, namespace.clone());
    let settings = NatsSettings::open(&watching).await.expect("open");
    settings.set("shipping.carrier", "post").await.expect("set");
    let mut carrier = settings.watch("shipping.carrier").await.expect("watch");
    assert_eq!(carrier.borrow_and_update().as_deref(), Some("post"));

    server.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.run().await;

    // Another instance, connected after the restart, changes the setting.
    let changing = NatsBus::from_client(connect(server.url()).await, namespace);
    let other = NatsSettings::open(&changing).await.expect("open after the restart");
    other.set("shipping.carrier", "courier").await.expect("set");
    until_value(&mut carrier, Some("courier")).await;
    server.stop().await;
}
