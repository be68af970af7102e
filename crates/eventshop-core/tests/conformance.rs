//! The in-memory reference store passes the same suite as the real backends.

use std::sync::Arc;

use eventshop_core::{EventStore, InMemoryEventStore};

async fn open() -> Option<Arc<dyn EventStore>> {
    Some(Arc::new(InMemoryEventStore::new()))
}

store_conformance::event_store_conformance!(open);
