//! The relay and the consumers against the shared NATS server (`EVENTSHOP_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`), each test in its own namespace: what the relay puts
//! on the broker, how it refills a stream that was lost, and how several instances of a
//! consumer share the partitions without breaking a stream's order or its dead letters.
//!
//! The `throughput` measurement is ignored; run it in release:
//! `cargo test --release -p bus-nats --test relay -- --ignored --nocapture throughput`.

mod support;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bus_nats::relay::{self, POSITION_HEADER, STREAM_ID_HEADER, STREAM_VERSION_HEADER};
use bus_nats::subjects::partition;
use bus_nats::{NatsBus, consumers};
use eventshop_core::bus::{EventBus, headers};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerStorage, EventHandler, HandlerError, RetryPolicy};
use eventshop_core::{EventStore, ExpectedVersion, InMemoryEventStore, Position, RecordedEvent, StreamId};
use futures::StreamExt;
use support::{
    Reactor, append_nth, assert_each_once_in_order, effects, eventually, noted, shared_client, streams, unique,
};
use tokio::time::Instant;
use uuid::Uuid;

const LIVENESS: Duration = Duration::from_secs(30);

/// Two connections to the shared server in one fresh namespace, as two processes hold.
async fn buses() -> Option<(NatsBus, NatsBus)> {
    let namespace = support::namespace();
    let first = shared_client().await?;
    let second = shared_client().await?;
    Some((NatsBus::from_client(first, namespace.clone()), NatsBus::from_client(second, namespace)))
}

/// How many messages the service's event stream holds (0 while it does not exist).
async fn stream_messages(bus: &NatsBus, service: &str) -> u64 {
    match bus.jetstream().get_stream(bus.namespace().event_stream(service)).await {
        Ok(stream) => stream.cached_info().state.messages,
        Err(_) => 0,
    }
}

/// The positions of the messages in the service's event stream, in stream order.
async fn stream_positions(bus: &NatsBus, service: &str) -> Vec<u64> {
    let stream = bus.jetstream().get_stream(bus.namespace().event_stream(service)).await.expect("the event stream");
    let state = stream.cached_info().state.clone();
    let mut positions = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.expect("a message");
        positions.push(message.headers.get(POSITION_HEADER).expect("a position").as_str().parse().expect("a number"));
    }
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_published_in_global_order_with_their_headers() {
    let Some((bus, _)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let streams = streams(3);
    for i in 0..9 {
        append_nth(&store, &streams, i).await;
    }
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    eventually("nine messages", LIVENESS, async || stream_messages(&bus, &service).await == 9).await;

    let stream = bus.jetstream().get_stream(bus.namespace().event_stream(&service)).await.expect("stream");
    let recorded = store.read_all(Position::START, 100).await.expect("read");
    for (sequence, event) in (1..).zip(&recorded) {
        let message = stream.get_raw_message(sequence).await.expect("a message");
        assert_eq!(&*message.subject, bus.namespace().event_subject(&service, &event.stream_id, "Noted"));
        let header = |name: &str| message.headers.get(name).map(|value| value.as_str().to_owned());
        assert_eq!(header("Nats-Msg-Id"), Some(event.event_id.to_string()), "deduplicated by event id");
        assert_eq!(header(headers::MESSAGE_ID), Some(event.event_id.to_string()));
        assert_eq!(header(headers::CORRELATION_ID), Some(event.correlation_id.to_string()));
        assert_eq!(header(headers::CAUSATION_ID), Some(event.causation_id.to_string()));
        assert_eq!(header(POSITION_HEADER), Some(event.position.to_string()));
        assert_eq!(header(STREAM_ID_HEADER), Some(event.stream_id.to_string()));
        assert_eq!(header(STREAM_VERSION_HEADER), Some(event.stream_version.to_string()));
        let body: RecordedEvent = serde_json::from_slice(&message.payload).expect("a recorded event");
        assert_eq!(&body, event, "the body is the event as recorded");
    }
    relay.stop().await;
}

/// A stream that vanished from the broker is noticed, created again and refilled from the
/// store, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_stream_is_refilled_from_the_store() {
    let Some((bus, _)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let streams = streams(4);
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    for i in 0..20 {
        append_nth(&store, &streams, i).await;
    }
    eventually("twenty messages", LIVENESS, async || stream_messages(&bus, &service).await == 20).await;

    bus.jetstream().delete_stream(bus.namespace().event_stream(&service)).await.expect("deleted");
    for i in 20..25 {
        append_nth(&store, &streams, i).await;
    }
    eventually("the stream refilled", LIVENESS, async || stream_messages(&bus, &service).await == 25).await;
    assert_eq!(stream_positions(&bus, &service).await, (1..=25).collect::<Vec<_>>(), "each event once, in order");
    relay.stop().await;
}

/// A consumer may start before the relay of its source has created the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_waits_for_its_source() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("late");
    let name = unique("early");
    let own_store = Arc::new(InMemoryEventStore::new());
    let consumer = other
        .consume(
            ConsumerDefinition::new(&name, &service, &[]),
            Reactor::new(&name, own_store.clone()),
            own_store.clone(),
        )
        .await
        .expect("consume");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store = Arc::new(InMemoryEventStore::new());
    let streams = streams(2);
    for i in 0..10 {
        append_nth(&store, &streams, i).await;
    }
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    eventually("ten effects", LIVENESS, async || effects(&own_store).await.len() == 10).await;
    assert_each_once_in_order(&store, &own_store).await;
    consumer.stop().await;
    relay.stop().await;
}

/// Two instances of a consumer share the partitions; each stream is still handled in
/// order, each event's effect once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_share_the_partitions_and_keep_each_stream_in_order() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("source");
    let name = unique("shared");
    let store = Arc::new(InMemoryEventStore::new());
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    // The service's database, which both instances use.
    let own_store = Arc::new(InMemoryEventStore::new());
    let (one, two) = (Reactor::new(&name, own_store.clone()), Reactor::new(&name, own_store.clone()));
    let definition = ConsumerDefinition::new(&name, &service, &[]);
    let first = bus.consume(definition.clone(), one.clone(), own_store.clone()).await.expect("consume");
    let second = other.consume(definition, two.clone(), own_store.clone()).await.expect("consume");
    let streams = streams(40);
    for i in 0..800 {
        append_nth(&store, &streams, i).await;
    }
    eventually("800 effects", LIVENESS, async || effects(&own_store).await.len() == 800).await;
    assert_each_once_in_order(&store, &own_store).await;
    assert!(one.calls() > 0 && two.calls() > 0, "both instances worked: {} and {}", one.calls(), two.calls());
    first.stop().await;
    second.stop().await;
    relay.stop().await;
}

/// Records what it handled, per instance; fails on some labels, sleeps once on others.
#[derive(Debug, Default)]
struct Recorder {
    handled: Mutex<Vec<String>>,
    failing: Vec<String>,
    panicking: Vec<String>,
    slow: Vec<String>,
    calls: Mutex<HashMap<String, usize>>,
}

impl Recorder {
    fn handled(&self) -> Vec<String> {
        self.handled.lock().expect("lock").clone()
    }

    fn calls(&self, label: &str) -> usize {
        self.calls.lock().expect("lock").get(label).copied().unwrap_or_default()
    }
}

fn label(event: &RecordedEvent) -> String {
    event.payload.to_value().ok().and_then(|value| value["label"].as_str().map(str::to_owned)).unwrap_or_default()
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let label = label(event);
        let calls = {
            let mut calls = self.calls.lock().expect("lock");
            let count = calls.entry(label.clone()).or_default();
            *count += 1;
            *count
        };
        assert!(!self.panicking.contains(&label), "a bug in the handler");
        if self.failing.contains(&label) {
            return Err(HandlerError::transient("told to fail"));
        }
        if self.slow.contains(&label) && calls == 1 {
            tokio::time::sleep(consumers::ACK_WAIT + Duration::from_secs(2)).await;
        }
        self.handled.lock().expect("lock").push(label);
        Ok(())
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(50) }
}

/// A stream blocked by a dead letter stays blocked whichever instance gets its next events:
/// the storage, not an instance's memory, says which streams are blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_blocks_its_stream_on_every_instance() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    let storage = Arc::new(InMemoryEventStore::new());
    let recorder = |failing: &[&str]| {
        Arc::new(Recorder { failing: failing.iter().map(|&label| label.to_owned()).collect(), ..Recorder::default() })
    };
    let (one, two) = (recorder(&["blocked1"]), recorder(&["blocked1"]));
    let definition = ConsumerDefinition::new(unique("sequenced"), &service, &[]).with_retry(quick_retries());
    let first = bus.consume(definition.clone(), one.clone(), storage.clone()).await.expect("consume");
    let second = other.consume(definition.clone(), two.clone(), storage.clone()).await.expect("consume");
    let (blocked, free) = (StreamId::new("order", Uuid::now_v7()), StreamId::new("order", Uuid::now_v7()));
    for i in 0..12 {
        store.append(&blocked, ExpectedVersion::Any, vec![noted(&format!("blocked{i}"))]).await.expect("append");
        store.append(&free, ExpectedVersion::Any, vec![noted(&format!("free{i}"))]).await.expect("append");
    }
    let handled = || [one.handled(), two.handled()].concat();
    eventually("the free stream flows", LIVENESS, async || {
        handled().iter().filter(|l| l.starts_with("free")).count() == 12
    })
    .await;
    eventually("eleven dead letters", LIVENESS, async || {
        storage.dead_letters(Some(&definition.name), 100).await.expect("list").len() == 11
    })
    .await;
    let letters = storage.dead_letters(Some(&definition.name), 100).await.expect("list");
    let parked: Vec<_> = letters.iter().map(|letter| label(&letter.event)).collect();
    assert_eq!(parked, (1..12).map(|i| format!("blocked{i}")).collect::<Vec<_>>(), "parked in the stream's order");
    assert!(letters[1..].iter().all(|letter| letter.attempts == 0), "the later events wait unhandled");
    let handled_blocked: Vec<_> = handled().into_iter().filter(|l| l.starts_with("blocked")).collect();
    assert_eq!(handled_blocked, ["blocked0"], "no instance handled the stream past its dead letter");
    first.stop().await;
    second.stop().await;
    relay.stop().await;
}

/// A message whose body is not an event is parked with the reason, attributed to its
/// stream from the headers, and blocks that stream; the others flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecodable_message_is_dead_lettered_and_blocks_its_stream() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    let (garbled, free) = (StreamId::new("order", Uuid::now_v7()), StreamId::new("order", Uuid::now_v7()));
    store.append(&garbled, ExpectedVersion::Any, vec![noted("first")]).await.expect("append");
    eventually("the first event published", LIVENESS, async || stream_messages(&bus, &service).await == 1).await;

    // Something other than the relay writes into the stream: keep the relay's position.
    let mut header_map = async_nats::HeaderMap::new();
    header_map.insert(STREAM_ID_HEADER, garbled.as_str());
    header_map.insert(POSITION_HEADER, "1");
    header_map.insert("Nats-Msg-Id", Uuid::now_v7().to_string());
    let subject = bus.namespace().event_subject(&service, &garbled, "Noted");
    bus.jetstream()
        .publish_with_headers(subject, header_map, "{not json".into())
        .await
        .expect("sent")
        .await
        .expect("stored");
    store.append(&garbled, ExpectedVersion::Any, vec![noted("after")]).await.expect("append");
    store.append(&free, ExpectedVersion::Any, vec![noted("free")]).await.expect("append");

    let recorder = Arc::new(Recorder::default());
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("decoder"), &service, &[]);
    let consumer = other.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    eventually("two dead letters", LIVENESS, async || {
        storage.dead_letters(Some(&definition.name), 10).await.expect("list").len() == 2
    })
    .await;
    eventually("the free stream flows", LIVENESS, async || recorder.handled().contains(&"free".to_owned())).await;
    let letters = storage.dead_letters(Some(&definition.name), 10).await.expect("list");
    assert!(letters[0].reason.contains("cannot decode"), "the reason is kept: {}", letters[0].reason);
    assert_eq!(letters[0].event.stream_id, garbled, "attributed to its stream");
    assert_eq!(letters[0].event.payload.to_value().expect("json"), serde_json::json!("{not json"), "the body is kept");
    assert_eq!(label(&letters[1].event), "after", "the stream's next event waits behind it");
    let mut handled = recorder.handled();
    handled.sort();
    assert_eq!(handled, ["first", "free"]);
    consumer.stop().await;
    relay.stop().await;
}

/// A handler that panics has its event dead-lettered; the consumer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_dead_letters_its_event() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    let recorder = Arc::new(Recorder { panicking: vec!["boom".to_owned()], ..Recorder::default() });
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("fragile"), &service, &[]);
    let consumer = other.consume(definition.clone(), recorder.clone(), storage.clone()).await.expect("consume");
    let (stream, free) = (StreamId::new("order", Uuid::now_v7()), StreamId::new("order", Uuid::now_v7()));
    store.append(&stream, ExpectedVersion::Any, vec![noted("boom"), noted("after")]).await.expect("append");
    store.append(&free, ExpectedVersion::Any, vec![noted("free")]).await.expect("append");
    eventually("the free stream flows", LIVENESS, async || recorder.handled() == ["free"]).await;
    eventually("two dead letters", LIVENESS, async || {
        storage.dead_letters(Some(&definition.name), 10).await.expect("list").len() == 2
    })
    .await;
    let letters = storage.dead_letters(Some(&definition.name), 10).await.expect("list");
    assert!(letters[0].reason.contains("panicked: a bug in the handler"), "reason: {}", letters[0].reason);
    assert_eq!(label(&letters[1].event), "after");
    // A stream of the same partition as the one that panicked: its task still runs.
    let sibling = (0..)
        .map(|i| StreamId::new("order", format!("{i}-{}", Uuid::now_v7())))
        .find(|sibling| partition(sibling) == partition(&stream))
        .expect("a stream in the same partition");
    store.append(&sibling, ExpectedVersion::Any, vec![noted("still")]).await.expect("append");
    eventually("the partition still runs", LIVENESS, async || recorder.handled() == ["free", "still"]).await;
    consumer.stop().await;
    relay.stop().await;
}

/// A handler that runs past the ack wait keeps its message: no other instance gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_handler_keeps_its_message() {
    let Some((bus, other)) = buses().await else { return };
    let service = unique("source");
    let store = Arc::new(InMemoryEventStore::new());
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    let recorder = |slow: &[&str]| {
        Arc::new(Recorder { slow: slow.iter().map(|&label| label.to_owned()).collect(), ..Recorder::default() })
    };
    let (one, two) = (recorder(&["slow"]), recorder(&["slow"]));
    let storage = Arc::new(InMemoryEventStore::new());
    let definition = ConsumerDefinition::new(unique("patient"), &service, &[]);
    let first = bus.consume(definition.clone(), one.clone(), storage.clone()).await.expect("consume");
    let second = other.consume(definition, two.clone(), storage.clone()).await.expect("consume");
    let stream = StreamId::new("order", Uuid::now_v7());
    store.append(&stream, ExpectedVersion::Any, vec![noted("slow"), noted("next")]).await.expect("append");
    let handled = || [one.handled(), two.handled()].concat();
    eventually("both handled", LIVENESS, async || handled().len() == 2).await;
    assert_eq!(one.calls("slow") + two.calls("slow"), 1, "the slow event was handed out once");
    let mut order = one.handled();
    order.extend(two.handled());
    assert_eq!(order.iter().filter(|l| *l == "next").count(), 1);
    first.stop().await;
    second.stop().await;
    relay.stop().await;
}

// ---------------------------------------------------------------------------------------
// Throughput

#[derive(Debug, Default)]
struct Counter {
    handled: AtomicUsize,
}

#[async_trait]
impl EventHandler for Counter {
    async fn handle(&self, _event: &RecordedEvent) -> Result<(), HandlerError> {
        self.handled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The relay (store to JetStream) next to raw async publishes of the same messages with
/// the same pipelining, and the consumers next to raw pull consumers with the same
/// settings (one message in flight per partition), and without that limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn throughput() {
    const EVENTS: usize = 100_000;
    let Some((bus, _)) = buses().await else { return };
    let store = Arc::new(InMemoryEventStore::new());
    let streams = streams(1_000);
    for i in 0..EVENTS {
        append_nth(&store, &streams, i).await;
    }
    let events = store.read_all(Position::START, EVENTS).await.expect("read");

    // The relay, from the store.
    let service = unique("relayed");
    let started = Instant::now();
    let relay = bus.publish_events(&service, store.clone()).await.expect("relay");
    let mut stream =
        bus.jetstream().get_or_create_stream(relay::stream_config(bus.namespace(), &service)).await.expect("s");
    while stream.info().await.expect("info").state.messages < EVENTS as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let relayed = started.elapsed();
    relay.stop().await;

    // Raw publishes of the same messages, prepared beforehand.
    let raw = unique("raw");
    bus.jetstream().get_or_create_stream(relay::stream_config(bus.namespace(), &raw)).await.expect("stream");
    let messages: Vec<_> = events
        .iter()
        .map(|event| {
            let subject = bus.namespace().event_subject(&raw, &event.stream_id, &event.event_type);
            (subject, relay::event_headers(event), bytes::Bytes::from(serde_json::to_vec(event).expect("json")))
        })
        .collect();
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(relay::IN_FLIGHT);
    for (subject, header_map, body) in messages {
        if in_flight.len() >= relay::IN_FLIGHT {
            let ack: async_nats::jetstream::context::PublishAckFuture = in_flight.pop_front().expect("one");
            ack.await.expect("acknowledged");
        }
        in_flight.push_back(bus.jetstream().publish_with_headers(subject, header_map, body).await.expect("sent"));
    }
    for ack in in_flight {
        ack.await.expect("acknowledged");
    }
    let published = started.elapsed();

    // The consumer, on the relayed stream.
    let counter = Arc::new(Counter::default());
    let definition = ConsumerDefinition::new(unique("counting"), &service, &[]);
    let started = Instant::now();
    let consumer =
        bus.consume(definition, counter.clone(), Arc::new(InMemoryEventStore::new())).await.expect("consume");
    while counter.handled.load(Ordering::Relaxed) < EVENTS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let consumed = started.elapsed();
    consumer.stop().await;

    // Raw pull consumers with the same settings, acknowledging without handling.
    let raw_stream = bus.jetstream().get_stream(bus.namespace().event_stream(&raw)).await.expect("stream");
    let pulled = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let definition = ConsumerDefinition::new(unique("raw_ordered"), &raw, &[]);
    let mut tasks = Vec::new();
    for number in 0..bus_nats::subjects::PARTITIONS {
        let config = consumers::durable_config(bus.namespace(), &definition, number);
        let name = config.durable_name.clone().expect("durable");
        let durable = raw_stream.get_or_create_consumer(&name, config).await.expect("durable");
        let pulled = pulled.clone();
        tasks.push(tokio::spawn(async move {
            while pulled.load(Ordering::Relaxed) < EVENTS {
                let mut batch = durable
                    .batch()
                    .max_messages(1_000)
                    .expires(consumers::PULL_EXPIRES)
                    .messages()
                    .await
                    .expect("pull");
                while let Some(Ok(message)) = batch.next().await {
                    message.ack().await.expect("ack");
                    pulled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while pulled.load(Ordering::Relaxed) < EVENTS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pulled_ordered = started.elapsed();
    for task in tasks {
        task.abort();
    }

    // A raw pull consumer without the limit: what ordering costs.
    let config = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some(unique("raw_unordered")),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    let durable = raw_stream.create_consumer(config).await.expect("durable");
    let started = Instant::now();
    let mut count = 0;
    while count < EVENTS {
        let mut batch =
            durable.batch().max_messages(1_000).expires(Duration::from_secs(1)).messages().await.expect("pull");
        while let Some(Ok(message)) = batch.next().await {
            message.ack().await.expect("ack");
            count += 1;
        }
    }
    let pulled_unordered = started.elapsed();

    println!("{EVENTS} events of {} bytes each (JSON body)", serde_json::to_vec(&events[0]).expect("json").len());
    println!("relay, store to JetStream      {:>9.0} events/s", per_second(EVENTS, relayed));
    println!("raw async publish, {} in flight {:>8.0} events/s", relay::IN_FLIGHT, per_second(EVENTS, published));
    println!("  relay / raw                  {:>9.0} %", 100.0 * published.as_secs_f64() / relayed.as_secs_f64());
    println!("consumer, 16 partitions        {:>9.0} events/s", per_second(EVENTS, consumed));
    println!("raw pull, same settings        {:>9.0} events/s", per_second(EVENTS, pulled_ordered));
    println!("  consumer / raw               {:>9.0} %", 100.0 * pulled_ordered.as_secs_f64() / consumed.as_secs_f64());
    println!("raw pull, no in-flight limit   {:>9.0} events/s", per_second(EVENTS, pulled_unordered));
    for name in [bus.namespace().event_stream(&service), bus.namespace().event_stream(&raw)] {
        let _ = bus.jetstream().delete_stream(name).await;
    }
}
