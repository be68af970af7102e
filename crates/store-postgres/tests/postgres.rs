//! What only the PostgreSQL backend must show: the database itself guards the events,
//! a race lost at the unique index is a conflict, a repeated delivery waits for the one
//! in flight and goes ahead only if that one rolls back, read_all waits out uncommitted
//! positions, checkpoints move only from where they were, and schemas are set up safely
//! by instances starting together.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::projection::Projection;
use eventshop_core::{
    EventStore, ExpectedVersion, Payload, Position, ProjectionError, ProjectionRunner, ReadModelStore, RecordedEvent,
    StoreError, StreamAppend, StreamId,
};
use sqlx::postgres::{PgPool, Postgres};
use sqlx::{Row, Transaction};
use store_conformance::fixtures::{event, events, label};
use store_postgres::testing::{fresh_read_models, fresh_store, fresh_store_and_read_models, test_database_url};
use store_postgres::{GapWait, PgEventStore, PgReadModels};
use uuid::Uuid;

fn new_stream(category: &str) -> StreamId {
    StreamId::new(category, Uuid::now_v7())
}

/// Starts an append of one event at an exact version, as the store does it, in a
/// transaction of its own, and leaves it open: the event has taken its version and
/// position but is not committed.
async fn hold_uncommitted_append(pool: &PgPool, stream: &StreamId, expected: u64) -> Transaction<'static, Postgres> {
    let mut transaction = pool.begin().await.expect("begin");
    let metadata = Uuid::now_v7();
    sqlx::query("SELECT * FROM append_event($1, $2, $3, 'Held', 1, '{\"label\": \"held\"}', $4, $4, NULL, now())")
        .bind(stream.as_str())
        .bind(expected as i64)
        .bind(Uuid::now_v7())
        .bind(metadata)
        .execute(&mut *transaction)
        .await
        .expect("held append");
    transaction
}

/// Whether `task` is still running after a moment: it is waiting on something.
async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    !task.is_finished()
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.position.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_refuses_to_change_or_remove_events() {
    let Some(store) = fresh_store().await else { return };
    let stream = new_stream("case");
    store.append(&stream, ExpectedVersion::NoStream, events("kept", 2)).await.expect("append");

    for statement in [
        "UPDATE events SET event_type = 'Forged'",
        "DELETE FROM events",
        "TRUNCATE events",
        "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, payload, \
         correlation_id, causation_id, recorded_at) \
         VALUES (1, gen_random_uuid(), 'x', 1, 'Forged', 1, '{}', gen_random_uuid(), gen_random_uuid(), now())",
    ] {
        let refused = sqlx::raw_sql(statement).execute(store.pool()).await;
        let error = refused.expect_err(statement);
        let message = error.as_database_error().map(|error| error.message().to_owned()).unwrap_or_default();
        if statement.starts_with("INSERT") {
            // Positions come from the sequence only: no one can write one below the head.
            assert!(message.contains("position"), "{statement}: {message}");
        } else {
            assert!(message.contains("events are immutable"), "{statement}: {message}");
        }
    }
    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.iter().map(label).collect::<Vec<_>>(), ["kept-0", "kept-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_that_loses_the_race_at_the_unique_index_gets_a_conflict() {
    let Some(store) = fresh_store().await else { return };
    let stream = new_stream("race");
    let winner = hold_uncommitted_append(store.pool(), &stream, 0).await;
    // The loser's version check passes (version 1 is not committed yet), so it inserts
    // version 1 too and waits on the unique index for the winner.
    let loser = {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move { store.append(&stream, ExpectedVersion::NoStream, events("loser", 1)).await })
    };
    assert!(still_waiting(&loser).await, "the loser waits for the winner to finish");
    winner.commit().await.expect("commit");
    let refused = loser.await.expect("task");
    assert!(
        matches!(refused, Err(StoreError::WrongExpectedVersion { ref stream_id, .. }) if *stream_id == stream),
        "got {refused:?}"
    );
    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.iter().map(label).collect::<Vec<_>>(), ["held"], "nothing of the loser is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_conflict_names_the_stream_whose_version_was_taken() {
    let Some(store) = fresh_store().await else { return };
    let (calm, contested) = (new_stream("calm"), new_stream("contested"));
    let winner = hold_uncommitted_append(store.pool(), &contested, 0).await;
    let loser = {
        let store = store.clone();
        let appends = vec![
            StreamAppend { stream_id: calm.clone(), expected: ExpectedVersion::NoStream, events: events("a", 1) },
            StreamAppend { stream_id: contested.clone(), expected: ExpectedVersion::NoStream, events: events("b", 1) },
        ];
        tokio::spawn(async move { store.append_many(appends).await })
    };
    assert!(still_waiting(&loser).await);
    winner.commit().await.expect("commit");
    let refused = loser.await.expect("task");
    assert!(
        matches!(refused, Err(StoreError::WrongExpectedVersion { ref stream_id, .. }) if *stream_id == contested),
        "got {refused:?}"
    );
    assert!(store.read_stream(&calm, 0).await.expect("read").is_empty(), "all or nothing");
}

/// Starts recording, as the store does it, that `consumer` handled `event_id`, with
/// nothing to append, in a transaction of its own, and leaves it open.
async fn hold_uncommitted_delivery(pool: &PgPool, consumer: &str, event_id: Uuid) -> Transaction<'static, Postgres> {
    let mut transaction = pool.begin().await.expect("begin");
    sqlx::query(
        "SELECT * FROM append_handled_events($1, $2, '{}'::text[], '{}'::bigint[], '{}'::integer[], \
         '{}'::integer[], '{}'::uuid[], '{}'::text[], '{}'::integer[], '{}'::text[], '{}'::uuid[], '{}'::uuid[], \
         '{}'::uuid[], now())",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(&mut *transaction)
    .await
    .expect("held delivery");
    transaction
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_delivery_waits_for_the_one_in_flight() {
    let Some(store) = fresh_store().await else { return };
    for first_commits in [true, false] {
        let (consumer, source_event) = ("inventory.reservations", Uuid::now_v7());
        let first = hold_uncommitted_delivery(store.pool(), consumer, source_event).await;
        let effect = new_stream("effect");
        let repeat = {
            let (store, effect) = (store.clone(), effect.clone());
            let append =
                StreamAppend { stream_id: effect, expected: ExpectedVersion::NoStream, events: events("e", 1) };
            tokio::spawn(async move { store.append_handled(consumer, source_event, vec![append]).await })
        };
        assert!(still_waiting(&repeat).await, "the repeat waits on the first delivery's inbox row");
        if first_commits {
            first.commit().await.expect("commit");
            let refused = repeat.await.expect("task");
            assert!(
                matches!(&refused, Err(StoreError::AlreadyHandled { event_id, .. }) if *event_id == source_event),
                "got {refused:?}"
            );
            assert!(store.read_stream(&effect, 0).await.expect("read").is_empty(), "the repeat wrote nothing");
        } else {
            first.rollback().await.expect("rollback");
            repeat.await.expect("task").expect("the first delivery did not happen, so the repeat goes ahead");
            assert_eq!(store.read_stream(&effect, 0).await.expect("read").len(), 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_to_any_version_retries_a_race_it_lost() {
    let Some(store) = fresh_store().await else { return };
    let stream = new_stream("busy");
    let first = hold_uncommitted_append(store.pool(), &stream, 0).await;
    let second = {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move { store.append(&stream, ExpectedVersion::Any, events("second", 1)).await })
    };
    assert!(still_waiting(&second).await);
    first.commit().await.expect("commit");
    let appended = second.await.expect("task").expect("an append to any version is retried, not refused");
    assert_eq!(appended.version, 2);
    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.iter().map(label).collect::<Vec<_>>(), ["held", "second-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_appends_at_the_same_version_exactly_one_wins() {
    let Some(store) = fresh_store().await else { return };
    let stream = new_stream("race");
    store.append(&stream, ExpectedVersion::NoStream, events("start", 5)).await.expect("append");
    for round in 0..20_u64 {
        let expected = ExpectedVersion::Exact(5 + round);
        let racers: Vec<_> = (0..2)
            .map(|racer| {
                let (store, stream) = (store.clone(), stream.clone());
                tokio::spawn(
                    async move { store.append(&stream, expected, events(&format!("{round}.{racer}"), 1)).await },
                )
            })
            .collect();
        let mut winners = 0;
        for racer in futures::future::join_all(racers).await {
            match racer.expect("task") {
                Ok(result) => {
                    winners += 1;
                    assert_eq!(result.version, 6 + round);
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {}
                Err(other) => panic!("the loser must get a conflict, got {other}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    let versions: Vec<_> =
        store.read_stream(&stream, 0).await.expect("read").iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=25).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_that_is_not_json_is_refused_by_the_database() {
    let Some(store) = fresh_store().await else { return };
    let mut broken = event("broken");
    broken.payload = Payload::from_json_unchecked("{not json".into());
    let refused = store.append(&new_stream("case"), ExpectedVersion::Any, vec![broken]).await;
    assert!(matches!(refused, Err(StoreError::Backend(_))), "got {refused:?}");
    assert!(store.read_all(Position::START, 10).await.expect("read").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_waits_for_an_earlier_position_to_commit() {
    let Some(store) = fresh_store().await else { return };
    let store = store.with_gap_wait(GapWait { deadline: Duration::from_secs(20), ..GapWait::default() });
    let early = hold_uncommitted_append(store.pool(), &new_stream("early"), 0).await;
    store.append(&new_stream("late"), ExpectedVersion::NoStream, events("late", 1)).await.expect("append");

    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(Position::START, 10).await })
    };
    assert!(still_waiting(&reader).await, "the reader must not hand out the later event alone");
    early.commit().await.expect("commit");
    let read = reader.await.expect("task").expect("read_all");
    assert_eq!(read.iter().map(label).collect::<Vec<_>>(), ["held", "late-0"]);
    assert_eq!(positions(&read), [1, 2]);
}

/// The case that a reader trusting the snapshot's in-progress list (`xip`) gets wrong:
/// the writer of the hole got its transaction id after the writer that committed, so at
/// the reader's snapshot its id is above `xmax` and is not listed as in progress at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_waits_for_a_writer_younger_than_every_committed_one() {
    let Some(store) = fresh_store().await else { return };
    let store = store.with_gap_wait(GapWait { deadline: Duration::from_secs(20), ..GapWait::default() });
    let mut older = store.pool().begin().await.expect("begin");
    let older_id: i64 =
        sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(&mut *older).await.expect("xid");
    let younger = hold_uncommitted_append(store.pool(), &new_stream("younger"), 0).await;
    sqlx::query(
        "SELECT * FROM append_events(ARRAY['older'], ARRAY[-1::bigint], ARRAY[1], ARRAY[1], ARRAY[gen_random_uuid()], \
         ARRAY['Held'], ARRAY[1], ARRAY['{\"label\": \"older\"}'], ARRAY[gen_random_uuid()], \
         ARRAY[gen_random_uuid()], ARRAY[NULL::uuid], now())",
    )
    .execute(&mut *older)
    .await
    .expect("older append");
    older.commit().await.expect("commit");

    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(Position::START, 10).await })
    };
    assert!(still_waiting(&reader).await, "position 2 (xid {older_id}) must wait for position 1 (a younger xid)");
    younger.commit().await.expect("commit");
    let read = reader.await.expect("task").expect("read_all");
    assert_eq!(read.iter().map(label).collect::<Vec<_>>(), ["held", "older"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_passes_a_hole_once_its_append_rolled_back() {
    let Some(store) = fresh_store().await else { return };
    let store = store.with_gap_wait(GapWait { deadline: Duration::from_secs(20), ..GapWait::default() });
    let doomed = hold_uncommitted_append(store.pool(), &new_stream("doomed"), 0).await;
    store.append(&new_stream("kept"), ExpectedVersion::NoStream, events("kept", 1)).await.expect("append");

    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(Position::START, 10).await })
    };
    assert!(still_waiting(&reader).await);
    doomed.rollback().await.expect("rollback");
    let read = reader.await.expect("task").expect("read_all");
    assert_eq!(read.iter().map(label).collect::<Vec<_>>(), ["kept-0"]);
    assert_eq!(positions(&read), [2], "position 1 is a hole for ever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_hands_out_only_what_precedes_a_hole_when_the_wait_runs_out() {
    let Some(store) = fresh_store().await else { return };
    let store = store.with_gap_wait(GapWait { deadline: Duration::from_millis(200), ..GapWait::default() });
    store.append(&new_stream("first"), ExpectedVersion::NoStream, events("first", 2)).await.expect("append");
    let slow = hold_uncommitted_append(store.pool(), &new_stream("slow"), 0).await;
    store.append(&new_stream("last"), ExpectedVersion::NoStream, events("last", 1)).await.expect("append");

    let read = store.read_all(Position::START, 10).await.expect("read_all");
    assert_eq!(read.iter().map(label).collect::<Vec<_>>(), ["first-0", "first-1"]);
    assert!(store.read_all(Position(2), 10).await.expect("read_all").is_empty(), "a hole right after `after`");

    slow.commit().await.expect("commit");
    let rest = store.read_all(Position(2), 10).await.expect("read_all");
    assert_eq!(rest.iter().map(label).collect::<Vec<_>>(), ["held", "last-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_all_returns_events_beyond_a_settled_hole() {
    let Some(store) = fresh_store().await else { return };
    let original = event("original");
    store.append(&new_stream("a"), ExpectedVersion::Any, vec![original.clone()]).await.expect("append");
    // Takes positions 2 and 3, then fails on the duplicate id: a hole for ever.
    let refused = store.append(&new_stream("b"), ExpectedVersion::Any, vec![event("lost"), original.clone()]).await;
    assert!(matches!(refused, Err(StoreError::DuplicateEvent(id)) if id == original.event_id), "got {refused:?}");
    store.append(&new_stream("c"), ExpectedVersion::Any, events("after", 1)).await.expect("append");

    let read = store.read_all(Position::START, 10).await.expect("read_all");
    assert_eq!(positions(&read), [1, 4]);
    assert_eq!(store.read_all(Position(1), 10).await.expect("read_all").len(), 1, "even with the hole first");
    assert_eq!(store.head_position().await.expect("head"), Position(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_moves_only_from_where_it_is() {
    let Some(read_models) = fresh_read_models().await else { return };
    let name = "orders";
    assert_eq!(read_models.checkpoint(name).await.expect("checkpoint"), Position::START);

    let move_checkpoint = |from: u64, to: u64| {
        let read_models = read_models.clone();
        async move {
            let mut tx = read_models.begin().await.expect("begin");
            read_models.move_checkpoint(&mut tx, name, Position(from), Position(to)).await?;
            read_models.commit(tx).await
        }
    };
    move_checkpoint(0, 5).await.expect("first move");
    assert_eq!(read_models.checkpoint(name).await.expect("checkpoint"), Position(5));
    for (from, to) in [(0, 7), (3, 7), (6, 7)] {
        let refused = move_checkpoint(from, to).await;
        assert!(matches!(refused, Err(ProjectionError::CheckpointMoved { .. })), "{from} -> {to}: {refused:?}");
    }
    move_checkpoint(5, 9).await.expect("move from where it is");

    // A move that is rolled back leaves the checkpoint where it was.
    let mut tx = read_models.begin().await.expect("begin");
    read_models.move_checkpoint(&mut tx, name, Position(9), Position(12)).await.expect("move");
    drop(tx);
    assert_eq!(read_models.checkpoint(name).await.expect("checkpoint"), Position(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_runners_moving_one_checkpoint_the_second_finds_it_moved() {
    let Some(read_models) = fresh_read_models().await else { return };
    // Both from the start (no row yet: the insert path) and from a stored position.
    for (name, from) in [("fresh", 0), ("running", 4)] {
        if from > 0 {
            let mut tx = read_models.begin().await.expect("begin");
            read_models.move_checkpoint(&mut tx, name, Position::START, Position(from)).await.expect("move");
            read_models.commit(tx).await.expect("commit");
        }
        let mut first = read_models.begin().await.expect("begin");
        read_models.move_checkpoint(&mut first, name, Position(from), Position(from + 10)).await.expect("first");
        let second = {
            let read_models = read_models.clone();
            tokio::spawn(async move {
                let mut tx = read_models.begin().await.expect("begin");
                read_models.move_checkpoint(&mut tx, name, Position(from), Position(from + 20)).await
            })
        };
        assert!(still_waiting(&second).await, "{name}: the second runner waits for the first");
        read_models.commit(first).await.expect("commit");
        let refused = second.await.expect("task");
        assert!(matches!(refused, Err(ProjectionError::CheckpointMoved { .. })), "{name}: {refused:?}");
        assert_eq!(read_models.checkpoint(name).await.expect("checkpoint"), Position(from + 10));
    }
}

/// Counts events per stream category in a table of the read-model schema.
struct CategoryCounts;

#[async_trait]
impl Projection for CategoryCounts {
    type Tx = Transaction<'static, Postgres>;

    fn name(&self) -> &str {
        "category_counts"
    }

    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO category_counts (category, events) VALUES ($1, 1) \
             ON CONFLICT (category) DO UPDATE SET events = category_counts.events + 1",
        )
        .bind(event.stream_id.category())
        .execute(&mut **tx)
        .await
        .map_err(|error| ProjectionError::failed(self.name(), error))?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM category_counts")
            .execute(&mut **tx)
            .await
            .map_err(|error| ProjectionError::failed(self.name(), error))?;
        Ok(())
    }
}

async fn category_counts(read_models: &PgReadModels) -> Vec<(String, i64)> {
    sqlx::query("SELECT category, events FROM category_counts ORDER BY category")
        .fetch_all(read_models.pool())
        .await
        .expect("query")
        .iter()
        .map(|row| (row.get("category"), row.get("events")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_runs_and_rebuilds_on_postgres_read_models() {
    let Some((store, read_models)) = fresh_store_and_read_models().await else { return };
    sqlx::raw_sql("CREATE TABLE category_counts (category text PRIMARY KEY, events bigint NOT NULL)")
        .execute(read_models.pool())
        .await
        .expect("create table");
    for (category, count) in [("order", 3), ("cart", 120), ("order", 2)] {
        store.append(&new_stream(category), ExpectedVersion::Any, events(category, count)).await.expect("append");
    }
    let store: Arc<dyn EventStore> = Arc::new(store);
    let runner = ProjectionRunner::new(CategoryCounts, read_models.clone(), store.clone()).with_batch_size(50);
    let head = store.head_position().await.expect("head");
    assert_eq!(runner.catch_up().await.expect("catch up"), head);
    let expected = vec![("cart".to_owned(), 120), ("order".to_owned(), 5)];
    assert_eq!(category_counts(&read_models).await, expected);
    assert_eq!(runner.rebuild(|_, _| {}).await.expect("rebuild"), head);
    assert_eq!(category_counts(&read_models).await, expected, "a rebuild gives the same read model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_set_up_one_schema() {
    let Some(url) = test_database_url().await else { return };
    let schema = format!("test_{}", Uuid::new_v4().simple());
    let instances: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PgEventStore::connect(&url, &schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for instance in futures::future::join_all(instances).await {
        stores.push(instance.expect("task").expect("every instance connects"));
    }
    let stream = new_stream("shared");
    stores[0].append(&stream, ExpectedVersion::NoStream, events("one", 1)).await.expect("append");
    assert_eq!(stores[3].read_stream(&stream, 0).await.expect("read").len(), 1, "one schema for all");
    let migrations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(stores[1].pool()).await.expect("query");
    let migration_files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql")))
        .count();
    assert_eq!(migrations, migration_files as i64, "each migration applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_name_that_needs_quoting_is_refused() {
    let Some(url) = test_database_url().await else { return };
    let refused = PgEventStore::connect(&url, "orders; DROP SCHEMA public").await;
    assert!(matches!(refused, Err(StoreError::Backend(_))), "got {refused:?}");
}
