//! eventshop's SQLite event store next to raw sqlx on the same disk, in the same run.
//!
//! `cargo bench -p benchmarks --bench sqlite`. Both the store and the baseline use a file
//! in a fresh temporary directory, WAL and `synchronous = FULL` (the store's default
//! options): every commit waits for an fsync.

mod common;

use std::sync::Arc;

use benchmarks::harness::{Scale, runtime};
use benchmarks::projection::{SQLITE_TABLE_SQL, SqliteEventLog};
use benchmarks::sqlite::{RAW_REBUILD_TABLES_SQL, RawEvents};
use common::{Analyze, Backend, Rebuild, seed};
use criterion::{Criterion, criterion_group, criterion_main};
use eventshop_core::ProjectionRunner;
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};

fn sqlite(c: &mut Criterion) {
    let scale = Scale::from_args();
    let rt = runtime();
    let directory = tempfile::Builder::new().prefix("eventshop-bench-").tempdir().expect("a temporary directory");
    let backend = rt.block_on(set_up(directory.path(), scale));
    common::run_suite(c, &rt, &backend, scale);
}

async fn set_up(directory: &std::path::Path, scale: Scale) -> Backend {
    let store_path = directory.join("writes.sqlite3");
    let store = SqliteEventStore::open(&store_path, SqliteStoreOptions::default()).await.expect("opening the store");
    let raw = RawEvents::create(&directory.join("raw.sqlite3")).await.expect("creating the baseline");
    eprintln!(
        "sqlite {}: synchronous = {} (2 = FULL), journal_mode = WAL",
        raw.sqlite_version().await.expect("sqlite_version()"),
        raw.synchronous().await.expect("pragma")
    );
    let raw_on_store = RawEvents::open_existing(&store_path, "events").await.expect("opening the store's file");

    let read_path = directory.join("read.sqlite3");
    let read_store =
        Arc::new(SqliteEventStore::open(&read_path, SqliteStoreOptions::default()).await.expect("opening the store"));
    seed(&*read_store, scale.read_all_events).await;
    let raw_on_read_store = RawEvents::open_existing(&read_path, "events").await.expect("opening the store's file");
    raw_on_read_store
        .execute(&format!("{SQLITE_TABLE_SQL}; {RAW_REBUILD_TABLES_SQL}; ANALYZE"))
        .await
        .expect("creating the read-model tables");
    let runner = Arc::new(ProjectionRunner::new(SqliteEventLog, read_store.read_models(), read_store.clone()));
    let rebuild: Rebuild = Arc::new(move || {
        let runner = runner.clone();
        Box::pin(async move { runner.rebuild(|_, _| {}).await.expect("rebuild").0 as usize })
    });

    let files = [raw.clone(), raw_on_store.clone(), raw_on_read_store.clone()];
    let analyze: Analyze = Arc::new(move || {
        let files = files.clone();
        Box::pin(async move {
            for file in &files {
                file.execute("ANALYZE").await.expect("ANALYZE");
            }
        })
    });

    Backend {
        name: "sqlite",
        store: Arc::new(store),
        raw: Arc::new(raw),
        raw_on_store: Arc::new(raw_on_store),
        read_store,
        raw_on_read_store: Arc::new(raw_on_read_store),
        rebuild,
        analyze,
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = sqlite
}
criterion_main!(benches);
