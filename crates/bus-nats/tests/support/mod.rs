//! What the relay and fault tests share: NATS servers (the shared one, or one of a test's
//! own that it may stop, kill and wipe), a handler that makes its effect once, and the
//! check that every event had its effect once and in order per stream.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bus_nats::{Namespace, NatsBus};
use eventshop_core::consumer::{EventHandler, HandlerError};
use eventshop_core::{
    EventStore, ExpectedVersion, InMemoryEventStore, Metadata, NewEvent, Payload, Position, RecordedEvent, StoreError,
    StreamAppend, StreamId,
};
use uuid::Uuid;

/// Skips a test (None) when what it needs is missing, except in CI, where it fails.
fn skip<T>(why: String) -> Option<T> {
    eventshop_core::testing::skip_unless_ci(why)
}

/// A namespace no other test run uses.
pub fn namespace() -> Namespace {
    bus_nats::testing::fresh_namespace("t")
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// A client of the shared NATS server (`EVENTSHOP_TEST_NATS_URL`, default
/// `nats://127.0.0.1:4222`), or None to skip.
pub async fn shared_client() -> Option<async_nats::Client> {
    bus_nats::testing::connect("t").await
}

/// A nats-server of the test's own, with JetStream on a free port and a store directory
/// that survives restarts until the server is dropped.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl NatsServer {
    /// Starts a server (`EVENTSHOP_TEST_NATS_SERVER`, default `/usr/sbin/nats-server`), or
    /// None to skip when there is no such binary.
    pub async fn start() -> Option<Self> {
        let binary = PathBuf::from(
            std::env::var("EVENTSHOP_TEST_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned()),
        );
        if !binary.exists() {
            return skip(format!("no nats-server at {} for the fault tests", binary.display()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let store = tempfile::tempdir().expect("a store directory");
        let mut server = NatsServer { binary, port, store, child: None };
        server.launch().await;
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = tokio::process::Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server never listened on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server as an orderly shutdown does (SIGTERM), keeping its store.
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().expect("a pid").to_string();
        let status = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("the server exits").expect("waited");
    }

    /// Kills the server (SIGKILL): whatever it had not written is gone.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("killed");
    }

    /// Deletes everything the stopped server stored.
    pub fn wipe(&self) {
        assert!(self.child.is_none(), "stop the server first");
        for entry in std::fs::read_dir(self.store.path()).expect("the store directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("removed");
            } else {
                std::fs::remove_file(&path).expect("removed");
            }
        }
    }

    /// Starts the stopped server again, on the same port and store.
    pub async fn restart(&mut self) {
        self.launch().await;
    }

    /// A bus on this server, as a service process holds it: reconnecting for ever.
    pub async fn bus(&self, namespace: Namespace) -> NatsBus {
        NatsBus::connect(&self.url(), namespace).await.expect("connected")
    }
}

/// Waits for `condition`, failing after `within`: a liveness bound, not a timing check.
pub async fn eventually(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An event of the source service.
pub fn noted(label: &str) -> NewEvent {
    NewEvent::new(
        "Noted",
        1,
        Payload::from_value(&serde_json::json!({ "label": label })),
        Metadata::new_transaction(None),
    )
}

/// The source's streams, `count` of them.
pub fn streams(count: usize) -> Vec<StreamId> {
    (0..count).map(|i| StreamId::new("order", format!("{i}-{}", Uuid::now_v7()))).collect()
}

/// Appends event number `i` to stream `i % streams.len()`.
pub async fn append_nth(store: &InMemoryEventStore, streams: &[StreamId], i: usize) {
    let stream = &streams[i % streams.len()];
    store.append(stream, ExpectedVersion::Any, vec![noted(&i.to_string())]).await.expect("append");
}

/// Makes its effect once per source event: one event in its own store, in a stream per
/// source stream, recorded with the source event id in one transaction.
#[derive(Debug)]
pub struct Reactor {
    pub consumer: String,
    pub store: Arc<InMemoryEventStore>,
    pub calls: AtomicU32,
}

impl Reactor {
    pub fn new(consumer: &str, store: Arc<InMemoryEventStore>) -> Arc<Self> {
        Arc::new(Reactor { consumer: consumer.to_owned(), store, calls: AtomicU32::new(0) })
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventHandler for Reactor {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let effect = StreamAppend {
            stream_id: StreamId::from_raw(format!("effect-{}", event.stream_id)),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new(
                "Reacted",
                1,
                Payload::from_value(&serde_json::json!({ "version": event.stream_version, "source": event.event_id })),
                Metadata::caused_by(event),
            )],
        };
        match self.store.append_handled(&self.consumer, event.event_id, vec![effect]).await {
            Ok(_) | Err(StoreError::AlreadyHandled { .. }) => Ok(()),
            Err(error) => Err(HandlerError::transient(error)),
        }
    }
}

/// The effects recorded in `store`.
pub async fn effects(store: &InMemoryEventStore) -> Vec<RecordedEvent> {
    store.read_all(Position::START, 1_000_000).await.expect("read")
}

/// Checks that each of the source's events had exactly one effect, and that each stream's
/// effects follow the stream's order.
pub async fn assert_each_once_in_order(source: &InMemoryEventStore, effects_store: &InMemoryEventStore) {
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in source.read_all(Position::START, 1_000_000).await.expect("read") {
        expected.entry(format!("effect-{}", event.stream_id)).or_default().push(event.stream_version);
    }
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for effect in effects(effects_store).await {
        let version = effect.payload.to_value().expect("json")["version"].as_u64().expect("a version");
        seen.entry(effect.stream_id.to_string()).or_default().push(version);
    }
    assert_eq!(seen.len(), expected.len(), "every stream had effects");
    for (stream, versions) in &expected {
        assert_eq!(seen.get(stream), Some(versions), "{stream}: every event's effect once, in the stream's order");
    }
}
