//! The payments' part in the checkout saga (SPEC §2 and §3):
//! - `payments.charges` consumes inventory's `StockReservedForOrder` and charges the order's
//!   payment method: the user's wallet, or a card;
//! - `payments.compensations` consumes orders' `OrderRejected` and `OrderCancelled`: a
//!   captured payment is refunded, and one not decided yet is abandoned so that a late
//!   charge finds it closed ("a late capture is refunded", or rather never made).
//!
//! Each reaction decides on the aggregates as loaded and appends what they decided, with
//! their versions, and the inbox record in one `append_handled`: all or nothing, once per
//! event. A version conflict (another instance, or the other consumer) is decided again on
//! fresh state.
//!
//! A wallet payment is recorded on the wallet's stream (its balance moves with it), a card
//! payment on `payment-<payment id>`. A compensation may arrive before the charge (they come
//! from different services, so nothing orders them) and does not know the payment method,
//! so an undecided payment is abandoned on both streams in one append. The charge, whichever
//! method it uses, then finds its payment abandoned; and whichever of the two appends comes
//! second is refused by its expected version and decided again, so a capture and an
//! abandonment can never both stand.

use runtime::{Recorded, caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::inventory::{self, InventoryEvent};
use contracts::orders::{self, OrdersEvent};
use contracts::payments::{PaymentsEvent, payment_id};
use contracts::values::PaymentMethod;
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{
    Aggregate, CommandError, CommandHandler, EventCodec, EventStore, ExpectedVersion, RecordedEvent, StreamAppend,
    StreamId, Version,
};
use uuid::Uuid;

use crate::domain::{CardPayment, CardPaymentCommand, PaymentStatus, Wallet, WalletCommand};

/// The consumer that charges orders whose stock is reserved; also its inbox key.
pub const CHARGES: &str = "payments.charges";
/// The consumer that refunds or abandons the payments of closed orders; also its inbox key.
pub const COMPENSATIONS: &str = "payments.compensations";

/// How many times a reaction is decided again after losing a race before the consumer's
/// own retry (with backoff) takes over.
const MAX_ATTEMPTS: u32 = 10;

/// Starts both consumers. Inventory's and orders' events must be published on the bus
/// first, since the in-process bus refuses a consumer whose source it does not know.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
) -> Result<Vec<ConsumerHandle>, BusError> {
    let reactions = Arc::new(PaymentReactions::new(store));
    let charges = bus
        .consume(
            ConsumerDefinition::new(CHARGES, inventory::SERVICE, &["StockReservedForOrder"]),
            Arc::new(Charges { reactions: reactions.clone(), codec: EventCodec::new() }),
            consumers.clone(),
        )
        .await?;
    let compensations = bus
        .consume(
            ConsumerDefinition::new(COMPENSATIONS, orders::SERVICE, &["OrderRejected", "OrderCancelled"]),
            Arc::new(Compensations { reactions, codec: EventCodec::new() }),
            consumers,
        )
        .await;
    match compensations {
        Ok(compensations) => Ok(vec![charges, compensations]),
        Err(error) => {
            charges.stop().await;
            Err(error)
        }
    }
}

/// What both consumers share: the store and the two payment aggregates.
#[derive(Debug)]
struct PaymentReactions {
    store: Arc<dyn EventStore>,
    wallets: CommandHandler<Wallet>,
    cards: CommandHandler<CardPayment>,
    codec: EventCodec<PaymentsEvent>,
}

impl PaymentReactions {
    fn new(store: Arc<dyn EventStore>) -> Self {
        PaymentReactions {
            wallets: CommandHandler::new(store.clone()),
            cards: CommandHandler::new(store.clone()),
            store,
            codec: EventCodec::new(),
        }
    }

    /// The append of `events` decided on `stream_id` at `version`, caused by `cause`; none
    /// when nothing was decided.
    fn append(
        &self,
        stream_id: StreamId,
        version: Version,
        events: &[PaymentsEvent],
        cause: &RecordedEvent,
    ) -> Result<Option<StreamAppend>, HandlerError> {
        if events.is_empty() {
            return Ok(None);
        }
        caused_append(&self.codec, cause, stream_id, ExpectedVersion::after(version), events).map(Some)
    }

    /// Records the decision with the inbox. True when it is recorded (now or before);
    /// false when a stream moved since it was loaded, so it must be decided again.
    async fn record(
        &self,
        consumer: &str,
        cause: &RecordedEvent,
        appends: Vec<StreamAppend>,
    ) -> Result<bool, HandlerError> {
        Ok(record_reaction(&*self.store, consumer, cause, appends).await? == Recorded::Done)
    }

    /// Charges the order's payment: on the wallet, or by card. Decided once; an abandoned
    /// payment is not charged.
    async fn charge(
        &self,
        cause: &RecordedEvent,
        order_id: Uuid,
        user_id: Uuid,
        total: contracts::values::Money,
        method: PaymentMethod,
    ) -> Result<(), HandlerError> {
        let payment_id = payment_id(order_id);
        for _attempt in 0..MAX_ATTEMPTS {
            let append = match method {
                PaymentMethod::Wallet => {
                    let wallet = self.wallets.load(user_id).await.map_err(load_failure)?;
                    let capture = WalletCommand::Capture { user_id, payment_id, order_id, amount: total };
                    let events = wallet.state.decide(&capture).map_err(HandlerError::permanent)?;
                    self.append(CommandHandler::<Wallet>::stream_id(user_id), wallet.version, &events, cause)?
                }
                PaymentMethod::Card { token } => {
                    let card = self.cards.load(payment_id).await.map_err(load_failure)?;
                    let capture = CardPaymentCommand::Capture { payment_id, order_id, user_id, amount: total, token };
                    let events = card.state.decide(&capture).map_err(HandlerError::permanent)?;
                    self.append(CommandHandler::<CardPayment>::stream_id(payment_id), card.version, &events, cause)?
                }
            };
            if self.record(CHARGES, cause, append.into_iter().collect()).await? {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("the payment of order {order_id} kept changing while it was charged")))
    }

    /// Closes the payment of an order that closed: refunds it if it was captured, abandons
    /// it (on both of its possible streams) if it was not decided, else leaves it.
    async fn compensate(&self, cause: &RecordedEvent, order_id: Uuid, user_id: Uuid) -> Result<(), HandlerError> {
        let payment_id = payment_id(order_id);
        let card_stream = CommandHandler::<CardPayment>::stream_id(payment_id);
        let wallet_stream = CommandHandler::<Wallet>::stream_id(user_id);
        for _attempt in 0..MAX_ATTEMPTS {
            let card = self.cards.load(payment_id).await.map_err(load_failure)?;
            let wallet = self.wallets.load(user_id).await.map_err(load_failure)?;
            let appends = match (card.state.payment(), wallet.state.payment(payment_id)) {
                (Some(paid_by_card), _) => match paid_by_card.status {
                    PaymentStatus::Captured => {
                        let refund = CardPaymentCommand::Refund { payment_id };
                        let events = card.state.decide(&refund).map_err(HandlerError::permanent)?;
                        self.append(card_stream.clone(), card.version, &events, cause)?.into_iter().collect()
                    }
                    PaymentStatus::Declined | PaymentStatus::Refunded | PaymentStatus::Abandoned => Vec::new(),
                },
                (None, Some(paid_from_wallet)) => match paid_from_wallet.status {
                    PaymentStatus::Captured => {
                        let refund = WalletCommand::Refund { payment_id };
                        let events = wallet.state.decide(&refund).map_err(HandlerError::permanent)?;
                        self.append(wallet_stream.clone(), wallet.version, &events, cause)?.into_iter().collect()
                    }
                    PaymentStatus::Declined | PaymentStatus::Refunded | PaymentStatus::Abandoned => Vec::new(),
                },
                (None, None) => {
                    let on_card = card
                        .state
                        .decide(&CardPaymentCommand::Abandon { payment_id, order_id, user_id })
                        .map_err(HandlerError::permanent)?;
                    let on_wallet = wallet
                        .state
                        .decide(&WalletCommand::Abandon { user_id, payment_id, order_id })
                        .map_err(HandlerError::permanent)?;
                    [
                        self.append(card_stream.clone(), card.version, &on_card, cause)?,
                        self.append(wallet_stream.clone(), wallet.version, &on_wallet, cause)?,
                    ]
                    .into_iter()
                    .flatten()
                    .collect()
                }
            };
            if self.record(COMPENSATIONS, cause, appends).await? {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("the payment of order {order_id} kept changing while it was closed")))
    }
}

/// A store that cannot be read may come back; events that no longer decode will not.
fn load_failure<E: std::error::Error>(error: CommandError<E>) -> HandlerError {
    match error {
        CommandError::Codec(error) => HandlerError::permanent(error),
        other => HandlerError::transient(other),
    }
}

/// `payments.charges`: inventory held every line of an order, so its total is charged.
#[derive(Debug)]
struct Charges {
    reactions: Arc<PaymentReactions>,
    codec: EventCodec<InventoryEvent>,
}

#[async_trait]
impl EventHandler for Charges {
    #[tracing::instrument(skip_all, fields(consumer = CHARGES, event_id = %event.event_id))]
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        match self.codec.decode(event).map_err(HandlerError::permanent)? {
            InventoryEvent::StockReservedForOrder { order_id, user_id, total, payment_method, .. } => {
                self.reactions.charge(event, order_id, user_id, total, payment_method).await
            }
            // Not asked for; nothing to charge.
            _ => Ok(()),
        }
    }
}

/// `payments.compensations`: an order closed, so its payment is refunded or abandoned.
#[derive(Debug)]
struct Compensations {
    reactions: Arc<PaymentReactions>,
    codec: EventCodec<OrdersEvent>,
}

#[async_trait]
impl EventHandler for Compensations {
    #[tracing::instrument(skip_all, fields(consumer = COMPENSATIONS, event_id = %event.event_id))]
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        match self.codec.decode(event).map_err(HandlerError::permanent)? {
            OrdersEvent::OrderRejected { order_id, user_id, .. }
            | OrdersEvent::OrderCancelled { order_id, user_id } => {
                self.reactions.compensate(event, order_id, user_id).await
            }
            // Not asked for; nothing to close.
            _ => Ok(()),
        }
    }
}
