//! What the catalog learns from reviews: each change of a product's rating becomes a
//! `RatingChanged` event on the catalog's own `listing-<product id>` stream, which the
//! listing view folds (as [`crate::stock`] does for inventory's stock levels).
//!
//! Reviews appends a product's totals after every post and removal on one stream per
//! product (`ProductRatingChanged` on `rating-<product id>`), so the bus hands them over in
//! order and the latest is all the listing needs: the consumer keeps no state.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::catalog::CatalogEvent;
use contracts::reviews::{self, ReviewsEvent, mean_rating};
use eventshop_core::bus::Bus;
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, RecordedEvent};
use runtime::{caused_append, record_reaction};

use crate::stock::listing_stream;

/// The consumer's name, which is also its inbox key.
pub const CONSUMER: &str = "catalog.ratings";

/// The reviews events that carry a product's rating.
pub const EVENT_TYPES: [&str; 1] = ["ProductRatingChanged"];

/// Records reviews' ratings in the catalog's store, once per reviews event.
#[derive(Debug)]
pub struct RatingRecorder {
    store: Arc<dyn EventStore>,
    reviews_codec: EventCodec<ReviewsEvent>,
    catalog_codec: EventCodec<CatalogEvent>,
}

impl RatingRecorder {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        RatingRecorder { store, reviews_codec: EventCodec::new(), catalog_codec: EventCodec::new() }
    }
}

#[async_trait]
impl EventHandler for RatingRecorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let mut appends = Vec::new();
        if let ReviewsEvent::ProductRatingChanged { product_id, review_count, rating_total } =
            self.reviews_codec.decode(event).map_err(HandlerError::permanent)?
        {
            // The mean as shoppers see it, to one decimal; the listing sorts by what it shows.
            let rating = mean_rating(rating_total, review_count);
            let changed = CatalogEvent::RatingChanged { product_id, rating, review_count };
            // Any version: see the module documentation; this append never conflicts.
            let stream_id = listing_stream(product_id);
            appends.push(caused_append(&self.catalog_codec, event, stream_id, ExpectedVersion::Any, &[changed])?);
        }
        record_reaction(&*self.store, CONSUMER, event, appends).await?;
        Ok(())
    }
}

/// Starts consuming reviews' ratings into `store`. Reviews' events must be published on
/// the bus first.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<ConsumerHandle, eventshop_core::bus::BusError> {
    let definition = ConsumerDefinition::new(CONSUMER, reviews::SERVICE, &EVENT_TYPES);
    bus.consume(definition, Arc::new(RatingRecorder::new(store)), consumers).await
}
