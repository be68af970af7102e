//! What reviews learns from orders, for the verified-purchase badge: which products a
//! confirmed order holds, and when it was delivered.
//!
//! Each fact is recorded as reviews' own event on `purchase-<order id>` (with the inbox
//! row, so that a redelivery changes nothing), and the reviews view joins them: a user has
//! *received* a product once an order of theirs that holds it was delivered. Never asked of
//! another service: the badge is as good as the events, and survives any outage.
//!
//! Both facts come from the order's own stream (`OrderConfirmed` carries the lines,
//! `OrderDelivered` follows it), so one consumer sees them in order and needs no state.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::orders::{self, OrdersEvent};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{DomainEvent, EventCodec, EventStore, ExpectedVersion, RecordedEvent, StreamId};
use runtime::{caused_append, record_reaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The consumer's name, which is also its inbox key.
pub const CONSUMER: &str = "reviews.purchases";

/// The orders events it records.
pub const EVENT_TYPES: [&str; 2] = ["OrderConfirmed", "OrderDelivered"];

/// The stream category of the purchase facts.
pub const CATEGORY: &str = "purchase";

/// The facts reviews keeps of an order (stream `purchase-<order id>`); reviews' own,
/// not part of the published language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PurchaseEvent {
    /// A confirmed order of `user_id` holds these products.
    PurchaseRecorded { order_id: Uuid, user_id: Uuid, product_ids: Vec<Uuid> },
    /// The order was delivered: its buyer has received its products.
    PurchaseDelivered { order_id: Uuid, user_id: Uuid },
}

impl DomainEvent for PurchaseEvent {}

pub fn purchase_stream(order_id: Uuid) -> StreamId {
    StreamId::new(CATEGORY, order_id)
}

/// Records orders' confirmations and deliveries in reviews' store, once per event.
#[derive(Debug)]
pub struct PurchaseRecorder {
    store: Arc<dyn EventStore>,
    orders_codec: EventCodec<OrdersEvent>,
    purchase_codec: EventCodec<PurchaseEvent>,
}

impl PurchaseRecorder {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        PurchaseRecorder { store, orders_codec: EventCodec::new(), purchase_codec: EventCodec::new() }
    }
}

#[async_trait]
impl EventHandler for PurchaseRecorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let fact = match self.orders_codec.decode(event).map_err(HandlerError::permanent)? {
            OrdersEvent::OrderConfirmed { order_id, user_id, lines, .. } => {
                let mut product_ids: Vec<Uuid> = lines.iter().map(|line| line.product_id).collect();
                product_ids.sort_unstable();
                product_ids.dedup();
                Some(PurchaseEvent::PurchaseRecorded { order_id, user_id, product_ids })
            }
            OrdersEvent::OrderDelivered { order_id, user_id } => {
                Some(PurchaseEvent::PurchaseDelivered { order_id, user_id })
            }
            // Filtered out by the definition; nothing to record should one arrive.
            _ => None,
        };
        let mut appends = Vec::new();
        if let Some(fact) = fact {
            let order_id = match &fact {
                PurchaseEvent::PurchaseRecorded { order_id, .. }
                | PurchaseEvent::PurchaseDelivered { order_id, .. } => *order_id,
            };
            // Any version: the bus hands an order's events over in order, and the inbox
            // keeps each once; so this append never conflicts.
            let stream_id = purchase_stream(order_id);
            appends.push(caused_append(&self.purchase_codec, event, stream_id, ExpectedVersion::Any, &[fact])?);
        }
        record_reaction(&*self.store, CONSUMER, event, appends).await?;
        Ok(())
    }
}

/// Starts consuming orders' events into `store`. Orders' events must be published on the
/// bus first.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<ConsumerHandle, BusError> {
    let definition = ConsumerDefinition::new(CONSUMER, orders::SERVICE, &EVENT_TYPES);
    bus.consume(definition, Arc::new(PurchaseRecorder::new(store)), consumers).await
}
