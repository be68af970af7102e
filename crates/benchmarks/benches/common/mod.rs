//! The bench suite both backends run: every case on the eventshop store next to its
//! raw-sqlx baseline, measured in the same process, one right after the other.
//!
//! Criterion names: the group is `<backend>/<case>`, the function the contender
//! (`eventshop…`) or the baseline (`raw`), the parameter the variant (`8 writers`). The
//! `bench-report` binary pairs them by those names.

#![allow(dead_code)] // Each bench file uses a different part.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use benchmarks::account::{Account, AccountCommand, open_with_events};
use benchmarks::baseline::RawBaseline;
use benchmarks::harness::{Scale, UniqueNames, deposit_event, deposit_events, split_across_writers};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use eventshop_core::{CommandHandler, EventStore, ExpectedVersion, Metadata, SnapshotPolicy, StreamId};
use futures::future::BoxFuture;
use tokio::runtime::Runtime;

/// Short runs: 10 samples, 1 s of warm-up, 3 s of measurement per benchmark.
pub fn criterion() -> Criterion {
    Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

/// The pages `read_all` and the baseline read.
pub const PAGE: usize = 1000;
/// The runner's default batch, which the raw rebuild matches.
pub const REBUILD_PAGE: i64 = eventshop_core::subscription::DEFAULT_BATCH_SIZE as i64;

/// A projection rebuild, type-erased: returns the position reached, which is the number of
/// events replayed in a freshly seeded store (its positions have no holes).
pub type Rebuild = Arc<dyn Fn() -> BoxFuture<'static, usize> + Send + Sync>;

/// One backend, set up: what the suite measures.
pub struct Backend {
    /// `postgres` or `sqlite`: the first part of every group name.
    pub name: &'static str,
    /// The store the write, command and load cases use; it grows as they run.
    pub store: Arc<dyn EventStore>,
    /// The baseline table of the write cases.
    pub raw: Arc<dyn RawBaseline>,
    /// Raw access to `store`'s own events table, for the load baseline.
    pub raw_on_store: Arc<dyn RawBaseline>,
    /// A store holding exactly `scale.read_all_events` events, for read-all and rebuild.
    pub read_store: Arc<dyn EventStore>,
    /// Raw access to `read_store`'s events table.
    pub raw_on_read_store: Arc<dyn RawBaseline>,
    /// `ProjectionRunner::rebuild` of the event-log projection over `read_store`.
    pub rebuild: Rebuild,
    /// Refreshes the planner statistics of every table the suite touches, and on
    /// PostgreSQL checkpoints. Run before every benchmark: the bench server has autovacuum
    /// off, so a plan made while a table was empty would otherwise stay for the whole run,
    /// and a checkpoint set off by the previous benchmark's writes would slow this one's
    /// fsyncs.
    pub analyze: Analyze,
}

/// A type-erased `ANALYZE` of a backend's tables.
pub type Analyze = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// Seeds `store` with `events` events in appends of 100 (new streams `seed-<n>`).
pub async fn seed(store: &dyn EventStore, events: usize) {
    let mut remaining = events;
    let mut stream = 0;
    while remaining > 0 {
        let batch = remaining.min(100);
        store
            .append(&StreamId::new("seed", stream), ExpectedVersion::NoStream, deposit_events(batch))
            .await
            .expect("seeding the read store");
        remaining -= batch;
        stream += 1;
    }
}

pub fn run_suite(c: &mut Criterion, rt: &Runtime, backend: &Backend, scale: Scale) {
    // No table is analyzed while empty: PostgreSQL would then plan the store's
    // stream-version lookup as a sequential scan of an empty table and keep that plan in
    // every session until the next ANALYZE, making each append cost O(events).
    rt.block_on(async {
        seed(&*backend.store, 1000).await;
        for stream in 0..10 {
            backend.raw.append(&format!("raw-seed-{stream}"), 0, &deposit_events(100)).await.expect("seeding");
        }
    });
    append_one(c, rt, backend);
    append_batch(c, rt, backend);
    command(c, rt, backend, scale);
    load(c, rt, backend, scale);
    read_all(c, rt, backend, scale);
    rebuild(c, rt, backend, scale);
}

fn writers_label(writers: usize) -> String {
    if writers == 1 { "1 writer".to_owned() } else { format!("{writers} writers") }
}

/// Case 1: one event to a new stream, 1 and 8 concurrent writers.
fn append_one(c: &mut Criterion, rt: &Runtime, backend: &Backend) {
    rt.block_on((backend.analyze)());
    let mut group = c.benchmark_group(format!("{}/append 1 event to a new stream", backend.name));
    group.throughput(Throughput::Elements(1));
    let names = Arc::new(UniqueNames::new());
    for writers in [1, 8] {
        let store = backend.store.clone();
        let stream_names = names.clone();
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new("eventshop", writers_label(writers)), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (store, names) = (store.clone(), stream_names.clone());
                split_across_writers(iterations, writers, move || {
                    let (store, names) = (store.clone(), names.clone());
                    async move {
                        let stream = StreamId::from_raw(names.next("one"));
                        store.append(&stream, ExpectedVersion::NoStream, vec![deposit_event(1)]).await.expect("append");
                    }
                })
            })
        });
        let raw = backend.raw.clone();
        let stream_names = names.clone();
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new("raw", writers_label(writers)), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (raw, names) = (raw.clone(), stream_names.clone());
                split_across_writers(iterations, writers, move || {
                    let (raw, names) = (raw.clone(), names.clone());
                    async move {
                        raw.append(&names.next("raw-one"), 0, &[deposit_event(1)]).await.expect("raw insert");
                    }
                })
            })
        });
    }
    group.finish();
}

/// Case 2: a batch of 10 (1 and 8 writers) and of 100 events (1 writer) to a new stream.
fn append_batch(c: &mut Criterion, rt: &Runtime, backend: &Backend) {
    rt.block_on((backend.analyze)());
    let mut group = c.benchmark_group(format!("{}/append a batch to a new stream", backend.name));
    let names = Arc::new(UniqueNames::new());
    for (size, writers) in [(10, 1), (10, 8), (100, 1)] {
        group.throughput(Throughput::Elements(size as u64));
        let parameter = format!("{size} events, {}", writers_label(writers));
        let store = backend.store.clone();
        let stream_names = names.clone();
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new("eventshop", &parameter), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (store, names) = (store.clone(), stream_names.clone());
                split_across_writers(iterations, writers, move || {
                    let (store, names) = (store.clone(), names.clone());
                    async move {
                        let stream = StreamId::from_raw(names.next("batch"));
                        store.append(&stream, ExpectedVersion::NoStream, deposit_events(size)).await.expect("append");
                    }
                })
            })
        });
        let raw = backend.raw.clone();
        let stream_names = names.clone();
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (raw, names) = (raw.clone(), stream_names.clone());
                split_across_writers(iterations, writers, move || {
                    let (raw, names) = (raw.clone(), names.clone());
                    async move {
                        raw.append(&names.next("raw-batch"), 0, &deposit_events(size)).await.expect("raw insert");
                    }
                })
            })
        });
    }
    group.finish();
}

/// Streams that the command case rotates over, each starting with `history` events.
struct Rotation {
    ids: Vec<String>,
    next: AtomicUsize,
}

impl Rotation {
    fn next(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.ids.len()
    }
}

/// Case 3: `CommandHandler::execute` of a deposit on a stream that holds ~100 events, with
/// the handler's state cache on (the default) and off; baseline: a raw single-row insert
/// as the next version of a 100-row stream.
///
/// Each contender rotates over its own streams, so a stream grows by about one event per
/// `command_streams` iterations: the history stays between 100 and ~130 events.
fn command(c: &mut Criterion, rt: &Runtime, backend: &Backend, scale: Scale) {
    let mut group = c.benchmark_group(format!("{}/command on a stream of 100 events", backend.name));
    group.throughput(Throughput::Elements(1));
    let history = scale.command_history;
    for (label, cache) in [("eventshop, cache on", true), ("eventshop, cache off", false)] {
        let handler = CommandHandler::<Account>::new(backend.store.clone());
        let handler = Arc::new(if cache { handler } else { handler.with_cache_capacity(0) });
        let prefix = if cache { "cached" } else { "uncached" };
        let ids: Vec<String> = (0..scale.command_streams).map(|i| format!("{prefix}-{i}")).collect();
        rt.block_on(async {
            for id in &ids {
                let open = open_with_events("ada", history);
                handler.execute(id, &open, Metadata::new_transaction(None)).await.expect("seeding a command stream");
            }
        });
        rt.block_on((backend.analyze)());
        let rotation = Arc::new(Rotation { ids, next: AtomicUsize::new(0) });
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new(label, "1 writer"), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (handler, rotation) = (handler.clone(), rotation.clone());
                split_across_writers(iterations, 1, move || {
                    let (handler, rotation) = (handler.clone(), rotation.clone());
                    async move {
                        let id = &rotation.ids[rotation.next()];
                        let deposit = AccountCommand::Deposit { amount: 1 };
                        handler.execute(id, &deposit, Metadata::new_transaction(None)).await.expect("command");
                    }
                })
            })
        });
    }
    let raw = backend.raw.clone();
    let streams: Vec<String> = (0..scale.command_streams).map(|i| format!("raw-command-{i}")).collect();
    rt.block_on(async {
        for stream in &streams {
            raw.append(stream, 0, &deposit_events(history)).await.expect("seeding a raw stream");
        }
        (backend.analyze)().await;
    });
    let versions: Arc<Vec<AtomicI64>> = Arc::new(streams.iter().map(|_| AtomicI64::new(history as i64)).collect());
    let rotation = Arc::new(Rotation { ids: streams, next: AtomicUsize::new(0) });
    rt.block_on((backend.analyze)());
    group.bench_function(BenchmarkId::new("raw", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (raw, rotation, versions) = (raw.clone(), rotation.clone(), versions.clone());
            split_across_writers(iterations, 1, move || {
                let (raw, rotation, versions) = (raw.clone(), rotation.clone(), versions.clone());
                async move {
                    let stream = rotation.next();
                    let after = versions[stream].fetch_add(1, Ordering::Relaxed);
                    raw.append(&rotation.ids[stream], after, &[deposit_event(1)]).await.expect("raw insert");
                }
            })
        })
    });
    group.finish();
}

/// Case 4: loading an aggregate of 1,000 and 10,000 events with the state cache off, from
/// a snapshot (taken every 100 events, so the last one is at the head) and by full replay;
/// baseline: a raw read of the stream's rows (no decoding, no fold).
fn load(c: &mut Criterion, rt: &Runtime, backend: &Backend, scale: Scale) {
    let mut group = c.benchmark_group(format!("{}/load an aggregate", backend.name));
    group.sampling_mode(SamplingMode::Flat);
    let with_snapshots = Arc::new(
        CommandHandler::<Account>::new(backend.store.clone())
            .with_snapshots(SnapshotPolicy::Every(100))
            .with_cache_capacity(0),
    );
    let replaying = Arc::new(CommandHandler::<Account>::new(backend.store.clone()).with_cache_capacity(0));
    for history in scale.load_histories {
        let id = format!("load-{history}");
        rt.block_on(async {
            // Two commands, so that the second carries the stream onto a multiple of 100 and
            // takes the snapshot there: the load then reads the snapshot and no event.
            let open = open_with_events("ada", history - 1);
            with_snapshots.execute(&id, &open, Metadata::new_transaction(None)).await.expect("seeding");
            let deposit = AccountCommand::Deposit { amount: 1 };
            with_snapshots.execute(&id, &deposit, Metadata::new_transaction(None)).await.expect("seeding");
            let loaded = replaying.load(&id).await.expect("load");
            assert_eq!(loaded.version, history as u64);
            let snapshot = backend.store.load_snapshot(&CommandHandler::<Account>::stream_id(&id)).await;
            assert_eq!(snapshot.expect("snapshot").map(|snapshot| snapshot.version), Some(history as u64));
            (backend.analyze)().await;
        });
        let parameter = format!("{history} events");
        let id = id.as_str();
        for (label, handler) in
            [("eventshop, snapshot every 100", &*with_snapshots), ("eventshop, no snapshot", &*replaying)]
        {
            rt.block_on((backend.analyze)());
            group.bench_function(BenchmarkId::new(label, &parameter), |b| {
                b.to_async(rt).iter(|| async move {
                    let loaded = handler.load(id).await.expect("load");
                    assert_eq!(loaded.version, history as u64);
                })
            });
        }
        let stream = CommandHandler::<Account>::stream_id(id).to_string();
        let (stream, raw) = (stream.as_str(), &*backend.raw_on_store);
        rt.block_on((backend.analyze)());
        group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
            b.to_async(rt).iter(|| async move {
                assert_eq!(raw.read_stream(stream, 0).await.expect("raw read"), history);
            })
        });
    }
    group.finish();
}

/// Case 5a: `read_all` in pages of 1000 over the whole read store; baseline: a raw
/// `SELECT … WHERE position > $1 ORDER BY position LIMIT 1000` loop over the same table.
fn read_all(c: &mut Criterion, rt: &Runtime, backend: &Backend, scale: Scale) {
    let mut group = c.benchmark_group(format!("{}/read all in pages of 1000", backend.name));
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(scale.read_all_events as u64));
    let parameter = format!("{} events", scale.read_all_events);
    let store = &*backend.read_store;
    rt.block_on((backend.analyze)());
    group.bench_function(BenchmarkId::new("eventshop", &parameter), |b| {
        b.to_async(rt).iter(|| async move {
            let mut after = eventshop_core::Position::START;
            let mut total = 0;
            loop {
                let page = store.read_all(after, PAGE).await.expect("read_all");
                let Some(last) = page.last() else { break };
                after = last.position;
                total += page.len();
            }
            assert_eq!(total, scale.read_all_events);
        })
    });
    let raw = &*backend.raw_on_read_store;
    rt.block_on((backend.analyze)());
    group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
        b.to_async(rt).iter(|| async move {
            assert_eq!(raw.read_everything(PAGE as i64).await.expect("raw read"), scale.read_all_events);
        })
    });
    group.finish();
}

/// Case 5b: `ProjectionRunner::rebuild` of a one-row-per-event projection over the read
/// store; baseline: the same pages, rows and checkpoint writes by hand.
fn rebuild(c: &mut Criterion, rt: &Runtime, backend: &Backend, scale: Scale) {
    let mut group = c.benchmark_group(format!("{}/rebuild a projection", backend.name));
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(scale.read_all_events as u64));
    let parameter = format!("{} events", scale.read_all_events);
    let rebuild = &backend.rebuild;
    rt.block_on((backend.analyze)());
    group.bench_function(BenchmarkId::new("eventshop", &parameter), |b| {
        b.to_async(rt).iter(|| async move {
            assert_eq!(rebuild().await, scale.read_all_events);
        })
    });
    let raw = &*backend.raw_on_read_store;
    rt.block_on((backend.analyze)());
    group.bench_function(BenchmarkId::new("raw", &parameter), |b| {
        b.to_async(rt).iter(|| async move {
            assert_eq!(raw.rebuild(REBUILD_PAGE).await.expect("raw rebuild"), scale.read_all_events);
        })
    });
    group.finish();
}
