//! Two stores on one file, as two processes would be: what each remembers of its own
//! commits (the in-memory tail and stream heads) never lets it skip the other's events or
//! write over them.

mod common;

use common::{event, new_stream};
use eventshop_core::{EventStore, ExpectedVersion, Position, StoreError};
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};

async fn two_stores_on_one_file() -> (tempfile::TempDir, SqliteEventStore, SqliteEventStore) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("shared.sqlite3");
    let first = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("opens");
    let second = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("opens again");
    (directory, first, second)
}

#[tokio::test]
async fn a_head_remembered_before_another_writer_appended_is_checked_against_the_file() {
    let (_directory, first, second) = two_stores_on_one_file().await;
    let stream = new_stream("account");
    first.append(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)]).await.expect("first writes v1");
    second.append(&stream, ExpectedVersion::Exact(1), vec![event("Deposited", 1)]).await.expect("second writes v2");

    // The first remembers version 1; the file says 2.
    let stale = first.append(&stream, ExpectedVersion::Exact(1), vec![event("Deposited", 2)]).await;
    assert!(matches!(stale, Err(StoreError::WrongExpectedVersion { .. })), "{stale:?}");
    let fresh = first.append(&stream, ExpectedVersion::Exact(2), vec![event("Deposited", 3)]).await;
    assert_eq!(fresh.expect("the file's version is accepted").version, 3);

    // `Any` on a stale head collides with the other writer's version once, then succeeds.
    second.append(&stream, ExpectedVersion::Exact(3), vec![event("Deposited", 4)]).await.expect("v4");
    let mut attempts = 0;
    let appended = loop {
        attempts += 1;
        match first.append(&stream, ExpectedVersion::Any, vec![event("Deposited", 5)]).await {
            Err(error) if error.is_conflict() && attempts < 3 => continue,
            other => break other.expect("appends"),
        };
    };
    assert_eq!(appended.version, 5);

    let versions: Vec<u64> =
        second.read_stream(&stream, 0).await.expect("reads").iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5], "no version written twice, none lost");
}

#[tokio::test]
async fn the_global_order_shows_the_other_writers_events() {
    let (_directory, first, second) = two_stores_on_one_file().await;
    first.append(&new_stream("a"), ExpectedVersion::Any, vec![event("Noted", 0)]).await.expect("appends");
    second.append(&new_stream("b"), ExpectedVersion::Any, vec![event("Noted", 1)]).await.expect("appends");
    first.append(&new_stream("a"), ExpectedVersion::Any, vec![event("Noted", 2)]).await.expect("appends");

    for store in [&first, &second] {
        let positions: Vec<u64> =
            store.read_all(Position::START, 10).await.expect("reads").iter().map(|e| e.position.0).collect();
        assert_eq!(positions, [1, 2, 3]);
        // A reader following from position 1 gets every later event, in order, whether
        // from memory or from the file.
        let mut followed = Vec::new();
        let mut position = Position(1);
        loop {
            let batch = store.read_all(position, 10).await.expect("reads");
            let Some(last) = batch.last() else { break };
            position = last.position;
            followed.extend(batch.iter().map(|e| e.position.0));
        }
        assert_eq!(followed, [2, 3]);
    }
}

#[tokio::test]
async fn a_refused_append_in_a_group_leaves_no_trace_in_memory() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteEventStore::open(directory.path().join("one.sqlite3"), SqliteStoreOptions::default())
        .await
        .expect("opens");
    let stream = new_stream("account");
    store.append(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)]).await.expect("v1");
    // Many appends race for version 2: one wins, in whatever group they commit.
    let racers = (0..16).map(|index| {
        let store = &store;
        let stream = stream.clone();
        async move { store.append(&stream, ExpectedVersion::Exact(1), vec![event("Deposited", index)]).await }
    });
    let results = futures::future::join_all(racers).await;
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1);
    let next = store.append(&stream, ExpectedVersion::Exact(2), vec![event("Deposited", 99)]).await;
    assert_eq!(next.expect("version 2 is the head").version, 3);
    assert_eq!(store.read_stream(&stream, 0).await.expect("reads").len(), 3);
    assert_eq!(store.read_all(Position::START, 10).await.expect("reads").len(), 3);
}
