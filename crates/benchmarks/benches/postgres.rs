//! eventshop's PostgreSQL event store next to raw sqlx on the same server, in the same run.
//!
//! `cargo bench -p benchmarks --bench postgres`. Needs PostgreSQL at
//! `EVENTSHOP_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/eventshop_bench`;
//! the database is created if missing, and the `bench_pg_*` schemas are dropped and made
//! anew on every run). Without a reachable server it says so and measures nothing.

mod common;

use std::sync::Arc;

use benchmarks::harness::{Scale, runtime};
use benchmarks::postgres::{BenchDatabase, RAW_REBUILD_TABLES_SQL, RawEvents, checkpoint, raw_table_sql};
use benchmarks::projection::{POSTGRES_TABLE_SQL, PostgresEventLog};
use common::{Analyze, Backend, Rebuild, seed};
use criterion::{Criterion, criterion_group, criterion_main};
use eventshop_core::ProjectionRunner;
use store_postgres::{PgEventStore, PgReadModels};

fn postgres(c: &mut Criterion) {
    let scale = Scale::from_args();
    let rt = runtime();
    let backend = match rt.block_on(set_up(scale)) {
        Ok(backend) => backend,
        Err(reason) => {
            eprintln!("skipping the PostgreSQL benches: {reason}");
            return;
        }
    };
    common::run_suite(c, &rt, &backend, scale);
}

async fn set_up(scale: Scale) -> Result<Backend, String> {
    let database = BenchDatabase::connect().await?;
    let failed = |what: &'static str| move |error: sqlx::Error| format!("{what}: {error}");
    database.drop_schemas("bench_pg_").await.map_err(failed("dropping the schemas of the last run"))?;

    let store = PgEventStore::connect(&database.url, "bench_pg_writes").await.map_err(|error| error.to_string())?;
    database
        .execute(&format!("CREATE SCHEMA bench_pg_raw; {}", raw_table_sql("bench_pg_raw.raw_events")))
        .await
        .map_err(failed("creating the baseline table"))?;
    let raw = RawEvents::new(database.pool_in("bench_pg_raw").await.map_err(failed("connecting"))?, "raw_events");
    let raw_on_store = RawEvents::new(store.pool().clone(), "events");

    let read_store = PgEventStore::connect(&database.url, "bench_pg_read").await.map_err(|error| error.to_string())?;
    seed(&read_store, scale.read_all_events).await;
    sqlx::raw_sql(&format!("{POSTGRES_TABLE_SQL}; {RAW_REBUILD_TABLES_SQL}; ANALYZE events"))
        .execute(read_store.pool())
        .await
        .map_err(failed("creating the read-model tables"))?;
    let raw_on_read_store = RawEvents::new(read_store.pool().clone(), "events");
    let runner = Arc::new(ProjectionRunner::new(
        PostgresEventLog,
        PgReadModels::from_pool(read_store.pool().clone()),
        Arc::new(read_store.clone()),
    ));
    let rebuild: Rebuild = Arc::new(move || {
        let runner = runner.clone();
        Box::pin(async move { runner.rebuild(|_, _| {}).await.expect("rebuild").0 as usize })
    });

    let tables = [
        (store.pool().clone(), "ANALYZE events, snapshots"),
        (read_store.pool().clone(), "ANALYZE events, bench_event_log, raw_event_log"),
        (raw.pool().clone(), "ANALYZE raw_events"),
    ];
    let analyze: Analyze = Arc::new(move || {
        let tables = tables.clone();
        Box::pin(async move {
            for (pool, analyze) in &tables {
                // Each pool's search_path names its schema.
                sqlx::raw_sql(analyze).execute(pool).await.expect("ANALYZE");
            }
            checkpoint(&tables[0].0).await;
        })
    });

    Ok(Backend {
        name: "postgres",
        store: Arc::new(store),
        raw: Arc::new(raw),
        raw_on_store: Arc::new(raw_on_store),
        read_store: Arc::new(read_store),
        raw_on_read_store: Arc::new(raw_on_read_store),
        rebuild,
        analyze,
    })
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = postgres
}
criterion_main!(benches);
