//! The database file itself, not only this crate's code, keeps events as they were
//! written: raw SQL from any connection cannot change or remove them, nor store a payload
//! that is not JSON.

mod common;

use common::{events, new_stream, temporary_store};
use eventshop_core::{EventStore, ExpectedVersion, Metadata, NewEvent, Payload, Position, ReadModelStore, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

async fn raw_connection(store: &store_sqlite::SqliteEventStore) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(store.path());
    SqliteConnection::connect_with(&options).await.expect("a second connection to the file")
}

fn refusal_message(result: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => panic!("the database accepted the statement: {done:?}"),
        Err(error) => error.as_database_error().map(|error| error.message().to_owned()).unwrap_or_default(),
    }
}

#[tokio::test]
async fn update_and_delete_are_refused_by_the_database() {
    let store = temporary_store().await;
    let stream = new_stream("immutable");
    store.append(&stream, ExpectedVersion::NoStream, events("Written", 3)).await.expect("append");
    let before = store.read_all(Position::START, 10).await.expect("read");

    let mut raw = raw_connection(&store).await;
    let statements = [
        "UPDATE events SET event_type = 'Rewritten'",
        "UPDATE events SET payload = '{}' WHERE position = 1",
        "DELETE FROM events WHERE position = 2",
        // Without a WHERE clause SQLite would truncate the table, skipping row triggers;
        // it does not take that shortcut on a table that has a DELETE trigger.
        "DELETE FROM events",
    ];
    for statement in statements {
        let message = refusal_message(sqlx::query(statement).execute(&mut raw).await);
        assert!(message.contains("events are immutable"), "{statement}: {message}");
    }

    assert_eq!(store.read_all(Position::START, 10).await.expect("read"), before, "nothing changed");
}

#[tokio::test]
async fn insert_or_replace_through_the_store_connection_is_refused() {
    // REPLACE removes the conflicting row without firing DELETE triggers unless
    // recursive_triggers is on; the store turns it on for its writer connection, which
    // read-model transactions use.
    let store = temporary_store().await;
    let stream = new_stream("immutable");
    store.append(&stream, ExpectedVersion::NoStream, events("Written", 1)).await.expect("append");

    let read_models = store.read_models();
    let mut transaction = read_models.begin().await.expect("begin");
    let result = sqlx::query(
        "INSERT OR REPLACE INTO events (position, event_id, stream_id, stream_version, event_type, \
         schema_version, payload, correlation_id, causation_id, recorded_at) \
         SELECT position, 'another-id', stream_id, stream_version, 'Forged', schema_version, payload, \
         correlation_id, causation_id, recorded_at FROM events WHERE position = 1",
    )
    .execute(&mut *transaction)
    .await;
    let message = refusal_message(result);
    assert!(message.contains("events are immutable"), "{message}");
    drop(transaction);

    let stored = store.read_stream(&stream, 0).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "Written");
}

#[tokio::test]
async fn a_payload_that_is_not_json_is_refused_and_nothing_is_written() {
    let store = temporary_store().await;
    let stream = new_stream("immutable");
    let mut appended = events("Fine", 2);
    appended.push(NewEvent::new(
        "Broken",
        1,
        Payload::from_json_unchecked("{not json".into()),
        Metadata::new_transaction(None),
    ));

    let refused = store.append(&stream, ExpectedVersion::NoStream, appended).await;
    assert!(matches!(refused, Err(StoreError::InvalidAppend(_))), "got {refused:?}");
    assert!(store.read_stream(&stream, 0).await.expect("read").is_empty(), "the whole append was rolled back");
    assert_eq!(store.head_position().await.expect("head"), Position::START);
}
