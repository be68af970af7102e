//! What the catalog learns from inventory: each change of a product's stock levels becomes
//! an `AvailabilityChanged` event on the catalog's own `listing-<product id>` stream, which
//! the listing view folds.
//!
//! Recording the fact as a catalog event, rather than updating the view directly, lets every
//! catalog instance's view see it whichever instance consumed it, and lets a view rebuilt
//! from the store come out the same. Ratings from reviews arrive the same way, through the
//! `catalog.ratings` consumer recording `RatingChanged` (see [`crate::ratings`]).

use runtime::{caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::catalog::CatalogEvent;
use contracts::inventory::{self, InventoryEvent};
use eventshop_core::bus::Bus;
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, RecordedEvent, StreamId};
use uuid::Uuid;

/// The consumer's name, which is also its inbox key.
pub const CONSUMER: &str = "catalog.stock";

/// The inventory events that carry new stock levels.
pub const EVENT_TYPES: [&str; 4] = ["StockAdded", "StockReserved", "StockReleased", "StockCommitted"];

/// The stream where the catalog records what it learned of a product from other services.
pub fn listing_stream(product_id: Uuid) -> StreamId {
    StreamId::new("listing", product_id)
}

/// Records inventory's stock levels in the catalog's store, once per inventory event.
#[derive(Debug)]
pub struct StockRecorder {
    store: Arc<dyn EventStore>,
    inventory_codec: EventCodec<InventoryEvent>,
    catalog_codec: EventCodec<CatalogEvent>,
}

impl StockRecorder {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        StockRecorder { store, inventory_codec: EventCodec::new(), catalog_codec: EventCodec::new() }
    }
}

#[async_trait]
impl EventHandler for StockRecorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let decoded = self.inventory_codec.decode(event).map_err(HandlerError::permanent)?;
        let mut appends = Vec::new();
        if let Some((product_id, levels)) = decoded.levels() {
            let availability = CatalogEvent::AvailabilityChanged { product_id, available: levels.available };
            // Any version: the bus hands a stream's events over in order, and the latest
            // level is all the listing keeps; so this append never conflicts.
            let stream_id = listing_stream(product_id);
            appends.push(caused_append(&self.catalog_codec, event, stream_id, ExpectedVersion::Any, &[availability])?);
        }
        record_reaction(&*self.store, CONSUMER, event, appends).await?;
        Ok(())
    }
}

/// Starts consuming inventory's events into `store`.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<ConsumerHandle, eventshop_core::bus::BusError> {
    let definition = ConsumerDefinition::new(CONSUMER, inventory::SERVICE, &EVENT_TYPES);
    bus.consume(definition, Arc::new(StockRecorder::new(store)), consumers).await
}
