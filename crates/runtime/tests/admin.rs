//! The standard admin operations every service answers (`contracts::admin`), asked over
//! the in-process bus as the gateway asks them, against in-memory stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use contracts::admin::{
    self, ConsumerStatus, DeadLetterOutcome, DeadLetterSummary, EventsRead, ProjectionState, ProjectionStatus,
};
use eventshop_core::bus::{Bus, EventBus, MessageContext, RejectionKind, Request, RequestBus};
use eventshop_core::consumer::{ConsumerDefinition, EventHandler, HandlerError, RetryPolicy};
use eventshop_core::settings::{LocalSettings, Settings};
use eventshop_core::{
    EventStore, ExpectedVersion, InMemoryEventStore, Metadata, NewEvent, Payload, RecordedEvent, StreamId,
};
use runtime::{InProcessBus, LiveView, OperationRouter, RunningService, ServiceContext, View};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

const SERVICE: &str = "notes";

fn note(event_type: &str, metadata: Metadata) -> NewEvent {
    NewEvent::new(event_type, 1, Payload::from_value(&json!({"text": "hello"})), metadata)
}

/// A service `notes` that serves nothing but the standard operations.
struct Notes {
    bus: Arc<InProcessBus>,
    store: Arc<InMemoryEventStore>,
    context: ServiceContext,
}

impl Notes {
    async fn start() -> (Notes, RunningService) {
        let bus = Arc::new(InProcessBus::new());
        let store = Arc::new(InMemoryEventStore::new());
        let settings: Arc<dyn Settings> = Arc::new(LocalSettings::new([]));
        let context = ServiceContext { store: store.clone(), bus: bus.clone(), consumers: store.clone(), settings };
        let running = RunningService::new()
            .serving(OperationRouter::new().with_admin(&context), &*bus, SERVICE, "notes")
            .await
            .expect("serves");
        (Notes { bus, store, context }, running)
    }

    async fn ask<T: DeserializeOwned>(&self, operation: &str, body: Value) -> Result<T, RejectionKind> {
        let request = Request {
            service: SERVICE.to_owned(),
            operation: operation.to_owned(),
            context: MessageContext::new_transaction(None),
            body: Payload::from_value(&body),
        };
        match self.bus.request(request, Duration::from_secs(5)).await.expect("the bus delivers") {
            Ok(payload) => Ok(serde_json::from_str(payload.as_str()).expect("the reply decodes")),
            Err(rejection) => Err(rejection.kind),
        }
    }
}

#[tokio::test]
async fn events_are_read_with_filters_and_in_pages() {
    let (notes, running) = Notes::start().await;
    let order = Metadata::new_transaction(None);
    let other = Metadata::new_transaction(None);
    let first = StreamId::new("note", 1);
    let second = StreamId::new("note", 2);
    notes
        .store
        .append(&first, ExpectedVersion::Any, vec![note("Drafted", order), note("Published", order)])
        .await
        .unwrap();
    notes.store.append(&second, ExpectedVersion::Any, vec![note("Drafted", other)]).await.unwrap();

    let all: EventsRead = notes.ask(admin::READ_EVENTS, json!({"limit": 10})).await.unwrap();
    assert_eq!(all.events.len(), 3);
    assert_eq!((all.scanned_to, all.head), (3, 3));
    let event = &all.events[0];
    assert_eq!((event.service.as_str(), event.event_type.as_str(), event.version), (SERVICE, "Drafted", 1));
    assert_eq!(event.payload, json!({"text": "hello"}));

    let drafted: EventsRead =
        notes.ask(admin::READ_EVENTS, json!({"limit": 10, "event_type": "Drafted"})).await.unwrap();
    assert_eq!(drafted.events.iter().map(|event| event.position).collect::<Vec<_>>(), [1, 3]);
    let of_stream: EventsRead =
        notes.ask(admin::READ_EVENTS, json!({"limit": 10, "stream": first.as_str()})).await.unwrap();
    assert_eq!(of_stream.events.len(), 2);
    let correlated: EventsRead =
        notes.ask(admin::READ_EVENTS, json!({"limit": 10, "correlation_id": other.correlation_id})).await.unwrap();
    assert_eq!(correlated.events.len(), 1);
    assert_eq!(correlated.events[0].stream_id, second.as_str());

    let page: EventsRead = notes.ask(admin::READ_EVENTS, json!({"limit": 1, "after": 1})).await.unwrap();
    assert_eq!((page.events[0].position, page.scanned_to, page.head), (2, 2, 3), "a page says where to go on");

    for limit in [0, admin::MAX_EVENTS + 1] {
        let refused = notes.ask::<EventsRead>(admin::READ_EVENTS, json!({"limit": limit})).await;
        assert_eq!(refused.unwrap_err(), RejectionKind::Invalid);
    }
    running.stop().await;
}

#[derive(Default, Debug, PartialEq, Clone)]
struct Titles(Vec<String>);

impl View for Titles {
    fn apply(&mut self, event: &RecordedEvent) {
        self.0.push(format!("{}@{}", event.event_type, event.position.0));
    }
}

#[tokio::test]
async fn projections_show_their_lag_and_rebuild_to_the_same_state() {
    let (notes, running) = Notes::start().await;
    let stream = StreamId::new("note", 7);
    for _ in 0..50 {
        notes
            .store
            .append(&stream, ExpectedVersion::Any, vec![note("Drafted", Metadata::new_transaction(None))])
            .await
            .unwrap();
    }
    let (view, follower) = LiveView::<Titles>::start("notes.titles", notes.context.store.clone()).await.unwrap();
    let projections: Vec<ProjectionStatus> = notes.ask(admin::LIST_PROJECTIONS, json!({})).await.unwrap();
    let titles = projections.iter().find(|projection| projection.name == "notes.titles").expect("listed");
    assert_eq!((titles.service.as_str(), titles.position, titles.lag), (SERVICE, 50, 0));
    assert_eq!(titles.status, ProjectionState::Live);

    let before = view.read(Clone::clone);
    let started: ProjectionStatus =
        notes.ask(admin::REBUILD_PROJECTION, json!({"name": "notes.titles"})).await.unwrap();
    assert_eq!(started.status, ProjectionState::Rebuilding);
    // Writes during the rebuild are neither lost nor applied twice.
    let appended = notes
        .store
        .append(&stream, ExpectedVersion::Any, vec![note("Published", Metadata::new_transaction(None))])
        .await
        .unwrap();
    for _ in 0..200 {
        if !view.is_rebuilding() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!view.is_rebuilding(), "the rebuild ends");
    let after = view.read_after(appended.position, Clone::clone).await;
    assert_eq!(after.0[..50], before.0[..]);
    assert_eq!(after.0.len(), 51, "{:?}", &after.0[48..]);
    let projections: Vec<ProjectionStatus> = notes.ask(admin::LIST_PROJECTIONS, json!({})).await.unwrap();
    let titles = projections.iter().find(|projection| projection.name == "notes.titles").unwrap();
    assert_eq!(titles.status, ProjectionState::Live);

    let unknown = notes.ask::<ProjectionStatus>(admin::REBUILD_PROJECTION, json!({"name": "notes.nothing"})).await;
    assert_eq!(unknown.unwrap_err(), RejectionKind::NotFound);
    follower.stop().await;
    running.stop().await;
}

/// Fails until told to heal.
#[derive(Debug, Default)]
struct Flaky {
    healed: AtomicBool,
}

#[async_trait]
impl EventHandler for Flaky {
    async fn handle(&self, _event: &RecordedEvent) -> Result<(), HandlerError> {
        if self.healed.load(Ordering::SeqCst) { Ok(()) } else { Err(HandlerError::permanent("not yet")) }
    }
}

#[tokio::test]
async fn dead_letters_are_listed_retried_and_discarded() {
    let (notes, running) = Notes::start().await;
    let source: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let _published = notes.bus.publish_events("drafts", source.clone()).await.unwrap();
    let handler = Arc::new(Flaky::default());
    let definition = ConsumerDefinition::new("notes.drafts", "drafts", &[]).with_retry(RetryPolicy {
        max_attempts: 1,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    });
    let bus: Arc<dyn Bus> = notes.bus.clone();
    let consumer = bus.consume(definition, handler.clone(), notes.context.consumers.clone()).await.unwrap();
    let running = running.with_consumer(consumer);
    for stream in [StreamId::new("draft", 1), StreamId::new("draft", 2)] {
        source
            .append(&stream, ExpectedVersion::Any, vec![note("Drafted", Metadata::new_transaction(None))])
            .await
            .unwrap();
    }
    let letters = wait_for(|| async {
        let letters: Vec<DeadLetterSummary> = notes.ask(admin::LIST_DEAD_LETTERS, json!({"limit": 10})).await.ok()?;
        (letters.len() == 2).then_some(letters)
    })
    .await;
    assert!(letters.iter().all(|letter| letter.consumer == "notes.drafts" && letter.event.event_type == "Drafted"));
    let consumers: Vec<ConsumerStatus> = notes.ask(admin::LIST_CONSUMERS, json!({})).await.unwrap();
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    assert_eq!((consumers[0].name.as_str(), consumers[0].dead_letters), ("notes.drafts", 2));
    assert_eq!(consumers[0].service, SERVICE);

    let still: DeadLetterOutcome = notes.ask(admin::RETRY_DEAD_LETTER, json!({"id": letters[0].id})).await.unwrap();
    assert_eq!(still.outcome, "still_failing");
    handler.healed.store(true, Ordering::SeqCst);
    let retried: DeadLetterOutcome = notes.ask(admin::RETRY_DEAD_LETTER, json!({"id": letters[0].id})).await.unwrap();
    assert_eq!(retried.outcome, "retried");
    let discarded: DeadLetterOutcome =
        notes.ask(admin::DISCARD_DEAD_LETTER, json!({"id": letters[1].id})).await.unwrap();
    assert_eq!(discarded.outcome, "discarded");
    let left: Vec<DeadLetterSummary> = notes.ask(admin::LIST_DEAD_LETTERS, json!({"limit": 10})).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let gone = notes.ask::<DeadLetterOutcome>(admin::DISCARD_DEAD_LETTER, json!({"id": Uuid::now_v7()})).await;
    assert_eq!(gone.unwrap_err(), RejectionKind::NotFound);

    // The discarded letter's stream flows again: its next event is handled, not parked.
    source
        .append(
            &StreamId::new("draft", 2),
            ExpectedVersion::Any,
            vec![note("Drafted", Metadata::new_transaction(None))],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left: Vec<DeadLetterSummary> = notes.ask(admin::LIST_DEAD_LETTERS, json!({"limit": 10})).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    running.stop().await;
}

async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out");
}

/// A command of the test service: refused when it has no text.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Jot {
    text: String,
}

impl eventshop_core::bus::Operation for Jot {
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "Jot";
    type Reply = Value;
}

#[tokio::test]
async fn handled_commands_are_read_by_transaction_without_admin_or_health_requests() {
    let bus = Arc::new(InProcessBus::new());
    let store = Arc::new(InMemoryEventStore::new());
    let settings: Arc<dyn Settings> = Arc::new(LocalSettings::new([]));
    let context = ServiceContext { store: store.clone(), bus: bus.clone(), consumers: store.clone(), settings };
    let router = OperationRouter::new()
        .route(|jot: Jot, _context: MessageContext| async move {
            if jot.text.is_empty() {
                Err(eventshop_core::bus::Rejection::new(RejectionKind::Invalid, "a jot needs text"))
            } else {
                Ok(json!({"jotted": jot.text}))
            }
        })
        .with_admin(&context);
    let running = RunningService::new().serving(router, &*bus, SERVICE, "notes").await.expect("serves");
    let send = |operation: &str, context: MessageContext, body: Value| {
        let request =
            Request { service: SERVICE.into(), operation: operation.into(), context, body: Payload::from_value(&body) };
        let bus = bus.clone();
        async move { bus.request(request, Duration::from_secs(5)).await.expect("the bus delivers") }
    };

    let user = Uuid::now_v7();
    let transaction = MessageContext::new_transaction(Some(user));
    assert!(send("Jot", transaction.clone(), json!({"text": "milk"})).await.is_ok());
    let refused = transaction.child();
    assert!(send("Jot", refused.clone(), json!({"text": ""})).await.is_err());
    // Admin and health requests of the same transaction are not commands of it.
    let health = transaction.child();
    assert!(send(eventshop_core::bus::CHECK_HEALTH, health, json!({})).await.is_ok());
    let read = json!({"correlation_id": transaction.correlation_id, "limit": 10});
    send(admin::READ_EVENTS, transaction.child(), json!({"limit": 10})).await.expect("events read");
    // Another transaction's command is not in this one's.
    send("Jot", MessageContext::new_transaction(None), json!({"text": "eggs"})).await.expect("jotted");

    let reply = send(admin::READ_COMMANDS, transaction.child(), read).await.expect("commands read");
    let commands: admin::CommandsRead = serde_json::from_str(reply.as_str()).unwrap();
    let seen: Vec<(&str, &str)> =
        commands.commands.iter().map(|command| (command.operation.as_str(), command.outcome.as_str())).collect();
    assert_eq!(seen, [("Jot", "ok"), ("Jot", "invalid")]);
    let (ok, rejected) = (&commands.commands[0], &commands.commands[1]);
    assert_eq!((ok.message_id, ok.causation_id), (transaction.message_id, transaction.causation_id));
    assert_eq!((ok.service.as_str(), ok.acting_user), (SERVICE, Some(user)));
    assert_eq!((rejected.message_id, rejected.causation_id), (refused.message_id, transaction.message_id));
    assert!(ok.started_at <= rejected.started_at);
    let raw: Value = serde_json::from_str(reply.as_str()).unwrap();
    assert!(!raw.to_string().contains("milk"), "no request body is kept: {raw}");

    let limited = json!({"correlation_id": transaction.correlation_id, "limit": 1});
    let reply = send(admin::READ_COMMANDS, transaction.child(), limited).await.expect("commands read");
    let latest: admin::CommandsRead = serde_json::from_str(reply.as_str()).unwrap();
    assert_eq!(latest.commands.iter().collect::<Vec<_>>(), [rejected], "the limit keeps the most recent");
    let bad = json!({"correlation_id": transaction.correlation_id, "limit": 0});
    let refusal = send(admin::READ_COMMANDS, transaction.child(), bad).await.unwrap_err();
    assert_eq!(refusal.kind, RejectionKind::Invalid);
    running.stop().await;
}

#[test]
fn the_command_log_keeps_only_the_most_recent() {
    let log = runtime::admin::CommandLog::new(3);
    let transaction = Uuid::now_v7();
    for index in 0..5 {
        log.record(admin::AdminCommand {
            operation: format!("Jot{index}"),
            service: SERVICE.into(),
            message_id: Uuid::now_v7(),
            causation_id: transaction,
            correlation_id: transaction,
            acting_user: None,
            started_at: chrono::Utc::now(),
            duration_micros: 1,
            outcome: "ok".into(),
        });
    }
    assert_eq!(log.len(), 3);
    let read = log.read(admin::ReadCommands { correlation_id: transaction, limit: 10 }).unwrap();
    let operations: Vec<&str> = read.commands.iter().map(|command| command.operation.as_str()).collect();
    assert_eq!(operations, ["Jot2", "Jot3", "Jot4"]);
    assert_eq!(runtime::admin::CommandLog::default().len(), 0);
    assert_eq!(runtime::admin::COMMAND_LOG_CAPACITY, 10_000);
}
