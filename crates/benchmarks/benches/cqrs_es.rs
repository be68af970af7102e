//! eventshop next to cqrs-es 0.5 with postgres-es 0.5, the peer crate, on the same
//! PostgreSQL, with the same aggregate rules, and next to raw sqlx.
//!
//! `cargo bench -p benchmarks --bench cqrs_es`. The `bench_cqrs_*` schemas are dropped and
//! made anew on every run; postgres-es's `events` and `snapshots` tables are created from
//! its `db/init.sql`.
//!
//! Both frameworks are used as their documentation shows: cqrs-es through
//! `postgres_cqrs(pool, vec![], ())` (no snapshots, every command loads the aggregate's
//! events), eventshop through `CommandHandler`. The like-for-like comparison is eventshop
//! with its state cache off, which also reads the whole stream for every command; the
//! default (cache on) is shown beside it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use benchmarks::account::{Account, AccountCommand, AccountError, AccountEvent, open_with_events};
use benchmarks::baseline::RawBaseline;
use benchmarks::harness::{Scale, UniqueNames, deposit_event, deposit_events, runtime, split_across_writers};
use benchmarks::postgres::{BenchDatabase, RawEvents, checkpoint, raw_table_sql};
use cqrs_es::EventStore as _;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use eventshop_core::{Aggregate as _, CommandHandler, Metadata};
use postgres_es::{PostgresCqrs, PostgresEventRepository, postgres_cqrs};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use store_postgres::PgEventStore;
use tokio::runtime::Runtime;

/// The bench account on cqrs-es's traits: the same state, and `handle` asks the same
/// `decide` as eventshop's, so both frameworks refuse and accept exactly the same.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct CqrsAccount(Account);

/// The same events; cqrs-es stores them tagged, `{"type": …, "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct CqrsAccountEvent(AccountEvent);

impl cqrs_es::DomainEvent for CqrsAccountEvent {
    fn event_type(&self) -> String {
        match self.0 {
            AccountEvent::Opened { .. } => "Opened".to_owned(),
            AccountEvent::Deposited { .. } => "Deposited".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl cqrs_es::Aggregate for CqrsAccount {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = CqrsAccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(&mut self, command: AccountCommand, _: &(), sink: &EventSink<Self>) -> Result<(), AccountError> {
        for event in self.0.decide(&command)? {
            sink.write(CqrsAccountEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CqrsAccountEvent) {
        self.0 = std::mem::take(&mut self.0).apply(&event.0);
    }
}

/// postgres-es's `db/init.sql` (0.5.0), less its sample row and user.
const CQRS_TABLES_SQL: &str = "
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);";

struct Contenders {
    cached: Arc<CommandHandler<Account>>,
    uncached: Arc<CommandHandler<Account>>,
    cqrs: Arc<PostgresCqrs<CqrsAccount>>,
    cqrs_pool: PgPool,
    raw: Arc<RawEvents>,
    /// The eventshop store's pool, for `ANALYZE`.
    eventshop_pool: PgPool,
}

impl Contenders {
    /// Refreshes the planner statistics of every contender's tables after seeding (the
    /// bench server runs with autovacuum off), and checkpoints.
    async fn analyze(&self) {
        for (pool, analyze) in [
            (&self.eventshop_pool, "ANALYZE events, snapshots"),
            (&self.cqrs_pool, "ANALYZE events, snapshots"),
            (self.raw.pool(), "ANALYZE raw_events"),
        ] {
            sqlx::raw_sql(analyze).execute(pool).await.expect("ANALYZE");
        }
        checkpoint(&self.cqrs_pool).await;
    }
}

fn cqrs_es(c: &mut Criterion) {
    let scale = Scale::from_args();
    let rt = runtime();
    let contenders = match rt.block_on(set_up()) {
        Ok(contenders) => contenders,
        Err(reason) => {
            eprintln!("skipping the cqrs-es benches: {reason}");
            return;
        }
    };
    new_aggregate(c, &rt, &contenders, 1);
    new_aggregate(c, &rt, &contenders, 10);
    existing_aggregate(c, &rt, &contenders, scale);
    load(c, &rt, &contenders);
}

async fn set_up() -> Result<Contenders, String> {
    let database = BenchDatabase::connect().await?;
    let failed = |what: &'static str| move |error: sqlx::Error| format!("{what}: {error}");
    database.drop_schemas("bench_cqrs_").await.map_err(failed("dropping the schemas of the last run"))?;

    let store =
        PgEventStore::connect(&database.url, "bench_cqrs_eventshop").await.map_err(|error| error.to_string())?;
    let eventshop_pool = store.pool().clone();
    let store: Arc<dyn eventshop_core::EventStore> = Arc::new(store);
    let cached = Arc::new(CommandHandler::<Account>::new(store.clone()));
    let uncached = Arc::new(CommandHandler::<Account>::new(store).with_cache_capacity(0));

    database.execute("CREATE SCHEMA bench_cqrs_peer").await.map_err(failed("creating the cqrs-es schema"))?;
    // Like `default_postgress_pool`: 10 connections, the same as the other pools here.
    let cqrs_pool = database.pool_in("bench_cqrs_peer").await.map_err(failed("connecting"))?;
    sqlx::raw_sql(CQRS_TABLES_SQL).execute(&cqrs_pool).await.map_err(failed("creating the cqrs-es tables"))?;
    let cqrs = Arc::new(postgres_cqrs(cqrs_pool.clone(), vec![], ()));

    database
        .execute(&format!("CREATE SCHEMA bench_cqrs_raw; {}", raw_table_sql("bench_cqrs_raw.raw_events")))
        .await
        .map_err(failed("creating the baseline table"))?;
    let raw =
        Arc::new(RawEvents::new(database.pool_in("bench_cqrs_raw").await.map_err(failed("connecting"))?, "raw_events"));
    let contenders = Contenders { cached, uncached, cqrs, cqrs_pool, raw, eventshop_pool };
    // 1,000 events in each table before the first ANALYZE: a plan made while a table is
    // empty is a sequential scan, and a cached one stays until the next ANALYZE.
    let open = open_with_events("seed", 100);
    for seed in 0..10 {
        let id = format!("seed-{seed}");
        contenders.uncached.execute(&id, &open, Metadata::new_transaction(None)).await.map_err(|e| e.to_string())?;
        contenders.cqrs.execute(&id, open.clone()).await.map_err(|e| e.to_string())?;
        contenders.raw.append(&id, 0, &deposit_events(100)).await.map_err(failed("seeding"))?;
    }
    contenders.analyze().await;
    Ok(contenders)
}

/// A command that opens a new account with `events` events (1: open; 10: open and 9
/// deposits); baseline: a raw insert of as many rows.
fn new_aggregate(c: &mut Criterion, rt: &Runtime, contenders: &Contenders, events: usize) {
    let case = if events == 1 { "1 event to a new aggregate".to_owned() } else { format!("{events}-event command") };
    rt.block_on(contenders.analyze());
    let mut group = c.benchmark_group(format!("cqrs-es/{case}"));
    group.throughput(Throughput::Elements(events as u64));
    let names = Arc::new(UniqueNames::new());
    let prefix: &'static str = if events == 1 { "new" } else { "new-batch" };
    let command = open_with_events("ada", events);

    let (handler, ids, open) = (contenders.uncached.clone(), names.clone(), command.clone());
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("eventshop", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (handler, ids, open) = (handler.clone(), ids.clone(), open.clone());
            split_across_writers(iterations, 1, move || {
                let (handler, ids, open) = (handler.clone(), ids.clone(), open.clone());
                async move {
                    handler.execute(ids.next(prefix), &open, Metadata::new_transaction(None)).await.expect("command");
                }
            })
        })
    });
    let (cqrs, ids, open) = (contenders.cqrs.clone(), names.clone(), command.clone());
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("cqrs-es", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (cqrs, ids, open) = (cqrs.clone(), ids.clone(), open.clone());
            split_across_writers(iterations, 1, move || {
                let (cqrs, ids, open) = (cqrs.clone(), ids.clone(), open.clone());
                async move {
                    cqrs.execute(&ids.next(prefix), open).await.expect("command");
                }
            })
        })
    });
    let (raw, ids) = (contenders.raw.clone(), names.clone());
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("raw", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (raw, ids) = (raw.clone(), ids.clone());
            split_across_writers(iterations, 1, move || {
                let (raw, ids) = (raw.clone(), ids.clone());
                async move {
                    raw.append(&ids.next(&format!("raw-{prefix}")), 0, &deposit_events(events))
                        .await
                        .expect("raw insert");
                }
            })
        })
    });
    group.finish();
}

/// A deposit on an account of ~100 events (each contender rotates over its own accounts,
/// which grow by one event every `command_streams` commands); baseline: a raw single-row
/// insert.
fn existing_aggregate(c: &mut Criterion, rt: &Runtime, contenders: &Contenders, scale: Scale) {
    let mut group = c.benchmark_group("cqrs-es/1 event to an aggregate of 100 events");
    group.throughput(Throughput::Elements(1));
    let history = scale.command_history;
    let ids: Arc<Vec<String>> = Arc::new((0..scale.command_streams).map(|i| format!("existing-{i}")).collect());
    rt.block_on(async {
        let open = open_with_events("ada", history);
        for id in ids.iter() {
            contenders.uncached.execute(id, &open, Metadata::new_transaction(None)).await.expect("seeding");
            contenders.cqrs.execute(id, open.clone()).await.expect("seeding");
        }
        contenders.analyze().await;
    });
    let deposit = AccountCommand::Deposit { amount: 1 };
    for (label, handler) in [("eventshop", &contenders.uncached), ("eventshop, cache on", &contenders.cached)] {
        let (handler, ids, next) = (handler.clone(), ids.clone(), Arc::new(AtomicUsize::new(0)));
        let deposit = deposit.clone();
        rt.block_on(contenders.analyze());
        group.bench_function(BenchmarkId::new(label, "1 writer"), |b| {
            b.to_async(rt).iter_custom(|iterations| {
                let (handler, ids, next, deposit) = (handler.clone(), ids.clone(), next.clone(), deposit.clone());
                split_across_writers(iterations, 1, move || {
                    let (handler, ids, next, deposit) = (handler.clone(), ids.clone(), next.clone(), deposit.clone());
                    async move {
                        let id = &ids[next.fetch_add(1, Ordering::Relaxed) % ids.len()];
                        handler.execute(id, &deposit, Metadata::new_transaction(None)).await.expect("command");
                    }
                })
            })
        });
    }
    let (cqrs, ids_for_cqrs, next) = (contenders.cqrs.clone(), ids.clone(), Arc::new(AtomicUsize::new(0)));
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("cqrs-es", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (cqrs, ids, next, deposit) = (cqrs.clone(), ids_for_cqrs.clone(), next.clone(), deposit.clone());
            split_across_writers(iterations, 1, move || {
                let (cqrs, ids, next, deposit) = (cqrs.clone(), ids.clone(), next.clone(), deposit.clone());
                async move {
                    let id = &ids[next.fetch_add(1, Ordering::Relaxed) % ids.len()];
                    cqrs.execute(id, deposit).await.expect("command");
                }
            })
        })
    });
    let raw = contenders.raw.clone();
    let versions: Arc<Vec<std::sync::atomic::AtomicI64>> =
        Arc::new(ids.iter().map(|_| std::sync::atomic::AtomicI64::new(history as i64)).collect());
    rt.block_on(async {
        for id in ids.iter() {
            raw.append(&format!("raw-{id}"), 0, &deposit_events(history)).await.expect("seeding");
        }
        contenders.analyze().await;
    });
    let next = Arc::new(AtomicUsize::new(0));
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("raw", "1 writer"), |b| {
        b.to_async(rt).iter_custom(|iterations| {
            let (raw, ids, next, versions) = (raw.clone(), ids.clone(), next.clone(), versions.clone());
            split_across_writers(iterations, 1, move || {
                let (raw, ids, next, versions) = (raw.clone(), ids.clone(), next.clone(), versions.clone());
                async move {
                    let stream = next.fetch_add(1, Ordering::Relaxed) % ids.len();
                    let after = versions[stream].fetch_add(1, Ordering::Relaxed);
                    raw.append(&format!("raw-{}", ids[stream]), after, &[deposit_event(1)]).await.expect("raw insert");
                }
            })
        })
    });
    group.finish();
}

/// Loading an aggregate of 1,000 events, no snapshot, nothing cached: eventshop's
/// `CommandHandler::load`, cqrs-es's `EventStore::load_aggregate`; baseline: a raw read
/// of the stream's rows.
fn load(c: &mut Criterion, rt: &Runtime, contenders: &Contenders) {
    const HISTORY: usize = 1000;
    let mut group = c.benchmark_group("cqrs-es/load an aggregate of 1000 events");
    group.sampling_mode(SamplingMode::Flat);
    let id = "load-1000";
    let stream = CommandHandler::<Account>::stream_id(id).to_string();
    let cqrs_store = PersistedEventStore::<PostgresEventRepository, CqrsAccount>::new_event_store(
        PostgresEventRepository::new(contenders.cqrs_pool.clone()),
    );
    rt.block_on(async {
        let open = open_with_events("ada", HISTORY);
        contenders.uncached.execute(id, &open, Metadata::new_transaction(None)).await.expect("seeding");
        contenders.cqrs.execute(id, open).await.expect("seeding");
        contenders.raw.append(&stream, 0, &deposit_events(HISTORY)).await.expect("seeding");
        contenders.analyze().await;
    });
    let (handler, cqrs_store, raw, stream) = (&*contenders.uncached, &cqrs_store, &*contenders.raw, stream.as_str());
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("eventshop", "1 writer"), |b| {
        b.to_async(rt).iter(|| async move {
            assert_eq!(handler.load(id).await.expect("load").version, HISTORY as u64);
        })
    });
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("cqrs-es", "1 writer"), |b| {
        b.to_async(rt).iter(|| async move {
            let mut context = cqrs_store.load_aggregate(id).await.expect("load");
            assert_eq!(cqrs_es::AggregateContext::aggregate(&mut context).0.deposits, HISTORY as u64 - 1);
        })
    });
    rt.block_on(contenders.analyze());
    group.bench_function(BenchmarkId::new("raw", "1 writer"), |b| {
        b.to_async(rt).iter(|| async move {
            assert_eq!(raw.read_stream(stream, 0).await.expect("raw read").len(), HISTORY);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cqrs_es
}
criterion_main!(benches);
