//! The append targets measured as paired ratios, which a shared, noisy machine cannot
//! blur as easily as two criterion benchmarks run a minute apart.
//!
//! `cargo bench -p benchmarks --bench paired`. For each append case, blocks of eventshop
//! appends and of raw inserts alternate (which goes first alternates too), each block
//! long enough to take ~200 ms; every pair of neighbouring blocks gives one ratio of
//! rates, eventshop / raw. Background load moves both sides of a pair alike, so the median
//! of those ratios is steadier than the ratio of two medians taken at different times.
//! Prints a markdown table.
//!
//! Not a criterion bench (criterion measures one function at a time); it runs with
//! `cargo bench` all the same, and once, briefly, under `cargo test --benches`.

use std::sync::Arc;
use std::time::Duration;

use benchmarks::baseline::RawBaseline;
use benchmarks::harness::{UniqueNames, deposit_events, runtime, split_across_writers};
use benchmarks::postgres::{BenchDatabase, RawEvents, checkpoint, raw_table_sql};
use benchmarks::report::median;
use eventshop_core::{EventStore, ExpectedVersion, StreamId};
use futures::future::BoxFuture;
use sqlx::PgPool;
use store_postgres::PgEventStore;
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};

/// One side of a pair: runs `iterations` appends, split across the case's writers.
type Side = Arc<dyn Fn(u64) -> BoxFuture<'static, Duration> + Send + Sync>;

/// Append cases: (events per append, writers).
const CASES: [(usize, usize); 5] = [(1, 1), (1, 8), (10, 1), (10, 8), (100, 1)];

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (rounds, block) = if measuring { (15, Duration::from_millis(200)) } else { (2, Duration::from_millis(10)) };
    let rt = runtime();
    println!("| backend | case | eventshop / raw, median of {rounds} pairs | lowest–highest | quartiles |");
    println!("|---|---|---:|---:|---:|");
    match rt.block_on(postgres()) {
        Ok((store, raw, pool)) => rt.block_on(run_cases("postgres", &store, &raw, Some(&pool), rounds, block)),
        Err(reason) => eprintln!("skipping the PostgreSQL pairs: {reason}"),
    }
    let directory = tempfile::Builder::new().prefix("eventshop-paired-").tempdir().expect("a temporary directory");
    let (store, raw) = rt.block_on(sqlite(directory.path()));
    rt.block_on(run_cases("sqlite", &store, &raw, None, rounds, block));
}

async fn postgres() -> Result<(Arc<dyn EventStore>, Arc<dyn RawBaseline>, PgPool), String> {
    let database = BenchDatabase::connect().await?;
    let failed = |error: sqlx::Error| format!("setting up: {error}");
    database.drop_schemas("bench_paired_").await.map_err(failed)?;
    let store =
        PgEventStore::connect(&database.url, "bench_paired_eventshop").await.map_err(|error| error.to_string())?;
    database
        .execute(&format!("CREATE SCHEMA bench_paired_raw; {}", raw_table_sql("bench_paired_raw.raw_events")))
        .await
        .map_err(failed)?;
    let raw = RawEvents::new(database.pool_in("bench_paired_raw").await.map_err(failed)?, "raw_events");
    Ok((Arc::new(store), Arc::new(raw), database.admin))
}

async fn sqlite(directory: &std::path::Path) -> (Arc<dyn EventStore>, Arc<dyn RawBaseline>) {
    let store = SqliteEventStore::open(directory.join("store.sqlite3"), SqliteStoreOptions::default())
        .await
        .expect("opening the store");
    let raw = benchmarks::sqlite::RawEvents::create(&directory.join("raw.sqlite3")).await.expect("the baseline");
    (Arc::new(store), Arc::new(raw))
}

/// Measures every case; `checkpoint_on` (PostgreSQL) is checkpointed before each, so no
/// case starts while the writes of a previous one are still being flushed.
async fn run_cases(
    backend: &str,
    store: &Arc<dyn EventStore>,
    raw: &Arc<dyn RawBaseline>,
    checkpoint_on: Option<&PgPool>,
    rounds: usize,
    block: Duration,
) {
    let names = Arc::new(UniqueNames::new());
    for (size, writers) in CASES {
        if let Some(pool) = checkpoint_on {
            checkpoint(pool).await;
        }
        let eventshop: Side = {
            let (store, names) = (store.clone(), names.clone());
            Arc::new(move |iterations| {
                let (store, names) = (store.clone(), names.clone());
                Box::pin(split_across_writers(iterations, writers, move || {
                    let (store, names) = (store.clone(), names.clone());
                    async move {
                        let stream = StreamId::from_raw(names.next("paired"));
                        store.append(&stream, ExpectedVersion::NoStream, deposit_events(size)).await.expect("append");
                    }
                }))
            })
        };
        let baseline: Side = {
            let (raw, names) = (raw.clone(), names.clone());
            Arc::new(move |iterations| {
                let (raw, names) = (raw.clone(), names.clone());
                Box::pin(split_across_writers(iterations, writers, move || {
                    let (raw, names) = (raw.clone(), names.clone());
                    async move {
                        raw.append(&names.next("raw-paired"), 0, &deposit_events(size)).await.expect("raw insert");
                    }
                }))
            })
        };
        let ratios = paired_ratios(&eventshop, &baseline, rounds, block).await;
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let quartile = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let writers = if writers == 1 { "1 writer".to_owned() } else { format!("{writers} writers") };
        let case =
            if size == 1 { format!("append 1 event, {writers}") } else { format!("append {size} events, {writers}") };
        println!(
            "| {backend} | {case} | {:.2} | {:.2}–{:.2} | {:.2}–{:.2} |",
            median(ratios),
            sorted[0],
            sorted[sorted.len() - 1],
            quartile(0.25),
            quartile(0.75)
        );
    }
}

/// Rate ratios eventshop / baseline, one per pair of neighbouring blocks.
async fn paired_ratios(eventshop: &Side, baseline: &Side, rounds: usize, block: Duration) -> Vec<f64> {
    // Warm up both, and size the blocks so that each takes about `block`.
    let per_iteration = |elapsed: Duration, iterations: u64| elapsed.as_secs_f64() / iterations as f64;
    let eventshop_time = per_iteration(eventshop(50).await, 50);
    let baseline_time = per_iteration(baseline(50).await, 50);
    let iterations = |time: f64| ((block.as_secs_f64() / time) as u64).max(8);
    let (eventshop_iterations, baseline_iterations) = (iterations(eventshop_time), iterations(baseline_time));

    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (first, second) = if round % 2 == 0 { (eventshop, baseline) } else { (baseline, eventshop) };
        let (first_iterations, second_iterations) = if round % 2 == 0 {
            (eventshop_iterations, baseline_iterations)
        } else {
            (baseline_iterations, eventshop_iterations)
        };
        let first_rate = first_iterations as f64 / first(first_iterations).await.as_secs_f64();
        let second_rate = second_iterations as f64 / second(second_iterations).await.as_secs_f64();
        ratios.push(if round % 2 == 0 { first_rate / second_rate } else { second_rate / first_rate });
    }
    ratios
}
