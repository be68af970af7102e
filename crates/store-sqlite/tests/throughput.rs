//! Measurements behind two decisions, ignored by default because they time the disk:
//! group commit (many small concurrent appends) and the `json_valid` CHECK on payloads.
//!
//! `cargo test --release -p store-sqlite --test throughput -- --ignored --nocapture`

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, new_stream, temporary_store_with};
use eventshop_core::{EventStore, ExpectedVersion};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use store_sqlite::{SqliteStoreOptions, Synchronous};

const TASKS: usize = 8;
const APPENDS_PER_TASK: usize = 250;

/// `TASKS` tasks each appending `APPENDS_PER_TASK` single events to streams of their own.
async fn concurrent_single_event_appends(options: SqliteStoreOptions) -> (Duration, u64) {
    let store = Arc::new(temporary_store_with(options).await);
    let started = Instant::now();
    let tasks = (0..TASKS).map(|task| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = new_stream("throughput");
            for version in 0..APPENDS_PER_TASK {
                store
                    .append(&stream, ExpectedVersion::after(version as u64), vec![event("Measured", task)])
                    .await
                    .expect("append");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.expect("the task ran");
    }
    (started.elapsed(), store.writer_stats().groups_committed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn group_commit_throughput() {
    let appends = TASKS * APPENDS_PER_TASK;
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        for max_group_commit in [1, 256] {
            let options =
                SqliteStoreOptions::default().with_synchronous(synchronous).with_max_group_commit(max_group_commit);
            let (elapsed, groups) = concurrent_single_event_appends(options).await;
            println!(
                "synchronous={synchronous:?} max_group_commit={max_group_commit}: {appends} appends from {TASKS} tasks \
                 in {elapsed:.2?} = {:.0} appends/s, {groups} transactions",
                appends as f64 / elapsed.as_secs_f64(),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn json_valid_check_cost() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = SqliteConnectOptions::new()
        .filename(directory.path().join("json.sqlite3"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut connection = SqliteConnection::connect_with(&options).await.expect("connect");
    let rows = 50_000;
    let payload = serde_json::json!({
        "sku": "SKU-123456", "name": "Käse — 奶酪", "price": {"amount": 1999, "currency": "EUR"},
        "lines": (0..10).map(|line| serde_json::json!({"line": line, "quantity": 2, "note": "x".repeat(40)})).collect::<Vec<_>>(),
    })
    .to_string();
    println!("payload of {} bytes, {rows} rows in one transaction, best of 3", payload.len());
    for check in ["", "CHECK (json_valid(payload))"] {
        let mut best = Duration::MAX;
        for round in 0..3 {
            let table = format!("payloads_{}_{round}", if check.is_empty() { "plain" } else { "checked" });
            sqlx::query(&format!(
                "CREATE TABLE {table} (id INTEGER PRIMARY KEY, payload TEXT NOT NULL {check}) STRICT"
            ))
            .execute(&mut connection)
            .await
            .expect("create");
            let started = Instant::now();
            let mut transaction = connection.begin().await.expect("begin");
            for _ in 0..rows {
                sqlx::query(&format!("INSERT INTO {table} (payload) VALUES (?)"))
                    .bind(&payload)
                    .execute(&mut *transaction)
                    .await
                    .expect("insert");
            }
            transaction.commit().await.expect("commit");
            best = best.min(started.elapsed());
        }
        let label = if check.is_empty() { "without CHECK" } else { "with json_valid CHECK" };
        println!("{label}: {best:.2?} = {:.1} µs per row", best.as_secs_f64() * 1e6 / f64::from(rows));
    }
}
