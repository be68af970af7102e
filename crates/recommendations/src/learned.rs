//! What recommendations learns from other services, recorded as its own events first
//! (docs/decisions/0004), each with the inbox row of the event it came from so that a
//! redelivery changes nothing:
//!
//! - from orders: a confirmed order is counted (`OrderCounted` on `counted-<order id>`,
//!   with its buyer and lines), and uncounted if it is cancelled later (`OrderUncounted`).
//!   Rejected orders were never confirmed, so they never count. `OrderConfirmed` carries
//!   the lines, and a cancellation follows it on the same order stream, so one consumer
//!   sees them in order.
//! - from the catalog: each product's name, category, price and whether it is still sold
//!   (`product-<id>`), so that answers name the products and popularity has categories.
//!
//! The recommendations view folds these events; replaying them at start rebuilds it.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::catalog::{self, CatalogEvent};
use contracts::orders::{self, OrdersEvent};
use contracts::values::{Category, Money, ProductName};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{DomainEvent, EventCodec, EventStore, ExpectedVersion, RecordedEvent, StreamId};
use runtime::{caused_append, record_reaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The consumer of orders' events, which is also its inbox key.
pub const ORDERS_CONSUMER: &str = "recommendations.orders";
pub const ORDERS_EVENT_TYPES: [&str; 2] = ["OrderConfirmed", "OrderCancelled"];

/// The consumer of the catalog's events, which is also its inbox key.
pub const CATALOG_CONSUMER: &str = "recommendations.catalog";
pub const CATALOG_EVENT_TYPES: [&str; 4] = ["ProductCreated", "ProductUpdated", "PriceChanged", "ProductDiscontinued"];

/// The stream categories of what is learned.
pub const COUNTED_CATEGORY: &str = "counted";
pub const PRODUCT_CATEGORY: &str = "product";

/// One product of a counted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// The facts recommendations keeps; its own, not part of the published language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LearnedEvent {
    /// A confirmed order: its products were bought together, by this user.
    OrderCounted {
        order_id: Uuid,
        user_id: Uuid,
        lines: Vec<CountedLine>,
    },
    /// A counted order was cancelled: it no longer counts.
    OrderUncounted {
        order_id: Uuid,
        user_id: Uuid,
    },
    /// A new product of the catalog.
    ProductListed {
        product_id: Uuid,
        name: ProductName,
        category: Category,
        price: Money,
    },
    /// A product's name or category changed.
    ProductDescribed {
        product_id: Uuid,
        name: ProductName,
        category: Category,
    },
    ProductRepriced {
        product_id: Uuid,
        price: Money,
    },
    /// The product is no longer sold: never recommended again.
    ProductWithdrawn {
        product_id: Uuid,
    },
}

impl DomainEvent for LearnedEvent {}

pub fn counted_stream(order_id: Uuid) -> StreamId {
    StreamId::new(COUNTED_CATEGORY, order_id)
}

pub fn product_stream(product_id: Uuid) -> StreamId {
    StreamId::new(PRODUCT_CATEGORY, product_id)
}

/// Counts confirmed orders and uncounts cancelled ones, once per orders event.
#[derive(Debug)]
pub struct OrderCounter {
    store: Arc<dyn EventStore>,
    orders_codec: EventCodec<OrdersEvent>,
    codec: EventCodec<LearnedEvent>,
}

impl OrderCounter {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        OrderCounter { store, orders_codec: EventCodec::new(), codec: EventCodec::new() }
    }
}

#[async_trait]
impl EventHandler for OrderCounter {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let learned = match self.orders_codec.decode(event).map_err(HandlerError::permanent)? {
            OrdersEvent::OrderConfirmed { order_id, user_id, lines, .. } => {
                let lines = lines
                    .iter()
                    .map(|line| CountedLine { product_id: line.product_id, quantity: line.quantity })
                    .collect();
                Some((order_id, LearnedEvent::OrderCounted { order_id, user_id, lines }))
            }
            OrdersEvent::OrderCancelled { order_id, user_id } => {
                // Only a counted order is uncounted: most cancellations come before the
                // confirmation, and leave nothing to take back.
                let counted = self.store.read_stream(&counted_stream(order_id), 0).await;
                let counted = counted.map_err(HandlerError::transient)?;
                (!counted.is_empty()).then_some((order_id, LearnedEvent::OrderUncounted { order_id, user_id }))
            }
            // Filtered out by the definition; nothing to learn should one arrive.
            _ => None,
        };
        let mut appends = Vec::new();
        if let Some((order_id, learned)) = learned {
            // Any version: the bus hands an order's events over in order, and the inbox
            // keeps each once; so this append never conflicts.
            let stream_id = counted_stream(order_id);
            appends.push(caused_append(&self.codec, event, stream_id, ExpectedVersion::Any, &[learned])?);
        }
        record_reaction(&*self.store, ORDERS_CONSUMER, event, appends).await?;
        Ok(())
    }
}

/// Notes the catalog's products, once per catalog event.
#[derive(Debug)]
pub struct ProductNoter {
    store: Arc<dyn EventStore>,
    catalog_codec: EventCodec<CatalogEvent>,
    codec: EventCodec<LearnedEvent>,
}

impl ProductNoter {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        ProductNoter { store, catalog_codec: EventCodec::new(), codec: EventCodec::new() }
    }
}

#[async_trait]
impl EventHandler for ProductNoter {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let learned = match self.catalog_codec.decode(event).map_err(HandlerError::permanent)? {
            CatalogEvent::ProductCreated { product_id, name, category, price, .. } => {
                Some((product_id, LearnedEvent::ProductListed { product_id, name, category, price }))
            }
            CatalogEvent::ProductUpdated { product_id, name, category, .. } => {
                Some((product_id, LearnedEvent::ProductDescribed { product_id, name, category }))
            }
            CatalogEvent::PriceChanged { product_id, price } => {
                Some((product_id, LearnedEvent::ProductRepriced { product_id, price }))
            }
            CatalogEvent::ProductDiscontinued { product_id } => {
                Some((product_id, LearnedEvent::ProductWithdrawn { product_id }))
            }
            // Filtered out by the definition; nothing to learn should one arrive.
            _ => None,
        };
        let mut appends = Vec::new();
        if let Some((product_id, learned)) = learned {
            // Any version, as for orders: a product's events come in order from its stream.
            let stream_id = product_stream(product_id);
            appends.push(caused_append(&self.codec, event, stream_id, ExpectedVersion::Any, &[learned])?);
        }
        record_reaction(&*self.store, CATALOG_CONSUMER, event, appends).await?;
        Ok(())
    }
}

/// Starts both consumers into `store`. Orders' and the catalog's events must be published
/// on the bus first. If the second cannot start, the first is stopped.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<Vec<ConsumerHandle>, BusError> {
    let orders = ConsumerDefinition::new(ORDERS_CONSUMER, orders::SERVICE, &ORDERS_EVENT_TYPES);
    let orders = bus.consume(orders, Arc::new(OrderCounter::new(store.clone())), consumers.clone()).await?;
    let catalog = ConsumerDefinition::new(CATALOG_CONSUMER, catalog::SERVICE, &CATALOG_EVENT_TYPES);
    match bus.consume(catalog, Arc::new(ProductNoter::new(store)), consumers).await {
        Ok(catalog) => Ok(vec![orders, catalog]),
        Err(error) => {
            orders.stop().await;
            Err(error)
        }
    }
}
