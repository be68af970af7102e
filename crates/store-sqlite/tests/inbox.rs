//! The consumers' inbox on SQLite: an entry is written by the group-committing writer in
//! the same savepoint as the events it came with, so it survives with them, and in a group
//! a repeated or refused delivery fails alone while the others commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{event, events, new_stream, temporary_store};
use eventshop_core::consumer::{ConsumerStorage, DeadLetter};
use eventshop_core::{AppendResult, EventStore, ExpectedVersion, Position, ReadModelStore, StoreError, StreamAppend};
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};
use tokio::task::JoinHandle;
use uuid::Uuid;

const CONSUMER: &str = "inventory.reservations";

type Answer = Result<Vec<AppendResult>, StoreError>;

fn to_new_stream(event_type: &str, count: usize) -> StreamAppend {
    StreamAppend {
        stream_id: new_stream("effect"),
        expected: ExpectedVersion::NoStream,
        events: events(event_type, count),
    }
}

#[tokio::test]
async fn an_inbox_entry_and_its_events_survive_close_and_reopen() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("events.sqlite3");
    let source_event = Uuid::now_v7();
    let effect = to_new_stream("Reserved", 2);
    let stream = effect.stream_id.clone();

    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("open");
    let results = store.append_handled(CONSUMER, source_event, vec![effect]).await.expect("handled");
    assert_eq!(results, [AppendResult { version: 2, position: Position(2) }]);
    store.save_consumer_position(CONSUMER, Position(17)).await.expect("position");
    let recorded = store.read_stream(&stream, 0).await.expect("read");
    let letter = DeadLetter {
        id: Uuid::now_v7(),
        consumer: CONSUMER.to_owned(),
        event: recorded[0].clone(),
        reason: "the warehouse was unreachable".to_owned(),
        attempts: 5,
        parked_at: chrono::Utc::now(),
    };
    store.park(&letter).await.expect("park");
    store.close().await;
    drop(store);

    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("reopen");
    assert_eq!(store.read_stream(&stream, 0).await.expect("read"), recorded, "the effect is kept");
    let again = store.append_handled(CONSUMER, source_event, vec![to_new_stream("Reserved", 2)]).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyHandled { consumer, event_id })
            if consumer == CONSUMER && *event_id == source_event),
        "the inbox remembers after reopening: {again:?}"
    );
    assert_eq!(store.head_position().await.expect("head"), Position(2), "the repeat wrote nothing");
    assert_eq!(store.consumer_position(CONSUMER).await.expect("position"), Position(17));
    assert_eq!(store.dead_letters(Some(CONSUMER), 10).await.expect("dead letters"), [letter]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_of_handled_appends_answers_each_alone() {
    let store = Arc::new(temporary_store().await);
    let handled_before = Uuid::now_v7();
    store.append_handled(CONSUMER, handled_before, vec![to_new_stream("Seed", 1)]).await.expect("seed");
    let contested = new_stream("stock");
    store.append(&contested, ExpectedVersion::NoStream, vec![event("Restocked", 0)]).await.expect("seed");
    let before = store.writer_stats();

    // Hold the writer connection so that everything below queues up and is committed in
    // one group, the repeated deliveries of an event in the same transaction.
    let read_models = store.read_models();
    let blocker = read_models.begin().await.expect("begin");

    let handle = |source_event: Uuid, appends: Vec<StreamAppend>| -> JoinHandle<Answer> {
        let store = store.clone();
        tokio::spawn(async move { store.append_handled(CONSUMER, source_event, appends).await })
    };
    let fresh: Vec<_> = (0..10).map(|_| handle(Uuid::now_v7(), vec![to_new_stream("Fresh", 2)])).collect();
    let repeated_event = Uuid::now_v7();
    let repeated: Vec<_> = (0..6).map(|_| handle(repeated_event, vec![to_new_stream("Repeated", 1)])).collect();
    let quiet_event = Uuid::now_v7();
    let quiet: Vec<_> = (0..2).map(|_| handle(quiet_event, Vec::new())).collect();
    let already: Vec<_> = (0..3).map(|_| handle(handled_before, vec![to_new_stream("Already", 1)])).collect();
    let stale_event = Uuid::now_v7();
    let stale_append =
        StreamAppend { stream_id: contested.clone(), expected: ExpectedVersion::Exact(5), events: events("Stale", 1) };
    let stale = handle(stale_event, vec![stale_append]);
    let plain: Vec<_> = (0..4)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(&new_stream("plain"), ExpectedVersion::NoStream, vec![event("Plain", index)]).await
            })
        })
        .collect();

    let jobs = 10 + 6 + 2 + 3 + 1 + 4;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.writer_stats().appends_waiting < jobs {
        assert!(tokio::time::Instant::now() < deadline, "the appends never queued up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read_models.commit(blocker).await.expect("commit");

    for task in fresh {
        let results = task.await.expect("the task ran").expect("a first delivery commits");
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].version, 2);
    }
    assert_one_delivery_won(repeated_event, repeated).await;
    assert_one_delivery_won(quiet_event, quiet).await;
    for task in already {
        let refused = task.await.expect("the task ran");
        assert!(matches!(refused, Err(StoreError::AlreadyHandled { .. })), "got {refused:?}");
    }
    let refused = stale.await.expect("the task ran");
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "got {refused:?}");
    for task in plain {
        task.await.expect("the task ran").expect("a plain append commits");
    }

    let all = store.read_all(Position::START, 1000).await.expect("read_all");
    let expected_events = 2 + 10 * 2 + 1 + 4;
    assert_eq!(all.len(), expected_events, "only the seeds and the accepted appends are stored");
    let positions: Vec<u64> = all.iter().map(|event| event.position.0).collect();
    assert_eq!(positions, (1..=expected_events as u64).collect::<Vec<_>>(), "refusals leave no holes");
    assert_eq!(inbox_entries(&store).await, 1 + 10 + 1 + 1, "one entry per event handled");

    let after = store.writer_stats();
    assert_eq!(after.appends_committed - before.appends_committed, 10 + 1 + 1 + 4);
    let groups = after.groups_committed - before.groups_committed;
    assert!(groups < 10, "the queued appends shared transactions: {groups} groups for {jobs} appends");

    // The refused delivery left no inbox entry behind: a fresh decision is accepted.
    let fresh =
        StreamAppend { stream_id: contested.clone(), expected: ExpectedVersion::Exact(1), events: events("R", 1) };
    store.append_handled(CONSUMER, stale_event, vec![fresh]).await.expect("the retry is accepted");
    assert_eq!(store.read_stream(&contested, 0).await.expect("read").len(), 2);
}

/// Exactly one delivery of `source_event` had its effect; every other was told so.
async fn assert_one_delivery_won(source_event: Uuid, deliveries: Vec<JoinHandle<Answer>>) {
    let answers: Vec<Answer> =
        futures::future::join_all(deliveries).await.into_iter().map(|task| task.expect("the task ran")).collect();
    let winners = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(winners, 1, "one delivery of {source_event} has the effect: {answers:?}");
    for answer in answers.iter().filter(|answer| answer.is_err()) {
        assert!(
            matches!(answer, Err(StoreError::AlreadyHandled { event_id, .. }) if *event_id == source_event),
            "a repeat is told it was handled: {answer:?}"
        );
    }
}

async fn inbox_entries(store: &SqliteEventStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(store.read_models().reader()).await.expect("count")
}
