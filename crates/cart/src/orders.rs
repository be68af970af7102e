//! What the cart learns from orders: an order placed by a checkout and then confirmed has
//! been bought, so the cart it came from is emptied (SPEC §2 step 4, "the cart is
//! cleared").
//!
//! Only when that order is the cart's last checkout: a cart checked out again since holds
//! what the user wants next. A rejected or cancelled order leaves the cart as it is, so the
//! user can try again.

use runtime::{Recorded, caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::cart::CartEvent;
use contracts::orders::{self, OrdersEvent};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, RecordedEvent};
use uuid::Uuid;

use crate::domain::{Cart, CartCommand};

/// The consumer's name, which is also its inbox key.
pub const CONSUMER: &str = "cart.orders";

/// The orders events it reacts to.
pub const EVENT_TYPES: [&str; 1] = ["OrderConfirmed"];

/// How many times a reaction is decided again when the cart changed under it before it is
/// handed back to the consumer's retries.
const MAX_ATTEMPTS: u32 = 5;

/// Clears a cart when the order of its last checkout is confirmed, once per event.
#[derive(Debug)]
pub struct OrderReactions {
    store: Arc<dyn EventStore>,
    carts: CommandHandler<Cart>,
    orders_codec: EventCodec<OrdersEvent>,
    cart_codec: EventCodec<CartEvent>,
}

impl OrderReactions {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        OrderReactions {
            carts: CommandHandler::new(store.clone()),
            store,
            orders_codec: EventCodec::new(),
            cart_codec: EventCodec::new(),
        }
    }

    /// Decides `command` on the user's cart and appends the outcome with the inbox row of
    /// `event`, deciding again if the cart changed in between.
    async fn react(&self, event: &RecordedEvent, user_id: Uuid, command: CartCommand) -> Result<(), HandlerError> {
        let stream_id = CommandHandler::<Cart>::stream_id(user_id);
        for _attempt in 0..MAX_ATTEMPTS {
            let loaded = self.carts.load(user_id).await.map_err(HandlerError::transient)?;
            let decided = loaded.state.decide(&command).map_err(HandlerError::permanent)?;
            let mut appends = Vec::new();
            if !decided.is_empty() {
                let expected = ExpectedVersion::after(loaded.version);
                appends.push(caused_append(&self.cart_codec, event, stream_id.clone(), expected, &decided)?);
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
            OrdersEvent::OrderConfirmed { order_id, user_id, .. } => {
                self.react(event, user_id, CartCommand::ClearAfterOrder { user_id, order_id }).await
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
