//! Helpers shared by the integration tests: events to append and stores to append them to.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use eventshop_core::{Metadata, NewEvent, Payload, StreamId};
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};

/// A small event of type `event_type` carrying `index`.
pub fn event(event_type: &str, index: usize) -> NewEvent {
    let payload = Payload::from_value(&serde_json::json!({ "index": index }));
    NewEvent::new(event_type, 1, payload, Metadata::new_transaction(None))
}

pub fn events(event_type: &str, count: usize) -> Vec<NewEvent> {
    (0..count).map(|index| event(event_type, index)).collect()
}

/// A stream no other test uses.
pub fn new_stream(category: &str) -> StreamId {
    StreamId::new(category, uuid::Uuid::now_v7())
}

pub async fn temporary_store() -> SqliteEventStore {
    temporary_store_with(SqliteStoreOptions::default()).await
}

pub async fn temporary_store_with(options: SqliteStoreOptions) -> SqliteEventStore {
    SqliteEventStore::temporary(options).await.expect("a temporary store opens")
}
