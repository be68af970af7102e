//! Read models in the events' database file: the checkpoint is a compare-and-set, and a
//! projection's tables move in the same transaction as its checkpoint.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::{events, new_stream, temporary_store};
use eventshop_core::{
    EventStore, ExpectedVersion, Position, Projection, ProjectionError, ProjectionRunner, ReadModelStore, RecordedEvent,
};
use store_sqlite::{ReadModelTransaction, SqliteReadModels};

#[tokio::test]
async fn a_checkpoint_moves_only_from_where_it_is() {
    let store = temporary_store().await;
    let read_models = store.read_models();
    assert_eq!(read_models.checkpoint("orders").await.expect("checkpoint"), Position::START);

    let mut transaction = read_models.begin().await.expect("begin");
    read_models.move_checkpoint(&mut transaction, "orders", Position::START, Position(5)).await.expect("first move");
    read_models.commit(transaction).await.expect("commit");

    // A second runner that also started from the beginning lost the race.
    let mut transaction = read_models.begin().await.expect("begin");
    let late = read_models.move_checkpoint(&mut transaction, "orders", Position::START, Position(3)).await;
    assert!(matches!(late, Err(ProjectionError::CheckpointMoved { ref name }) if name == "orders"), "got {late:?}");
    let stale = read_models.move_checkpoint(&mut transaction, "orders", Position(4), Position(9)).await;
    assert!(matches!(stale, Err(ProjectionError::CheckpointMoved { .. })), "got {stale:?}");
    drop(transaction);
    assert_eq!(read_models.checkpoint("orders").await.expect("checkpoint"), Position(5));

    // Rewinding to the start (a rebuild) and moving on from there both work.
    let mut transaction = read_models.begin().await.expect("begin");
    read_models.move_checkpoint(&mut transaction, "orders", Position(5), Position::START).await.expect("rewind");
    read_models.move_checkpoint(&mut transaction, "orders", Position::START, Position(2)).await.expect("move");
    read_models.commit(transaction).await.expect("commit");
    assert_eq!(read_models.checkpoint("orders").await.expect("checkpoint"), Position(2));
    assert_eq!(read_models.checkpoint("another").await.expect("checkpoint"), Position::START, "per name");
}

/// Counts events per type in a table of its own; fails on a chosen event type while
/// `failing` is set, after having written to the table.
struct EventTypeCounts {
    fail_on: &'static str,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl Projection for EventTypeCounts {
    type Tx = ReadModelTransaction;

    fn name(&self) -> &str {
        "event_type_counts"
    }

    async fn handle(&self, transaction: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO event_type_counts (event_type, count) VALUES (?, 1) \
             ON CONFLICT (event_type) DO UPDATE SET count = count + 1",
        )
        .bind(&event.event_type)
        .execute(&mut **transaction)
        .await
        .map_err(|error| ProjectionError::failed(self.name(), error))?;
        if event.event_type == self.fail_on && self.failing.load(Ordering::SeqCst) {
            return Err(ProjectionError::failed(self.name(), "refusing this event on purpose"));
        }
        Ok(())
    }

    async fn reset(&self, transaction: &mut Self::Tx) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM event_type_counts")
            .execute(&mut **transaction)
            .await
            .map_err(|error| ProjectionError::failed(self.name(), error))?;
        Ok(())
    }
}

async fn counts(read_models: &SqliteReadModels) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT event_type, count FROM event_type_counts ORDER BY event_type")
        .fetch_all(read_models.reader())
        .await
        .expect("query the read model")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_commits_its_table_and_checkpoint_together() {
    let store = Arc::new(temporary_store().await);
    let read_models = store.read_models();
    let mut transaction = read_models.begin().await.expect("begin");
    sqlx::query("CREATE TABLE event_type_counts (event_type TEXT PRIMARY KEY, count INTEGER NOT NULL) STRICT")
        .execute(&mut *transaction)
        .await
        .expect("create the read-model table");
    read_models.commit(transaction).await.expect("commit");

    let stream = new_stream("projected");
    store.append(&stream, ExpectedVersion::NoStream, events("Added", 3)).await.expect("append");
    store.append(&stream, ExpectedVersion::Exact(3), events("Removed", 1)).await.expect("append");

    let failing = Arc::new(AtomicBool::new(false));
    let projection = EventTypeCounts { fail_on: "Poison", failing: failing.clone() };
    let runner = ProjectionRunner::new(projection, read_models.clone(), store.clone()).with_batch_size(2);
    let head = runner.catch_up().await.expect("catch up");
    assert_eq!(head, store.head_position().await.expect("head"));
    assert_eq!(counts(&read_models).await, vec![("Added".into(), 3), ("Removed".into(), 1)]);
    assert_eq!(runner.lag().await.expect("lag"), 0);

    // A batch that fails half-way leaves neither rows nor checkpoint behind.
    failing.store(true, Ordering::SeqCst);
    store.append(&stream, ExpectedVersion::Exact(4), events("Added", 1)).await.expect("append");
    store.append(&stream, ExpectedVersion::Exact(5), events("Poison", 1)).await.expect("append");
    let failed = runner.step().await;
    assert!(matches!(failed, Err(ProjectionError::Failed { .. })), "got {failed:?}");
    assert_eq!(runner.position().await.expect("position"), head, "the checkpoint did not move");
    assert_eq!(counts(&read_models).await, vec![("Added".into(), 3), ("Removed".into(), 1)], "the rows rolled back");

    // Once the cause is gone, the same batch goes through exactly once.
    failing.store(false, Ordering::SeqCst);
    let head = runner.catch_up().await.expect("catch up");
    assert_eq!(head, store.head_position().await.expect("head"));
    let expected = vec![("Added".into(), 4), ("Poison".into(), 1), ("Removed".into(), 1)];
    assert_eq!(counts(&read_models).await, expected);

    // A rebuild replays everything into the emptied table and ends up in the same place.
    let rebuilt = runner.rebuild(|_, _| {}).await.expect("rebuild");
    assert_eq!(rebuilt, head);
    assert_eq!(counts(&read_models).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_wait_for_a_read_model_transaction_and_then_proceed() {
    let store = Arc::new(temporary_store().await);
    let read_models = store.read_models();
    let transaction = read_models.begin().await.expect("begin");

    let stream = new_stream("waiting");
    let append = tokio::spawn({
        let store = store.clone();
        let stream = stream.clone();
        async move { store.append(&stream, ExpectedVersion::NoStream, events("Queued", 1)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!append.is_finished(), "the append waits for the writer connection");
    assert_eq!(store.head_position().await.expect("reads go on meanwhile"), Position::START);

    read_models.commit(transaction).await.expect("commit");
    let appended = append.await.expect("the task ran").expect("the append commits");
    assert_eq!(appended.version, 1);
}
