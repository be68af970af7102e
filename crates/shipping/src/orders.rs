//! What shipping learns from orders: a confirmed order gets a shipment (SPEC §2 step 4), and
//! a cancelled one cancels its shipment if it has not left yet (step 5).
//!
//! The shipment's id is derived from the order's (`contracts::shipping::shipment_id`), so
//! the reaction finds the shipment of an order without a lookup table, and the gateway
//! finds it from the order id alone.

use runtime::{Recorded, caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::orders::{self, OrdersEvent};
use contracts::shipping::{ShippingEvent, shipment_id};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, RecordedEvent};
use uuid::Uuid;

use crate::domain::{Shipment, ShipmentCommand};

/// The consumer's name, which is also its inbox key.
pub const CONSUMER: &str = "shipping.shipments";

/// The orders events it reacts to.
pub const EVENT_TYPES: [&str; 2] = ["OrderConfirmed", "OrderCancelled"];

/// How many times a reaction is decided again when the shipment changed under it before it
/// is handed back to the consumer's retries.
const MAX_ATTEMPTS: u32 = 5;

/// Creates and cancels shipments as orders are confirmed and cancelled, once per event.
#[derive(Debug)]
pub struct OrderReactions {
    store: Arc<dyn EventStore>,
    shipments: CommandHandler<Shipment>,
    orders_codec: EventCodec<OrdersEvent>,
    shipping_codec: EventCodec<ShippingEvent>,
}

impl OrderReactions {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        OrderReactions {
            shipments: CommandHandler::new(store.clone()),
            store,
            orders_codec: EventCodec::new(),
            shipping_codec: EventCodec::new(),
        }
    }

    /// Decides `command` on the shipment and appends the outcome with the inbox row of
    /// `event`, deciding again if the shipment changed in between (an admin dispatching it).
    async fn react(
        &self,
        event: &RecordedEvent,
        shipment_id: Uuid,
        command: ShipmentCommand,
    ) -> Result<(), HandlerError> {
        let stream_id = CommandHandler::<Shipment>::stream_id(shipment_id);
        for _attempt in 0..MAX_ATTEMPTS {
            let loaded = self.shipments.load(shipment_id).await.map_err(HandlerError::transient)?;
            let decided = loaded.state.decide(&command).map_err(HandlerError::permanent)?;
            let mut appends = Vec::new();
            if !decided.is_empty() {
                let expected = ExpectedVersion::after(loaded.version);
                appends.push(caused_append(&self.shipping_codec, event, stream_id.clone(), expected, &decided)?);
            }
            if record_reaction(&*self.store, CONSUMER, event, appends).await? == Recorded::Done {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("{stream_id} kept changing")))
    }
}

#[async_trait]
impl EventHandler for OrderReactions {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        match self.orders_codec.decode(event).map_err(HandlerError::permanent)? {
            OrdersEvent::OrderConfirmed { order_id, user_id, shipping_address, .. } => {
                let shipment_id = shipment_id(order_id);
                let create = ShipmentCommand::Create { shipment_id, order_id, user_id, address: shipping_address };
                self.react(event, shipment_id, create).await
            }
            OrdersEvent::OrderCancelled { order_id, .. } => {
                self.react(event, shipment_id(order_id), ShipmentCommand::CancelForOrder).await
            }
            // Filtered out by the definition; nothing to do should one arrive.
            _ => Ok(()),
        }
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
    bus.consume(definition, Arc::new(OrderReactions::new(store)), consumers).await
}
