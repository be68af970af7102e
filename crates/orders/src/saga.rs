//! The orders side of the checkout saga (choreography): what orders does when inventory,
//! payments and shipping report on an order.
//!
//! - inventory `StockReservedForOrder` → the order is stock_reserved;
//! - inventory `StockReservationFailed` → rejected, out of stock;
//! - payments `PaymentCaptured` → paid and confirmed in one append;
//! - payments `PaymentDeclined` → rejected, payment declined;
//! - shipping `ShipmentDelivered` → delivered.
//!
//! One consumer per source ("orders.saga.inventory", "orders.saga.payments",
//! "orders.saga.shipping"), each with its own inbox. A reaction is decided by the `Order`
//! aggregate and appended with the inbox record in one `append_handled` call, at the
//! version it was decided on; losing a race to another writer of the order (the deadline,
//! a cancellation) means deciding again on the new state. A reaction that no longer fits
//! the order is decided as nothing, and that decision is recorded too.

use runtime::{Recorded, caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::inventory::{self, InventoryEvent};
use contracts::orders::RejectionReason;
use contracts::payments::{self, PaymentsEvent};
use contracts::shipping::{self, ShippingEvent};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{Aggregate, CommandError, CommandHandler, EventCodec, EventStore, ExpectedVersion, RecordedEvent};
use uuid::Uuid;

use crate::domain::{Order, OrderCommand, OrderError};

pub const INVENTORY_CONSUMER: &str = "orders.saga.inventory";
pub const PAYMENTS_CONSUMER: &str = "orders.saga.payments";
pub const SHIPPING_CONSUMER: &str = "orders.saga.shipping";

/// How many times a reaction is decided again after losing a race for the order's stream.
const MAX_ATTEMPTS: u32 = 5;

/// The service whose events a saga consumer reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Inventory,
    Payments,
    Shipping,
}

impl Source {
    pub fn consumer(self) -> &'static str {
        match self {
            Source::Inventory => INVENTORY_CONSUMER,
            Source::Payments => PAYMENTS_CONSUMER,
            Source::Shipping => SHIPPING_CONSUMER,
        }
    }

    pub fn definition(self) -> ConsumerDefinition {
        match self {
            Source::Inventory => ConsumerDefinition::new(
                INVENTORY_CONSUMER,
                inventory::SERVICE,
                &["StockReservedForOrder", "StockReservationFailed"],
            ),
            Source::Payments => {
                ConsumerDefinition::new(PAYMENTS_CONSUMER, payments::SERVICE, &["PaymentCaptured", "PaymentDeclined"])
            }
            Source::Shipping => ConsumerDefinition::new(SHIPPING_CONSUMER, shipping::SERVICE, &["ShipmentDelivered"]),
        }
    }
}

/// What an event of another service asks of one order.
pub fn reaction(source: Source, event: &RecordedEvent) -> Result<Option<(Uuid, OrderCommand)>, HandlerError> {
    let reaction = match source {
        Source::Inventory => {
            match EventCodec::<InventoryEvent>::new().decode(event).map_err(HandlerError::permanent)? {
                InventoryEvent::StockReservedForOrder { order_id, .. } => {
                    Some((order_id, OrderCommand::MarkStockReserved))
                }
                InventoryEvent::StockReservationFailed { order_id, .. } => {
                    Some((order_id, OrderCommand::Reject { reason: RejectionReason::OutOfStock }))
                }
                _ => None,
            }
        }
        Source::Payments => match EventCodec::<PaymentsEvent>::new().decode(event).map_err(HandlerError::permanent)? {
            PaymentsEvent::PaymentCaptured { order_id, payment_id, .. } => {
                Some((order_id, OrderCommand::MarkPaid { payment_id }))
            }
            PaymentsEvent::PaymentDeclined { order_id, .. } => {
                Some((order_id, OrderCommand::Reject { reason: RejectionReason::PaymentDeclined }))
            }
            _ => None,
        },
        Source::Shipping => match EventCodec::<ShippingEvent>::new().decode(event).map_err(HandlerError::permanent)? {
            ShippingEvent::ShipmentDelivered { order_id, .. } => Some((order_id, OrderCommand::Deliver)),
            _ => None,
        },
    };
    Ok(reaction)
}

/// Reacts to one source's events on the orders' store.
#[derive(Debug)]
pub struct SagaReactions {
    source: Source,
    store: Arc<dyn EventStore>,
    orders: Arc<CommandHandler<Order>>,
    codec: EventCodec<<Order as Aggregate>::Event>,
}

impl SagaReactions {
    pub fn new(source: Source, store: Arc<dyn EventStore>, orders: Arc<CommandHandler<Order>>) -> Self {
        SagaReactions { source, store, orders, codec: EventCodec::new() }
    }

    /// Records that `event` was handled with nothing to do.
    async fn record_nothing(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        record_reaction(&*self.store, self.source.consumer(), event, Vec::new()).await?;
        Ok(())
    }
}

#[async_trait]
impl EventHandler for SagaReactions {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let Some((order_id, command)) = reaction(self.source, event)? else {
            return self.record_nothing(event).await;
        };
        let consumer = self.source.consumer();
        for _attempt in 0..MAX_ATTEMPTS {
            let loaded = match self.orders.load(order_id).await {
                Ok(loaded) => loaded,
                Err(CommandError::Codec(error)) => return Err(HandlerError::permanent(error)),
                Err(error) => return Err(HandlerError::transient(error)),
            };
            let events = match loaded.state.decide(&command) {
                Ok(events) => events,
                Err(OrderError::NotFound) => {
                    // Every saga event follows an OrderPlaced of this store; one that does not
                    // is not ours to act on, and retrying would not change that.
                    tracing::warn!(consumer, %order_id, event_id = %event.event_id, "a saga event for an unknown order");
                    return self.record_nothing(event).await;
                }
                Err(error) => {
                    tracing::warn!(consumer, %order_id, %error, "a saga reaction the order refused; nothing done");
                    return self.record_nothing(event).await;
                }
            };
            if events.is_empty() {
                tracing::debug!(consumer, %order_id, event_type = %event.event_type, "no longer fits the order");
                return self.record_nothing(event).await;
            }
            let stream_id = CommandHandler::<Order>::stream_id(order_id);
            let expected = ExpectedVersion::after(loaded.version);
            let append = caused_append(&self.codec, event, stream_id, expected, &events)?;
            if record_reaction(&*self.store, consumer, event, vec![append]).await? == Recorded::Done {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("order {order_id} kept changing; gave up after {MAX_ATTEMPTS} attempts")))
    }
}

/// Starts the three saga consumers; stops the ones started if a later one cannot start.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    orders: Arc<CommandHandler<Order>>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<Vec<ConsumerHandle>, BusError> {
    let mut started = Vec::new();
    for source in [Source::Inventory, Source::Payments, Source::Shipping] {
        let reactions = Arc::new(SagaReactions::new(source, store.clone(), orders.clone()));
        match bus.consume(source.definition(), reactions, consumers.clone()).await {
            Ok(handle) => started.push(handle),
            Err(error) => {
                for handle in started {
                    handle.stop().await;
                }
                return Err(error);
            }
        }
    }
    Ok(started)
}
