//! The in-memory reference store passes the same suite as the real backends.

use std::sync::Arc;

use eventshop_core::InMemoryEventStore;

async fn open() -> Option<Arc<InMemoryEventStore>> {
    Some(Arc::new(InMemoryEventStore::new()))
}

store_conformance::event_store_conformance!(open);
