//! What is acknowledged stays: a store closed and opened again holds the same events,
//! snapshot and checkpoint, and carries on where it stopped. Also checks that the file is
//! set up as promised (WAL, synchronous, foreign keys, busy timeout).

mod common;

use std::time::Duration;

use common::{events, new_stream};
use eventshop_core::{EventStore, ExpectedVersion, Payload, Position, ReadModelStore, Snapshot};
use sqlx::Row;
use store_sqlite::{SqliteEventStore, SqliteStoreOptions, Synchronous};

#[tokio::test]
async fn everything_survives_close_and_reopen() {
    let directory = tempfile::tempdir().expect("temporary directory");
    // Parent directories are created as needed.
    let path = directory.path().join("services").join("catalog").join("events.sqlite3");
    let stream = new_stream("durable");
    let snapshot = Snapshot {
        stream_id: stream.clone(),
        version: 2,
        schema_version: 1,
        state: Payload::from_value(&serde_json::json!({"total": 2})),
    };

    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("open");
    let first = store.append(&stream, ExpectedVersion::NoStream, events("Before", 3)).await.expect("append");
    store.save_snapshot(snapshot.clone()).await.expect("snapshot");
    let read_models = store.read_models();
    let mut transaction = read_models.begin().await.expect("begin");
    read_models.move_checkpoint(&mut transaction, "counter", Position::START, first.position).await.expect("move");
    read_models.commit(transaction).await.expect("commit");
    let written = store.read_all(Position::START, 100).await.expect("read");
    store.close().await;
    drop(store);

    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("reopen");
    assert_eq!(store.read_all(Position::START, 100).await.expect("read"), written);
    assert_eq!(store.head_position().await.expect("head"), first.position);
    assert_eq!(store.load_snapshot(&stream).await.expect("load"), Some(snapshot));
    assert_eq!(store.read_models().checkpoint("counter").await.expect("checkpoint"), first.position);

    let second = store.append(&stream, ExpectedVersion::Exact(3), events("After", 2)).await.expect("append");
    assert_eq!(second.version, 5);
    assert!(second.position > first.position, "positions carry on: {second:?} after {first:?}");
    let refused = store.append(&stream, ExpectedVersion::NoStream, events("Again", 1)).await;
    assert!(refused.is_err_and(|error| error.is_conflict()), "the stream's history is known after reopening");
}

/// Set in the child process of [`acknowledged_appends_survive_a_process_crash`].
const CRASH_CHILD_PATH: &str = "STORE_SQLITE_CRASH_CHILD_PATH";

#[tokio::test]
async fn acknowledged_appends_survive_a_process_crash() {
    // The child (this test binary, running `crashing_writer`) appends, reports each
    // acknowledged append on stdout, and aborts mid-stream: no close, no WAL checkpoint.
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("events.sqlite3");
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "crashing_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_PATH, &path)
        .output()
        .expect("the child runs");
    assert!(!output.status.success(), "the child aborted");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let acknowledged: Vec<u64> = stdout
        .lines()
        // libtest may print its "test crashing_writer ..." on the first report's line.
        .filter_map(|line| line.split_once("acknowledged ").map(|(_, position)| position))
        .map(|position| position.trim().parse().expect("a position"))
        .collect();
    assert_eq!(acknowledged.len(), 40, "the child appended before aborting: {stdout}");

    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("reopen");
    let positions: Vec<u64> =
        store.read_all(Position::START, 1000).await.expect("read").iter().map(|event| event.position.0).collect();
    for position in acknowledged {
        assert!(positions.contains(&position), "acknowledged position {position} was lost");
    }
}

#[tokio::test]
#[ignore = "run by acknowledged_appends_survive_a_process_crash in a child process"]
async fn crashing_writer() {
    let Some(path) = std::env::var_os(CRASH_CHILD_PATH) else {
        return;
    };
    let store = SqliteEventStore::open(&path, SqliteStoreOptions::default()).await.expect("open");
    let stream = new_stream("crash");
    for version in 0..40 {
        let result =
            store.append(&stream, ExpectedVersion::after(version), events("BeforeTheCrash", 1)).await.expect("append");
        println!("acknowledged {}", result.position);
    }
    std::process::abort();
}

async fn writer_pragma(store: &SqliteEventStore, pragma: &str) -> i64 {
    let read_models = store.read_models();
    let mut transaction = read_models.begin().await.expect("begin");
    let row = sqlx::query(&format!("PRAGMA {pragma}")).fetch_one(&mut *transaction).await.expect("pragma");
    row.try_get(0).expect("an integer")
}

#[tokio::test]
async fn the_file_is_set_up_as_promised() {
    let store = SqliteEventStore::temporary(SqliteStoreOptions::default()).await.expect("open");
    let journal_mode: String =
        sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.read_models().reader()).await.expect("journal mode");
    assert_eq!(journal_mode, "wal");
    assert_eq!(writer_pragma(&store, "synchronous").await, 2, "FULL by default");
    assert_eq!(writer_pragma(&store, "foreign_keys").await, 1);
    assert_eq!(writer_pragma(&store, "busy_timeout").await, 5000);

    let normal = SqliteStoreOptions::default()
        .with_synchronous(Synchronous::Normal)
        .with_busy_timeout(Duration::from_millis(1500));
    let store = SqliteEventStore::temporary(normal).await.expect("open");
    assert_eq!(writer_pragma(&store, "synchronous").await, 1, "NORMAL when asked");
    assert_eq!(writer_pragma(&store, "busy_timeout").await, 1500);
}

#[tokio::test]
async fn readers_cannot_write() {
    let store = SqliteEventStore::temporary(SqliteStoreOptions::default()).await.expect("open");
    let refused = sqlx::query("CREATE TABLE sneaky (id INTEGER)").execute(store.read_models().reader()).await;
    assert!(refused.is_err(), "the reader pool is read-only");
}
