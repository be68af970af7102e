//! The shared event store conformance suite, each case on a fresh database file.

use std::sync::Arc;

use store_sqlite::{SqliteEventStore, SqliteStoreOptions};

async fn open() -> Option<Arc<SqliteEventStore>> {
    let store = SqliteEventStore::temporary(SqliteStoreOptions::default()).await.expect("a temporary store opens");
    Some(Arc::new(store))
}

store_conformance::event_store_conformance!(open);
