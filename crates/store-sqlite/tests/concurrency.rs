//! Many tasks appending at once through the single group-committing writer: every version
//! of a stream is won exactly once, and in a group a refused append fails alone while the
//! others commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{event, events, new_stream, temporary_store, temporary_store_with};
use eventshop_core::{EventStore, ExpectedVersion, Position, ReadModelStore, StoreError, Version};
use store_sqlite::SqliteStoreOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_win_each_version_exactly_once() {
    let store = Arc::new(temporary_store().await);
    let stream = new_stream("race");
    let writers = 8;
    let rounds: Version = 20;

    for version in 0..rounds {
        let attempts = (0..writers).map(|writer| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store.append(&stream, ExpectedVersion::after(version), vec![event("Raced", writer)]).await
            })
        });
        let outcomes = futures::future::join_all(attempts).await;
        let mut winners = 0;
        for outcome in outcomes {
            match outcome.expect("the task ran") {
                Ok(result) => {
                    winners += 1;
                    assert_eq!(result.version, version + 1);
                }
                Err(error) => assert!(error.is_conflict(), "a loser is told of the conflict: {error}"),
            }
        }
        assert_eq!(winners, 1, "exactly one writer wins version {}", version + 1);
    }

    let stored = store.read_stream(&stream, 0).await.expect("read");
    let versions: Vec<Version> = stored.iter().map(|event| event.stream_version).collect();
    assert_eq!(versions, (1..=rounds).collect::<Vec<_>>(), "no version twice, none missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_commits_the_good_appends_and_refuses_the_bad_alone() {
    let store = Arc::new(temporary_store().await);
    let contested = new_stream("contested");
    let taken = events("AlreadyThere", 1);
    store.append(&contested, ExpectedVersion::NoStream, taken.clone()).await.expect("seed");
    let before = store.writer_stats();

    // Hold the writer connection in a read-model transaction so that the appends below
    // queue up behind it and are committed in as few groups as possible.
    let read_models = store.read_models();
    let blocker = read_models.begin().await.expect("begin");

    let mut good = Vec::new();
    let mut conflicting = Vec::new();
    let mut duplicates = Vec::new();
    for index in 0..60 {
        let store = store.clone();
        match index % 3 {
            0 => {
                let stream = new_stream("fresh");
                good.push(tokio::spawn(async move {
                    let result = store.append(&stream, ExpectedVersion::NoStream, events("Good", 2)).await;
                    (stream, result)
                }));
            }
            1 => {
                let contested = contested.clone();
                conflicting.push(tokio::spawn(async move {
                    store.append(&contested, ExpectedVersion::NoStream, vec![event("Conflicting", index)]).await
                }));
            }
            _ => {
                let stream = new_stream("duplicate");
                let stored_id = taken[0].clone();
                duplicates.push(tokio::spawn(async move {
                    store.append(&stream, ExpectedVersion::Any, vec![event("New", index), stored_id]).await
                }));
            }
        }
    }
    // Let every task enqueue before the writer gets its connection back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.writer_stats().appends_waiting < 60 {
        assert!(tokio::time::Instant::now() < deadline, "the appends never queued up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read_models.commit(blocker).await.expect("commit");

    let mut good_streams = Vec::new();
    for task in good {
        let (stream, result) = task.await.expect("the task ran");
        let result = result.expect("a good append commits");
        assert_eq!(result.version, 2);
        let stored = store.read_stream(&stream, 0).await.expect("read");
        assert_eq!(stored.len(), 2);
        assert_eq!(result.position, stored[1].position, "the result names the last event's position");
        good_streams.push(stream);
    }
    for task in conflicting {
        let refused = task.await.expect("the task ran");
        assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { .. })), "got {refused:?}");
    }
    for task in duplicates {
        let refused = task.await.expect("the task ran");
        assert!(matches!(refused, Err(StoreError::DuplicateEvent(id)) if id == taken[0].event_id), "got {refused:?}");
    }

    let all = store.read_all(Position::START, 1000).await.expect("read_all");
    assert_eq!(all.len(), 1 + 20 * 2, "only the seed and the good appends are stored");
    assert!(all.iter().all(|event| event.event_type == "AlreadyThere" || event.event_type == "Good"));
    let positions: Vec<u64> = all.iter().map(|event| event.position.0).collect();
    assert_eq!(positions, (1..=41).collect::<Vec<_>>(), "rolled-back savepoints leave no holes");
    assert_eq!(store.read_stream(&contested, 0).await.expect("read").len(), 1);

    let after = store.writer_stats();
    assert_eq!(after.appends_committed - before.appends_committed, 20);
    let groups = after.groups_committed - before.groups_committed;
    assert!(groups < 20, "the queued appends shared transactions: {groups} groups for 60 appends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_with_any_version_from_many_tasks_lose_nothing() {
    let store = Arc::new(temporary_store_with(SqliteStoreOptions::default().with_max_group_commit(16)).await);
    let stream = new_stream("busy");
    let tasks = (0..8).map(|task| {
        let store = store.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            for index in 0..25 {
                store
                    .append(&stream, ExpectedVersion::Any, vec![event("Any", task * 100 + index)])
                    .await
                    .expect("append");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.expect("the task ran");
    }
    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.len(), 200);
    assert!(stored.iter().enumerate().all(|(index, event)| event.stream_version == index as Version + 1));
    assert!(stored.windows(2).all(|pair| pair[0].position < pair[1].position), "version order is position order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_append_is_split_into_several_inserts() {
    // More events than one INSERT can carry (32766 parameters / 10 per event).
    let store = temporary_store().await;
    let stream = new_stream("large");
    let result = store.append(&stream, ExpectedVersion::NoStream, events("Bulk", 7_000)).await.expect("append");
    assert_eq!(result.version, 7_000);
    assert_eq!(result.position, Position(7_000));
    let stored = store.read_stream(&stream, 6_990).await.expect("read");
    assert_eq!(stored.len(), 10);
    assert_eq!(stored[9].position, result.position);
}
