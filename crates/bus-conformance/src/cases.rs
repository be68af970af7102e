//! The cases. Each takes a fresh bus and panics on a violation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::bus::{
    self, BusError, MessageContext, Rejection, RejectionKind, Reply, Request, RequestHandler, ServiceDefinition,
};
use eventshop_core::consumer::{
    ConsumerDefinition, ConsumerStorage, EventHandler, HandlerError, RetryOutcome, RetryPolicy,
};
use eventshop_core::{
    EventId, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, NewEvent, Payload, RecordedEvent, StoreError,
    StreamAppend, StreamId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TestBus;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A service name no other case uses, so that cases can share a broker.
fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..])
}

fn definition(name: &str, operations: &[&str]) -> ServiceDefinition {
    ServiceDefinition {
        name: name.to_owned(),
        version: "1.2.3".to_owned(),
        description: "a service of the bus conformance suite".to_owned(),
        operations: operations.iter().map(|&operation| operation.to_owned()).collect(),
    }
}

fn request(service: &str, operation: &str, body: serde_json::Value) -> Request {
    Request {
        service: service.to_owned(),
        operation: operation.to_owned(),
        context: MessageContext::new_transaction(Some(Uuid::now_v7())),
        body: Payload::from_value(&body),
    }
}

/// Waits for `condition`, failing the case after a generous bound: a liveness check, not a
/// timing one.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Answers `Echo` with the body, `Context` with the request's context, `Refuse` with a
/// conflict, `Sleep` after a long pause, and counts what it answered.
#[derive(Debug, Default)]
struct TestService {
    answered: AtomicUsize,
}

#[async_trait]
impl RequestHandler for TestService {
    async fn handle(&self, request: Request) -> Reply {
        self.answered.fetch_add(1, Ordering::SeqCst);
        match request.operation.as_str() {
            "Echo" => Ok(request.body),
            "Context" => bus::reply_body(&request.context),
            "Refuse" => Err(Rejection::new(RejectionKind::Conflict, "sold out")
                .with_details(serde_json::json!({"product_id": "p-1", "available": 0}))),
            "Sleep" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(request.body)
            }
            "Add" => {
                let add: Add = bus::request_body(&request)?;
                bus::reply_body(&Sum { sum: add.left + add.right })
            }
            other => Err(Rejection::new(RejectionKind::Invalid, format!("unknown operation {other}"))),
        }
    }
}

const OPERATIONS: &[&str] = &["Echo", "Context", "Refuse", "Sleep", "Add"];

pub async fn a_request_gets_its_reply(bus: TestBus) {
    let name = unique("echo");
    let served = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let body = serde_json::json!({"text": "Grüße 🧾", "n": [1, 2, 3]});
    let reply = bus.second.request(request(&name, "Echo", body.clone()), TIMEOUT).await.expect("delivered");
    assert_eq!(reply.expect("answered").to_value().expect("json"), body);
    served.stop().await;
}

pub async fn the_context_travels_with_a_request(bus: TestBus) {
    let name = unique("context");
    let served = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let mut sent = request(&name, "Context", serde_json::json!({}));
    sent.context = MessageContext::new_transaction(Some(Uuid::now_v7()))
        .child()
        .with_traceparent(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()));
    let expected = sent.context.clone();
    let reply = bus.second.request(sent, TIMEOUT).await.expect("delivered").expect("answered");
    let received: MessageContext = serde_json::from_str(reply.as_str()).expect("a context");
    assert_eq!(received, expected, "ids, acting user and trace context arrive as sent");
    served.stop().await;
}

pub async fn a_rejection_is_an_answer(bus: TestBus) {
    let name = unique("refuse");
    let served = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let reply = bus.second.request(request(&name, "Refuse", serde_json::json!({})), TIMEOUT).await;
    let rejection = reply.expect("a rejection is delivered, not a bus error").expect_err("refused");
    assert_eq!(rejection.kind, RejectionKind::Conflict);
    assert_eq!(rejection.message, "sold out");
    assert_eq!(rejection.details, Some(serde_json::json!({"product_id": "p-1", "available": 0})));
    served.stop().await;
}

pub async fn a_slow_service_times_out(bus: TestBus) {
    let name = unique("slow");
    let served = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let reply = bus.second.request(request(&name, "Sleep", serde_json::json!({})), Duration::from_millis(300)).await;
    assert!(matches!(reply, Err(BusError::Timeout { .. })), "got {reply:?}");
    served.stop().await;
}

pub async fn a_missing_service_has_no_responders(bus: TestBus) {
    let reply = bus.first.request(request(&unique("nobody"), "Echo", serde_json::json!({})), TIMEOUT).await;
    assert!(matches!(reply, Err(BusError::NoResponders { .. })), "got {reply:?}");
}

pub async fn instances_share_the_requests(bus: TestBus) {
    let name = unique("shared");
    let (one, two) = (Arc::new(TestService::default()), Arc::new(TestService::default()));
    let first = bus.first.serve(definition(&name, OPERATIONS), one.clone()).await.expect("serve");
    let second = bus.second.serve(definition(&name, OPERATIONS), two.clone()).await.expect("serve");
    for i in 0..60 {
        let reply = bus.first.request(request(&name, "Echo", serde_json::json!(i)), TIMEOUT).await;
        assert_eq!(reply.expect("delivered").expect("answered").to_value().expect("json"), serde_json::json!(i));
    }
    let (answered_one, answered_two) = (one.answered.load(Ordering::SeqCst), two.answered.load(Ordering::SeqCst));
    assert_eq!(answered_one + answered_two, 60, "each request answered once");
    assert!(answered_one > 0 && answered_two > 0, "both instances took requests: {answered_one} and {answered_two}");
    first.stop().await;
    second.stop().await;
}

pub async fn running_instances_are_discovered(bus: TestBus) {
    let name = unique("found");
    let first = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let second =
        bus.second.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    bus.first.request(request(&name, "Echo", serde_json::json!(1)), TIMEOUT).await.expect("delivered").expect("ok");
    let found: Vec<_> =
        bus.second.discover().await.expect("discover").into_iter().filter(|instance| instance.name == name).collect();
    assert_eq!(found.len(), 2, "two instances: {found:?}");
    assert!(found.iter().all(|instance| instance.version == "1.2.3"));
    assert_ne!(found[0].id, found[1].id);
    let requests: u64 = found.iter().flat_map(|instance| instance.requests.values()).sum();
    assert_eq!(requests, 1, "request counts are reported");
    first.stop().await;
    second.stop().await;
    let left = bus.first.discover().await.expect("discover");
    assert!(left.iter().all(|instance| instance.name != name), "stopped instances are gone");
}

#[derive(Debug, Serialize, Deserialize)]
struct Add {
    left: i64,
    right: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sum {
    sum: i64,
}

/// Typed bodies in and out; a body that does not decode is refused as invalid.
pub async fn typed_calls_round_trip(bus: TestBus) {
    let name = unique("calculator");
    let served = bus.first.serve(definition(&name, OPERATIONS), Arc::new(TestService::default())).await.expect("serve");
    let mut add = request(&name, "Add", serde_json::json!({"left": 40, "right": 2}));
    let reply = bus.second.request(add.clone(), TIMEOUT).await.expect("delivered").expect("answered");
    let sum: Sum = serde_json::from_str(reply.as_str()).expect("a sum");
    assert_eq!(sum.sum, 42);
    add.body = Payload::from_value(&serde_json::json!({"left": "forty"}));
    let refused = bus.second.request(add, TIMEOUT).await.expect("delivered");
    assert_eq!(refused.expect_err("malformed").kind, RejectionKind::Invalid);
    served.stop().await;
}

// ---------------------------------------------------------------------------------------
// Events

/// A source service with an in-memory store whose events the bus carries.
async fn source(bus: &TestBus) -> (String, Arc<InMemoryEventStore>, Box<dyn eventshop_core::bus::Running>) {
    let name = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let publishing = bus.first.publish_events(&name, store.clone()).await.expect("publish");
    (name, store, publishing)
}

fn noted(event_type: &str, label: &str) -> NewEvent {
    NewEvent::new(
        event_type,
        1,
        Payload::from_value(&serde_json::json!({ "label": label })),
        Metadata::new_transaction(None),
    )
}

fn label(event: &RecordedEvent) -> String {
    event.payload.to_value().ok().and_then(|value| value["label"].as_str().map(str::to_owned)).unwrap_or_default()
}

/// Records what it is handed; fails as told.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<RecordedEvent>>,
    /// Labels whose events fail on every attempt.
    failing: Mutex<Vec<String>>,
    /// Attempts that fail before the first success, per event.
    flaky_attempts: u32,
    attempts: Mutex<HashMap<EventId, u32>>,
}

impl Recorder {
    fn seen(&self) -> Vec<RecordedEvent> {
        self.seen.lock().expect("lock").clone()
    }

    fn labels(&self) -> Vec<String> {
        self.seen().iter().map(label).collect()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.event_type == "Explosive" {
            panic!("the handler blew up on {}", event.event_id);
        }
        if event.event_type == "Garbled" {
            return Err(HandlerError::permanent(format!("cannot decode {}: unknown type", event.event_id)));
        }
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let attempt = attempts.entry(event.event_id).or_default();
            *attempt += 1;
            *attempt
        };
        if self.failing.lock().expect("lock").contains(&label(event)) {
            return Err(HandlerError::transient("the handler is told to fail"));
        }
        if attempt <= self.flaky_attempts {
            return Err(HandlerError::transient(format!("attempt {attempt} fails")));
        }
        self.seen.lock().expect("lock").push(event.clone());
        Ok(())
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(50) }
}

pub async fn events_arrive_in_order_per_stream(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let streams: Vec<StreamId> = (0..4).map(|i| StreamId::new("order", format!("{i}-{}", Uuid::now_v7()))).collect();
    for round in 0..10 {
        for (index, stream) in streams.iter().enumerate() {
            let event = noted("Noted", &format!("{index}:{round}"));
            source_store.append(stream, ExpectedVersion::Any, vec![event]).await.expect("append");
        }
    }
    let recorder = Arc::new(Recorder::default());
    let storage = Arc::new(InMemoryEventStore::new());
    let consumer = bus
        .second
        .consume(ConsumerDefinition::new(unique("orders_view"), &source_name, &[]), recorder.clone(), storage)
        .await
        .expect("consume");
    eventually("40 events delivered", async || recorder.seen().len() >= 40).await;
    let seen = recorder.seen();
    for (index, stream) in streams.iter().enumerate() {
        let labels: Vec<_> = seen.iter().filter(|event| event.stream_id == *stream).map(label).collect();
        let expected: Vec<_> = (0..10).map(|round| format!("{index}:{round}")).collect();
        assert_eq!(labels, expected, "stream {index} in order, each once");
    }
    consumer.stop().await;
}

pub async fn a_consumer_sees_only_its_event_types(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let stream = StreamId::new("order", Uuid::now_v7());
    let events = vec![noted("OrderPlaced", "a"), noted("OrderNoted", "b"), noted("OrderConfirmed", "c")];
    source_store.append(&stream, ExpectedVersion::Any, events).await.expect("append");
    source_store.append(&stream, ExpectedVersion::Any, vec![noted("OrderPlaced", "d")]).await.expect("append");
    let recorder = Arc::new(Recorder::default());
    let definition = ConsumerDefinition::new(unique("placed"), &source_name, &["OrderPlaced", "OrderConfirmed"]);
    let consumer =
        bus.second.consume(definition, recorder.clone(), Arc::new(InMemoryEventStore::new())).await.expect("consume");
    eventually("three events", async || recorder.seen().len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recorder.labels(), ["a", "c", "d"]);
    consumer.stop().await;
}

pub async fn live_events_arrive(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let recorder = Arc::new(Recorder::default());
    let consumer = bus
        .second
        .consume(
            ConsumerDefinition::new(unique("live"), &source_name, &[]),
            recorder.clone(),
            Arc::new(InMemoryEventStore::new()),
        )
        .await
        .expect("consume");
    let stream = StreamId::new("order", Uuid::now_v7());
    for i in 0..5 {
        source_store.append(&stream, ExpectedVersion::Any, vec![noted("Noted", &i.to_string())]).await.expect("append");
        eventually("the live event", async || recorder.seen().len() > i).await;
    }
    assert_eq!(recorder.labels(), ["0", "1", "2", "3", "4"]);
    consumer.stop().await;
}

/// Makes its effect (an event in its own store) once per source event, by recording the
/// source event id with it.
#[derive(Debug)]
struct Reactor {
    consumer: String,
    store: Arc<InMemoryEventStore>,
    calls: AtomicU32,
}

#[async_trait]
impl EventHandler for Reactor {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let effect = StreamAppend {
            stream_id: StreamId::new("effect", event.event_id),
            expected: ExpectedVersion::Any,
            events: vec![noted("Reacted", &label(event))],
        };
        match self.store.append_handled(&self.consumer, event.event_id, vec![effect]).await {
            Ok(_) | Err(StoreError::AlreadyHandled { .. }) => Ok(()),
            Err(error) => Err(HandlerError::transient(error)),
        }
    }
}

async fn effects(store: &InMemoryEventStore) -> Vec<String> {
    store.read_all(eventshop_core::Position::START, 10_000).await.expect("read").iter().map(label).collect()
}

pub async fn a_restarted_consumer_resumes_without_loss(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let name = unique("resuming");
    let own_store = Arc::new(InMemoryEventStore::new());
    let reactor = Arc::new(Reactor { consumer: name.clone(), store: own_store.clone(), calls: AtomicU32::new(0) });
    let stream = StreamId::new("order", Uuid::now_v7());
    let append = |i: usize| {
        let (store, stream) = (source_store.clone(), stream.clone());
        async move {
            store.append(&stream, ExpectedVersion::Any, vec![noted("Noted", &i.to_string())]).await.expect("append")
        }
    };
    for i in 0..10 {
        append(i).await;
    }
    let definition = ConsumerDefinition::new(&name, &source_name, &[]);
    let consumer = bus.second.consume(definition.clone(), reactor.clone(), own_store.clone()).await.expect("consume");
    eventually("the first ten effects", async || effects(&own_store).await.len() >= 10).await;
    consumer.stop().await;
    for i in 10..20 {
        append(i).await;
    }
    let consumer = bus.first.consume(definition, reactor.clone(), own_store.clone()).await.expect("consume again");
    eventually("all twenty effects", async || effects(&own_store).await.len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expected: Vec<_> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(effects(&own_store).await, expected, "every event's effect once, in order");
    consumer.stop().await;
}

pub async fn a_redelivered_event_has_its_effect_once(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let name = unique("once");
    let own_store = Arc::new(InMemoryEventStore::new());
    let reactor = Arc::new(Reactor { consumer: name.clone(), store: own_store.clone(), calls: AtomicU32::new(0) });
    let stream = StreamId::new("order", Uuid::now_v7());
    for i in 0..5 {
        source_store.append(&stream, ExpectedVersion::Any, vec![noted("Noted", &i.to_string())]).await.expect("append");
    }
    // Deliver everything, forget the position, and deliver everything again.
    let definition = ConsumerDefinition::new(&name, &source_name, &[]);
    for _ in 0..2 {
        let calls_before = reactor.calls.load(Ordering::SeqCst);
        let consumer =
            bus.second.consume(definition.clone(), reactor.clone(), own_store.clone()).await.expect("consume");
        eventually("five deliveries", async || reactor.calls.load(Ordering::SeqCst) >= calls_before + 5).await;
        consumer.stop().await;
        own_store.save_consumer_position(&name, eventshop_core::Position::START).await.expect("rewind");
    }
    assert!(reactor.calls.load(Ordering::SeqCst) >= 10, "each event was delivered twice");
    assert_eq!(effects(&own_store).await, ["0", "1", "2", "3", "4"], "yet had its effect once");
}

pub async fn a_failing_handler_is_retried(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let stream = StreamId::new("order", Uuid::now_v7());
    source_store
        .append(&stream, ExpectedVersion::Any, vec![noted("Noted", "a"), noted("Noted", "b")])
        .await
        .expect("append");
    let recorder = Arc::new(Recorder { flaky_attempts: 2, ..Recorder::default() });
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("flaky"), &source_name, &[]).with_retry(quick_retries());
    let consumer = bus.second.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    eventually("both handled", async || recorder.seen().len() >= 2).await;
    assert_eq!(recorder.labels(), ["a", "b"]);
    assert!(storage.dead_letters(Some(&definition.name), 10).await.expect("list").is_empty(), "no dead letters");
    consumer.stop().await;
}

pub async fn dead_letters_block_their_stream_only(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let (blocked, free) = (StreamId::new("order", Uuid::now_v7()), StreamId::new("order", Uuid::now_v7()));
    for i in 0..4 {
        source_store
            .append(&blocked, ExpectedVersion::Any, vec![noted("Noted", &format!("blocked{i}"))])
            .await
            .expect("append");
        source_store
            .append(&free, ExpectedVersion::Any, vec![noted("Noted", &format!("free{i}"))])
            .await
            .expect("append");
    }
    let recorder = Arc::new(Recorder::default());
    recorder.failing.lock().expect("lock").push("blocked1".to_owned());
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("sequenced"), &source_name, &[]).with_retry(quick_retries());
    let consumer = bus.second.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    eventually("the free stream flows", async || {
        recorder.labels().iter().filter(|l| l.starts_with("free")).count() == 4
    })
    .await;
    let letters_of = |storage: Arc<InMemoryEventStore>, name: String| async move {
        storage.dead_letters(Some(&name), 100).await.expect("list")
    };
    let mut letters = Vec::new();
    eventually("three dead letters", async || {
        letters = letters_of(storage.clone(), definition.name.clone()).await;
        letters.len() == 3
    })
    .await;
    assert_eq!(
        letters.iter().map(|letter| label(&letter.event)).collect::<Vec<_>>(),
        ["blocked1", "blocked2", "blocked3"]
    );
    assert_eq!(letters[0].attempts, 3, "the failing event was tried three times");
    assert!(letters[0].reason.contains("told to fail"), "the reason is kept: {}", letters[0].reason);
    assert_eq!(letters[1].attempts, 0, "later events of the stream wait unhandled");
    assert_eq!(
        recorder.labels().iter().filter(|l| l.starts_with("blocked")).cloned().collect::<Vec<_>>(),
        ["blocked0"],
        "nothing after the dead letter was handled"
    );

    // Mend the handler and replay: the stream's events arrive in order and it flows again.
    recorder.failing.lock().expect("lock").clear();
    let outcome = consumer.retry_stream(blocked.clone()).await.expect("retry");
    assert_eq!(outcome, RetryOutcome::Unblocked { handled: 3 });
    assert!(letters_of(storage.clone(), definition.name.clone()).await.is_empty());
    source_store.append(&blocked, ExpectedVersion::Any, vec![noted("Noted", "blocked4")]).await.expect("append");
    eventually("the unblocked stream flows", async || recorder.labels().contains(&"blocked4".to_owned())).await;
    let order: Vec<_> = recorder.labels().into_iter().filter(|l| l.starts_with("blocked")).collect();
    assert_eq!(order, ["blocked0", "blocked1", "blocked2", "blocked3", "blocked4"]);
    consumer.stop().await;
}

pub async fn an_undecodable_event_is_dead_lettered_and_the_rest_flows(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let stream = StreamId::new("order", Uuid::now_v7());
    let other = StreamId::new("order", Uuid::now_v7());
    source_store.append(&stream, ExpectedVersion::Any, vec![noted("Garbled", "bad")]).await.expect("append");
    source_store.append(&other, ExpectedVersion::Any, vec![noted("Noted", "fine")]).await.expect("append");
    let recorder = Arc::new(Recorder::default());
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("decoder"), &source_name, &[]).with_retry(quick_retries());
    let consumer = bus.second.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    eventually("the good event", async || recorder.labels() == ["fine"]).await;
    // The two streams are handled side by side: the good event may pass before the bad one
    // is parked.
    let mut letters = Vec::new();
    eventually("the undecodable event is a dead letter", async || {
        letters = storage.dead_letters(Some(&definition.name), 10).await.expect("list");
        !letters.is_empty()
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1, "a permanent failure is not retried");
    assert!(letters[0].reason.contains("cannot decode"), "reason: {}", letters[0].reason);
    consumer.stop().await;
}

pub async fn a_panicking_handler_dead_letters_the_event_and_goes_on(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let (stream, other) = (StreamId::new("order", Uuid::now_v7()), StreamId::new("order", Uuid::now_v7()));
    source_store.append(&stream, ExpectedVersion::Any, vec![noted("Explosive", "boom")]).await.expect("append");
    source_store.append(&other, ExpectedVersion::Any, vec![noted("Noted", "calm")]).await.expect("append");
    let recorder = Arc::new(Recorder::default());
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("panicky"), &source_name, &[]).with_retry(quick_retries());
    let consumer = bus.second.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    eventually("the other stream flows", async || recorder.labels() == ["calm"]).await;
    let mut letters = Vec::new();
    eventually("the panic is a dead letter", async || {
        letters = storage.dead_letters(Some(&definition.name), 10).await.expect("list");
        !letters.is_empty()
    })
    .await;
    assert!(letters[0].reason.contains("panicked"), "reason: {}", letters[0].reason);
    source_store.append(&other, ExpectedVersion::Any, vec![noted("Noted", "still")]).await.expect("append");
    eventually("the consumer is still alive", async || recorder.labels() == ["calm", "still"]).await;
    consumer.stop().await;
}

pub async fn a_dead_letter_can_be_discarded(bus: TestBus) {
    let (source_name, source_store, _publishing) = source(&bus).await;
    let stream = StreamId::new("order", Uuid::now_v7());
    source_store.append(&stream, ExpectedVersion::Any, vec![noted("Garbled", "bad")]).await.expect("append");
    let recorder = Arc::new(Recorder::default());
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("discarding"), &source_name, &[]).with_retry(quick_retries());
    let consumer = bus.second.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    let mut letters = Vec::new();
    eventually("a dead letter", async || {
        letters = storage.dead_letters(Some(&definition.name), 10).await.expect("list");
        !letters.is_empty()
    })
    .await;
    assert!(consumer.discard(letters[0].id, stream.clone()).await.expect("discard"));
    assert!(storage.dead_letters(Some(&definition.name), 10).await.expect("list").is_empty());
    source_store.append(&stream, ExpectedVersion::Any, vec![noted("Noted", "after")]).await.expect("append");
    eventually("the stream flows again", async || recorder.labels() == ["after"]).await;
    consumer.stop().await;
}
