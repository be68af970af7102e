//! The shared event store conformance suite, run against PostgreSQL: each case gets a
//! fresh schema. The store is handed over as its own type, which is both the event store
//! and the consumers' storage of the cases.

use std::sync::Arc;

use store_postgres::PgEventStore;

async fn open() -> Option<Arc<PgEventStore>> {
    let store = store_postgres::testing::fresh_store().await?;
    Some(Arc::new(store))
}

store_conformance::event_store_conformance!(open);
