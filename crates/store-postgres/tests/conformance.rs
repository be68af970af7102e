//! The shared event store conformance suite, run against PostgreSQL: each case gets a
//! fresh schema.

use std::sync::Arc;

use eventshop_core::EventStore;

async fn open() -> Option<Arc<dyn EventStore>> {
    let store = store_postgres::testing::fresh_store().await?;
    Some(Arc::new(store))
}

store_conformance::event_store_conformance!(open);
