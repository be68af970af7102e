//! The cases. Each takes a fresh, empty store and panics on a violation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use eventshop_core::consumer::{ConsumerStorage, DeadLetter};
use eventshop_core::projection::{Projection, ProjectionError};
use eventshop_core::snapshot::SnapshotPolicy;
use eventshop_core::testing::{InMemoryReadModels, InMemoryTx};
use eventshop_core::{
    CatchUpSubscription, CommandHandler, EventStore, ExpectedVersion, Metadata, Position, ProjectionRunner,
    RecordedEvent, StoreError, StreamAppend, StreamId,
};
use uuid::Uuid;

use crate::fixtures::{Account, AccountCommand, event, events, label};

fn new_stream(category: &str) -> StreamId {
    StreamId::new(category, Uuid::now_v7())
}

async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 1000).await.expect("read_all");
        let Some(last) = page.last() else { return all };
        after = last.position;
        all.extend(page);
    }
}

pub async fn appends_to_a_new_stream(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let result = store.append(&stream, ExpectedVersion::NoStream, events("a", 3)).await.expect("append");
    let read = store.read_stream(&stream, 0).await.expect("read_stream");
    assert_eq!(read.len(), 3);
    assert_eq!(read.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(read.iter().map(label).collect::<Vec<_>>(), ["a-0", "a-1", "a-2"]);
    assert!(read.windows(2).all(|w| w[0].position < w[1].position), "positions grow within a stream");
    assert_eq!(result.version, 3);
    assert_eq!(result.position, read[2].position, "the result names the last event's position");
    assert!(read.iter().all(|e| e.stream_id == stream));
    assert_eq!(store.head_position().await.expect("head"), read[2].position);
}

pub async fn keeps_every_envelope_field(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let user = Uuid::now_v7();
    let mut new = event("fields");
    new.event_type = "PriceChanged".into();
    new.schema_version = 3;
    new.metadata = Metadata { correlation_id: Uuid::now_v7(), causation_id: Uuid::now_v7(), acting_user: Some(user) };
    // Unicode, nesting, numbers at the edges of f64 precision and a large body survive as written.
    let payload = serde_json::json!({
        "name": "Käse — 奶酪 🧀", "nested": {"list": [1, 2.5, null, true]}, "big": 9_007_199_254_740_991_i64,
        "text": "x".repeat(100_000),
    });
    new.payload = eventshop_core::Payload::from_value(&payload);
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    store.append(&stream, ExpectedVersion::Any, vec![new.clone()]).await.expect("append");
    let after = chrono::Utc::now() + chrono::Duration::seconds(5);

    let recorded = store.read_stream(&stream, 0).await.expect("read").remove(0);
    assert_eq!(recorded.event_id, new.event_id);
    assert_eq!(recorded.event_type, "PriceChanged");
    assert_eq!(recorded.schema_version, 3);
    assert_eq!(recorded.metadata(), new.metadata);
    assert_eq!(recorded.payload.to_value().expect("json"), payload);
    assert!(recorded.recorded_at > before && recorded.recorded_at < after, "recorded_at is the time of the append");
    assert_eq!(recorded.stream_version, 1);
    assert!(recorded.position > Position::START);
    let via_all = store.read_all(Position::START, 10).await.expect("read_all");
    assert_eq!(via_all, vec![recorded], "read_all and read_stream agree on every field");
}

pub async fn expected_version_no_stream(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    store.append(&stream, ExpectedVersion::NoStream, events("a", 1)).await.expect("first append");
    let refused = store.append(&stream, ExpectedVersion::NoStream, events("b", 1)).await;
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "got {refused:?}");
}

pub async fn expected_version_exact(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let refused = store.append(&stream, ExpectedVersion::Exact(1), events("a", 1)).await;
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "a missing stream is not at 1");
    store.append(&stream, ExpectedVersion::Exact(0), events("a", 2)).await.expect("exact 0 is no stream");
    for stale in [0, 1, 3] {
        let refused = store.append(&stream, ExpectedVersion::Exact(stale), events("b", 1)).await;
        assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "exact {stale} on version 2");
    }
    let result = store.append(&stream, ExpectedVersion::Exact(2), events("c", 1)).await.expect("exact 2");
    assert_eq!(result.version, 3);
}

pub async fn expected_version_any(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    assert_eq!(store.append(&stream, ExpectedVersion::Any, events("a", 2)).await.expect("any").version, 2);
    assert_eq!(store.append(&stream, ExpectedVersion::Any, events("b", 1)).await.expect("any").version, 3);
}

pub async fn a_refused_append_writes_nothing(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    store.append(&stream, ExpectedVersion::NoStream, events("a", 2)).await.expect("append");
    let head = store.head_position().await.expect("head");
    let refused = store.append(&stream, ExpectedVersion::Exact(1), events("b", 5)).await;
    assert!(refused.is_err());
    assert_eq!(store.read_stream(&stream, 0).await.expect("read").len(), 2);
    assert_eq!(store.head_position().await.expect("head"), head);
    assert_eq!(read_everything(&*store).await.len(), 2);
}

pub async fn reads_a_stream_after_a_version(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let other = new_stream("case");
    store.append(&stream, ExpectedVersion::Any, events("a", 3)).await.expect("append");
    store.append(&other, ExpectedVersion::Any, events("x", 2)).await.expect("append");
    store.append(&stream, ExpectedVersion::Any, events("b", 2)).await.expect("append");
    let tail = store.read_stream(&stream, 3).await.expect("read");
    assert_eq!(tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(tail.iter().map(label).collect::<Vec<_>>(), ["b-0", "b-1"]);
    assert!(store.read_stream(&stream, 5).await.expect("read").is_empty());
    assert!(store.read_stream(&new_stream("case"), 0).await.expect("read").is_empty());
}

pub async fn appends_to_several_streams_atomically(store: Arc<dyn EventStore>) {
    let (first, second, third) = (new_stream("stock"), new_stream("stock"), new_stream("stock"));
    store.append(&second, ExpectedVersion::Any, events("restock", 1)).await.expect("append");

    // One wrong expectation refuses the whole batch.
    let refused = store
        .append_many(vec![
            StreamAppend { stream_id: first.clone(), expected: ExpectedVersion::NoStream, events: events("r", 1) },
            StreamAppend { stream_id: second.clone(), expected: ExpectedVersion::Exact(7), events: events("r", 1) },
        ])
        .await;
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { ref stream_id, .. }) if *stream_id == second));
    assert!(store.read_stream(&first, 0).await.expect("read").is_empty(), "nothing of a refused batch is written");

    let results = store
        .append_many(vec![
            StreamAppend { stream_id: first.clone(), expected: ExpectedVersion::NoStream, events: events("r1", 2) },
            StreamAppend { stream_id: second.clone(), expected: ExpectedVersion::Exact(1), events: events("r2", 1) },
            StreamAppend { stream_id: third.clone(), expected: ExpectedVersion::Any, events: events("r3", 3) },
        ])
        .await
        .expect("append_many");
    assert_eq!(results.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 2, 3]);
    let all = read_everything(&*store).await;
    assert_eq!(all.len(), 7);
    for (stream, result) in [(&first, results[0]), (&second, results[1]), (&third, results[2])] {
        let last = store.read_stream(stream, 0).await.expect("read").pop().expect("events");
        assert_eq!(last.position, result.position);
    }
}

pub async fn refuses_malformed_appends(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let empty = store.append(&stream, ExpectedVersion::Any, vec![]).await;
    assert!(matches!(empty, Err(StoreError::InvalidAppend(_))), "got {empty:?}");
    let none = store.append_many(vec![]).await;
    assert!(matches!(none, Err(StoreError::InvalidAppend(_))), "got {none:?}");
    let twice = store
        .append_many(vec![
            StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Any, events: events("a", 1) },
            StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Any, events: events("b", 1) },
        ])
        .await;
    assert!(matches!(twice, Err(StoreError::InvalidAppend(_))), "got {twice:?}");
    assert_eq!(store.head_position().await.expect("head"), Position::START);
}

pub async fn refuses_a_duplicate_event_id(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    let original = event("once");
    store.append(&stream, ExpectedVersion::Any, vec![original.clone()]).await.expect("append");
    let again = store.append(&new_stream("case"), ExpectedVersion::Any, vec![event("x"), original.clone()]).await;
    assert!(matches!(again, Err(StoreError::DuplicateEvent(id)) if id == original.event_id), "got {again:?}");
    assert_eq!(read_everything(&*store).await.len(), 1, "nothing of the refused append is written");
    let twice_in_one = event("twice");
    let repeated = store
        .append_many(vec![
            StreamAppend {
                stream_id: new_stream("case"),
                expected: ExpectedVersion::Any,
                events: vec![twice_in_one.clone()],
            },
            StreamAppend {
                stream_id: new_stream("case"),
                expected: ExpectedVersion::Any,
                events: vec![twice_in_one.clone()],
            },
        ])
        .await;
    assert!(matches!(repeated, Err(StoreError::DuplicateEvent(id)) if id == twice_in_one.event_id), "got {repeated:?}");
    assert_eq!(read_everything(&*store).await.len(), 1, "an id named twice in one request writes nothing");
}

pub async fn reads_all_in_global_order_in_pages(store: Arc<dyn EventStore>) {
    let streams: Vec<_> = (0..5).map(|_| new_stream("case")).collect();
    for round in 0..4 {
        for (index, stream) in streams.iter().enumerate() {
            store.append(stream, ExpectedVersion::Any, events(&format!("{index}.{round}"), 2)).await.expect("append");
        }
    }
    let mut pages = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 7).await.expect("read_all");
        assert!(page.len() <= 7, "the limit is honoured");
        let Some(last) = page.last() else { break };
        after = last.position;
        pages.extend(page);
    }
    assert_eq!(pages.len(), 40);
    assert!(pages.windows(2).all(|w| w[0].position < w[1].position), "strictly increasing positions");
    assert_eq!(pages.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), 40);
    let expected_order: Vec<String> =
        (0..4).flat_map(|round| (0..5).flat_map(move |s| (0..2).map(move |i| format!("{s}.{round}-{i}")))).collect();
    assert_eq!(pages.iter().map(label).collect::<Vec<_>>(), expected_order, "global order is append order");
    assert_eq!(store.head_position().await.expect("head"), pages[39].position);
}

pub async fn an_empty_store_reads_nothing(store: Arc<dyn EventStore>) {
    assert!(store.read_all(Position::START, 100).await.expect("read_all").is_empty());
    assert_eq!(store.head_position().await.expect("head"), Position::START);
    assert!(store.load_snapshot(&new_stream("case")).await.expect("snapshot").is_none());
}

pub async fn only_one_of_racing_writers_wins(store: Arc<dyn EventStore>) {
    for round in 0..5 {
        let stream = new_stream("race");
        let racers = (0..8).map(|racer| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::NoStream, events(&format!("{round}.{racer}"), 2)).await
            })
        });
        let results = futures::future::join_all(racers).await;
        let mut winners = 0;
        for result in results {
            match result.expect("task") {
                Ok(_) => winners += 1,
                Err(StoreError::WrongExpectedVersion { .. }) => {}
                Err(other) => panic!("a losing writer must see a version conflict, got {other}"),
            }
        }
        assert_eq!(winners, 1, "exactly one writer appends version 1");
        let stored = store.read_stream(&stream, 0).await.expect("read");
        assert_eq!(stored.iter().map(|e| e.stream_version).collect::<Vec<_>>(), [1, 2]);
        let labels: HashSet<_> =
            stored.iter().map(|e| label(e).split('-').next().unwrap_or_default().to_owned()).collect();
        assert_eq!(labels.len(), 1, "both events come from the same winner");
    }
}

pub async fn concurrent_appends_with_any_version_lose_nothing(store: Arc<dyn EventStore>) {
    let stream = new_stream("busy");
    let writers = (0..8).map(|writer| {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                store.append(&stream, ExpectedVersion::Any, events(&format!("{writer}.{i}"), 1)).await.expect("append");
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("writer");
    }
    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.iter().map(|e| e.stream_version).collect::<Vec<_>>(), (1..=160).collect::<Vec<_>>());
}

/// The gap-safety proof: many writers commit in whatever order the scheduler picks, some
/// lose version races (so their positions are never used), and a reader that resumes
/// from the last position it saw must still see every committed event exactly once, in
/// global order, and each stream's events in version order.
pub async fn tailing_reader_sees_every_event_once_in_order(store: Arc<dyn EventStore>) {
    const WRITERS: usize = 8;
    const APPENDS_PER_WRITER: usize = 60;
    let shared = new_stream("shared");
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, shared) = (store.clone(), shared.clone());
            tokio::spawn(async move {
                let own = new_stream("own");
                let mut committed = Vec::new();
                for i in 0..APPENDS_PER_WRITER {
                    let batch = events(&format!("{writer}.{i}"), 1 + i % 3);
                    let ids: Vec<_> = batch.iter().map(|e| e.event_id).collect();
                    let outcome = match i % 4 {
                        // Racing on one stream with exact versions: losers leave unused positions behind.
                        0 | 1 => {
                            let version = store.read_stream(&shared, 0).await.expect("read").len() as u64;
                            store.append(&shared, ExpectedVersion::after(version), batch).await
                        }
                        2 => store.append(&own, ExpectedVersion::Any, batch).await,
                        _ => {
                            let extra = events(&format!("{writer}.{i}.extra"), 1);
                            let extra_ids: Vec<_> = extra.iter().map(|e| e.event_id).collect();
                            let outcome = store
                                .append_many(vec![
                                    StreamAppend {
                                        stream_id: own.clone(),
                                        expected: ExpectedVersion::Any,
                                        events: batch,
                                    },
                                    StreamAppend {
                                        stream_id: new_stream("other"),
                                        expected: ExpectedVersion::NoStream,
                                        events: extra,
                                    },
                                ])
                                .await;
                            if outcome.is_ok() {
                                committed.extend(extra_ids);
                            }
                            outcome.map(|mut results| results.remove(0))
                        }
                    };
                    match outcome {
                        Ok(_) => committed.extend(ids),
                        Err(StoreError::WrongExpectedVersion { .. }) => {}
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
                committed
            })
        })
        .collect();

    let reader_store = store.clone();
    let (done_sender, mut done) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut seen: Vec<RecordedEvent> = Vec::new();
        let mut after = Position::START;
        loop {
            let finished = *done.borrow_and_update();
            let page = reader_store.read_all(after, 100).await.expect("read_all");
            match page.last() {
                Some(last) => after = last.position,
                None if finished => return seen,
                None => {
                    let _ = tokio::time::timeout(Duration::from_millis(5), done.changed()).await;
                }
            }
            seen.extend(page);
        }
    });

    let mut committed = HashSet::new();
    for writer in futures::future::join_all(writers).await {
        committed.extend(writer.expect("writer"));
    }
    done_sender.send(true).expect("reader is alive");
    let seen = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("reader finishes").expect("reader");

    assert!(seen.windows(2).all(|w| w[0].position < w[1].position), "global order is strictly increasing");
    let seen_ids: Vec<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.iter().collect::<HashSet<_>>().len(), seen_ids.len(), "no event seen twice");
    assert_eq!(seen_ids.iter().copied().collect::<HashSet<_>>(), committed, "every committed event seen");
    let mut versions: HashMap<&StreamId, u64> = HashMap::new();
    for event in &seen {
        let last = versions.entry(&event.stream_id).or_insert(0);
        assert_eq!(event.stream_version, *last + 1, "stream {} read out of order", event.stream_id);
        *last = event.stream_version;
    }
    assert!(versions[&shared] > 1, "the shared stream saw contention and still progressed");
}

pub async fn keeps_the_newest_snapshot(store: Arc<dyn EventStore>) {
    use eventshop_core::{Payload, Snapshot};
    let stream = new_stream("case");
    let snapshot = |version: u64| Snapshot {
        stream_id: stream.clone(),
        version,
        schema_version: 1,
        state: Payload::from_value(&serde_json::json!({ "at": version })),
    };
    store.save_snapshot(snapshot(10)).await.expect("save");
    store.save_snapshot(snapshot(20)).await.expect("save");
    store.save_snapshot(snapshot(15)).await.expect("an older snapshot is accepted and ignored");
    let loaded = store.load_snapshot(&stream).await.expect("load").expect("a snapshot");
    assert_eq!(loaded, snapshot(20));
}

pub async fn wakes_waiters_on_append(store: Arc<dyn EventStore>) {
    let head = store.head_position().await.expect("head");
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_for_events(head, Duration::from_secs(3600)).await })
    };
    tokio::task::yield_now().await;
    store.append(&new_stream("case"), ExpectedVersion::Any, events("wake", 1)).await.expect("append");
    tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("an append wakes the waiter").expect("task");
}

pub async fn catch_up_subscription_follows_live_appends(store: Arc<dyn EventStore>) {
    let stream = new_stream("case");
    store.append(&stream, ExpectedVersion::Any, events("history", 3)).await.expect("append");
    let mut subscription = CatchUpSubscription::new(store.clone(), Position::START).with_batch_size(2);
    let mut received = Vec::new();
    while received.len() < 3 {
        received.extend(subscription.next_batch().await.expect("batch"));
    }
    let writer = {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move {
            for i in 0..3 {
                store.append(&stream, ExpectedVersion::Any, events(&format!("live{i}"), 1)).await.expect("append");
            }
        })
    };
    while received.len() < 6 {
        let batch = tokio::time::timeout(Duration::from_secs(30), subscription.next_batch()).await;
        received.extend(batch.expect("live events arrive").expect("batch"));
    }
    writer.await.expect("writer");
    let labels: Vec<_> = received.iter().map(label).collect();
    assert_eq!(labels, ["history-0", "history-1", "history-2", "live0-0", "live1-0", "live2-0"]);
    assert_eq!(subscription.position(), received[5].position);
}

pub async fn command_handler_retries_conflicts(store: Arc<dyn EventStore>) {
    let account = Uuid::now_v7();
    let opener = CommandHandler::<Account>::new(store.clone());
    opener
        .execute(account, &AccountCommand::Open { owner: "ada".into() }, Metadata::new_transaction(None))
        .await
        .expect("open");
    // Several handlers, each with its own (soon stale) cache, deposit concurrently.
    let depositors = (0..4).map(|_| {
        let handler = CommandHandler::<Account>::new(store.clone()).with_max_attempts(200);
        tokio::spawn(async move {
            for _ in 0..10 {
                let deposit = AccountCommand::Deposit { amount: 5 };
                handler.execute(account, &deposit, Metadata::new_transaction(None)).await.expect("deposit");
            }
        })
    });
    for depositor in futures::future::join_all(depositors).await {
        depositor.expect("depositor");
    }
    let loaded = CommandHandler::<Account>::new(store.clone()).load(account).await.expect("load");
    assert_eq!(loaded.version, 41);
    assert_eq!(loaded.state.balance, 200, "every deposit counted once");
    // A refused command appends nothing.
    let overdraft =
        opener.execute(account, &AccountCommand::Withdraw { amount: 201 }, Metadata::new_transaction(None)).await;
    assert!(matches!(overdraft, Err(eventshop_core::CommandError::Domain(_))));
    assert_eq!(store.read_stream(&CommandHandler::<Account>::stream_id(account), 0).await.expect("read").len(), 41);
}

pub async fn snapshot_load_equals_full_replay(store: Arc<dyn EventStore>) {
    for every in [1, 2, 3, 7] {
        let account = Uuid::now_v7();
        let writer = CommandHandler::<Account>::new(store.clone())
            .with_snapshots(SnapshotPolicy::Every(every))
            .with_cache_capacity(0);
        writer
            .execute(account, &AccountCommand::Open { owner: "ada".into() }, Metadata::new_transaction(None))
            .await
            .expect("open");
        for step in 0..30_i64 {
            let command = if step % 4 == 3 {
                AccountCommand::Withdraw { amount: step }
            } else {
                AccountCommand::Deposit { amount: step + 1 }
            };
            // Refusals are part of the history being tested: they change nothing.
            let _ = writer.execute(account, &command, Metadata::new_transaction(None)).await;
        }
        let with_snapshot = CommandHandler::<Account>::new(store.clone())
            .with_snapshots(SnapshotPolicy::Every(every))
            .with_cache_capacity(0)
            .load(account)
            .await
            .expect("load with snapshot");
        let replayed =
            CommandHandler::<Account>::new(store.clone()).with_cache_capacity(0).load(account).await.expect("replay");
        assert_eq!(with_snapshot.version, replayed.version);
        assert_eq!(with_snapshot.state, replayed.state, "snapshot every {every}");
        let snapshot = store.load_snapshot(&CommandHandler::<Account>::stream_id(account)).await.expect("load");
        assert!(snapshot.is_some_and(|s| s.version > 0 && s.version <= replayed.version));
    }
}

/// Counts events per type and collects the labels in order.
struct Tally;

type TallyState = BTreeMap<String, Vec<String>>;

#[async_trait::async_trait]
impl Projection for Tally {
    type Tx = InMemoryTx<TallyState>;

    fn name(&self) -> &str {
        "tally"
    }

    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        tx.state.entry(event.stream_id.category().to_owned()).or_default().push(label(event));
        Ok(())
    }

    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        tx.state.clear();
        Ok(())
    }
}

pub async fn projection_rebuild_reproduces_the_read_model(store: Arc<dyn EventStore>) {
    for (category, count) in [("red", 3), ("blue", 250), ("red", 4)] {
        store.append(&new_stream(category), ExpectedVersion::Any, events(category, count)).await.expect("append");
    }
    let read_models = InMemoryReadModels::<TallyState>::new();
    let runner = ProjectionRunner::new(Tally, read_models.clone(), store.clone()).with_batch_size(64);
    let head = store.head_position().await.expect("head");
    assert_eq!(runner.catch_up().await.expect("catch up"), head);
    assert_eq!(runner.lag().await.expect("lag"), 0);
    let built = read_models.state();
    assert_eq!(built["blue"].len(), 250);
    assert_eq!(built["red"].len(), 7);

    let mut progress = Vec::new();
    let rebuilt_to = runner.rebuild(|position, _head| progress.push(position)).await.expect("rebuild");
    assert_eq!(rebuilt_to, head);
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress only moves forward");
    assert_eq!(read_models.state(), built, "a rebuild gives exactly the same read model");
}

pub async fn records_a_handled_event_once(store: Arc<dyn EventStore>) {
    let source_event = Uuid::now_v7();
    let effect =
        || StreamAppend { stream_id: new_stream("effect"), expected: ExpectedVersion::Any, events: events("e", 2) };
    let results = store.append_handled("inventory.reservations", source_event, vec![effect()]).await.expect("first");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].version, 2);
    let again = store.append_handled("inventory.reservations", source_event, vec![effect()]).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyHandled { consumer, event_id })
            if consumer == "inventory.reservations" && *event_id == source_event),
        "got {again:?}"
    );
    assert_eq!(read_everything(&*store).await.len(), 2, "the repeat wrote nothing");
    // Another consumer of the same event is a different inbox entry; doing nothing is
    // recorded too.
    assert!(store.append_handled("shipping.shipments", source_event, vec![]).await.expect("empty").is_empty());
    let nothing_again = store.append_handled("shipping.shipments", source_event, vec![]).await;
    assert!(matches!(nothing_again, Err(StoreError::AlreadyHandled { .. })), "got {nothing_again:?}");
}

pub async fn a_refused_handled_append_records_nothing(store: Arc<dyn EventStore>) {
    let source_event = Uuid::now_v7();
    let stream = new_stream("stock");
    store.append(&stream, ExpectedVersion::Any, events("restock", 1)).await.expect("append");
    let stale = StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Exact(5), events: events("r", 1) };
    let refused = store.append_handled("inventory.reservations", source_event, vec![stale]).await;
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "got {refused:?}");
    // The event was not recorded as handled, so the consumer can decide again.
    let fresh = StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Exact(1), events: events("r", 1) };
    store.append_handled("inventory.reservations", source_event, vec![fresh]).await.expect("the retry is accepted");
    assert_eq!(store.read_stream(&stream, 0).await.expect("read").len(), 2);
}

pub async fn racing_deliveries_of_one_event_record_it_once(store: Arc<dyn EventStore>) {
    let source_event = Uuid::now_v7();
    let racers = (0..8).map(|racer| {
        let store = store.clone();
        tokio::spawn(async move {
            let effect = StreamAppend {
                stream_id: new_stream("effect"),
                expected: ExpectedVersion::NoStream,
                events: events(&format!("racer{racer}"), 1),
            };
            store.append_handled("notifications.orders", source_event, vec![effect]).await
        })
    });
    let mut recorded = 0;
    for result in futures::future::join_all(racers).await {
        match result.expect("task") {
            Ok(_) => recorded += 1,
            Err(StoreError::AlreadyHandled { .. }) => {}
            Err(other) => panic!("a repeated delivery must be told it was handled, got {other}"),
        }
    }
    assert_eq!(recorded, 1, "one delivery has the effect");
    assert_eq!(read_everything(&*store).await.len(), 1);
}

pub async fn keeps_consumer_positions(storage: Arc<dyn ConsumerStorage>) {
    assert_eq!(storage.consumer_position("orders.payments").await.expect("position"), Position::START);
    storage.save_consumer_position("orders.payments", Position(42)).await.expect("save");
    storage.save_consumer_position("orders.stock", Position(7)).await.expect("save");
    storage.save_consumer_position("orders.payments", Position(43)).await.expect("save");
    assert_eq!(storage.consumer_position("orders.payments").await.expect("position"), Position(43));
    assert_eq!(storage.consumer_position("orders.stock").await.expect("position"), Position(7));
}

fn dead_letter(consumer: &str, stream: &StreamId, version: u64, reason: &str) -> DeadLetter {
    let new = event(&format!("{stream}@{version}"));
    DeadLetter {
        id: Uuid::now_v7(),
        consumer: consumer.to_owned(),
        event: RecordedEvent {
            event_id: new.event_id,
            stream_id: stream.clone(),
            stream_version: version,
            position: Position(version * 10),
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: chrono::Utc::now(),
            correlation_id: new.metadata.correlation_id,
            causation_id: new.metadata.causation_id,
            acting_user: Some(Uuid::now_v7()),
            payload: new.payload,
        },
        reason: reason.to_owned(),
        attempts: if version == 1 { 5 } else { 0 },
        parked_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
    }
}

pub async fn keeps_dead_letters_in_stream_order(storage: Arc<dyn ConsumerStorage>) {
    let (blocked, other) = (new_stream("order"), new_stream("order"));
    let first = dead_letter("inventory.reservations", &blocked, 1, "database unavailable");
    let second = dead_letter("inventory.reservations", &blocked, 2, "waiting behind");
    let elsewhere = dead_letter("inventory.reservations", &other, 4, "bad payload");
    let foreign = dead_letter("shipping.shipments", &blocked, 1, "another consumer");
    for letter in [&first, &second, &elsewhere, &foreign] {
        storage.park(letter).await.expect("park");
    }
    let mine = storage.dead_letters(Some("inventory.reservations"), 100).await.expect("list");
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[0], first, "every field is kept, oldest first");
    assert_eq!(storage.dead_letters(None, 100).await.expect("all").len(), 4);
    assert_eq!(storage.dead_letters(None, 2).await.expect("limited").len(), 2);

    let of_stream = storage.stream_dead_letters("inventory.reservations", &blocked).await.expect("stream");
    assert_eq!(of_stream.iter().map(|letter| letter.id).collect::<Vec<_>>(), [first.id, second.id]);
    let mut blocked_streams = storage.blocked_streams("inventory.reservations").await.expect("blocked");
    blocked_streams.sort();
    let mut expected = vec![blocked.clone(), other.clone()];
    expected.sort();
    assert_eq!(blocked_streams, expected);

    storage.update_dead_letter(first.id, "still unavailable", 6).await.expect("update");
    let updated = storage.stream_dead_letters("inventory.reservations", &blocked).await.expect("stream");
    assert_eq!((updated[0].reason.as_str(), updated[0].attempts), ("still unavailable", 6));

    assert!(storage.remove_dead_letter(first.id).await.expect("remove"));
    assert!(!storage.remove_dead_letter(first.id).await.expect("remove twice"), "nothing left to remove");
    storage.remove_dead_letter(second.id).await.expect("remove");
    assert_eq!(storage.blocked_streams("inventory.reservations").await.expect("blocked"), vec![other]);
    assert_eq!(storage.blocked_streams("shipping.shipments").await.expect("blocked"), vec![blocked]);
}
