//! The inventory's part in the checkout saga (SPEC §2): it holds stock for placed orders,
//! gives it back when an order closes, and takes it off the shelf when one is confirmed.
//!
//! Two consumers of orders' events:
//! - `inventory.reservations` (OrderPlaced, OrderRejected, OrderCancelled): an order's
//!   lines are reserved all or nothing, in one append over every product's stock stream
//!   (each at the version its decision was made on) and the order's reservation stream;
//!   a closed order's units are given back. Placement and closing are handled by the same
//!   consumer because it receives an order stream's events in order: a cancellation can
//!   then never be handled before the reservation it must undo, which two consumers
//!   could not promise (a reservation made after its order's release would hold its
//!   units forever).
//! - `inventory.settlement` (OrderConfirmed): the held units are committed. An order is
//!   confirmed only after its payment, which follows its reservation, so nothing races it
//!   but a cancellation, and either order of the two leaves the right stock: a release
//!   first makes the commit a no-op, a commit first makes the give-back a restock.
//!
//! A reservation that leaves a product under the live `inventory.low_stock_threshold`
//! (default 5) available units appends `LowStockDetected` to the product's stream in the
//! same append, so the alert is recorded exactly once with the reservation that caused it.
//!
//! Every reaction appends its effect and the inbox record in one `append_handled`, so a
//! redelivered event changes nothing; a version conflict (a restock, another instance) is
//! decided again on fresh state. Appended events carry `Metadata::caused_by` the order's
//! event, so they belong to the order's transaction.

use runtime::{Recorded, caused_append, record_reaction};
use std::sync::Arc;

use async_trait::async_trait;
use contracts::inventory::{InventoryEvent, ReservedLine};
use contracts::orders::{self, OrderLine, OrdersEvent};
use contracts::values::{Money, PaymentMethod};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::settings::Settings;
use eventshop_core::{
    Aggregate, CommandError, CommandHandler, EventCodec, EventStore, ExpectedVersion, Loaded, RecordedEvent,
    StreamAppend, StreamId, Version,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::{
    DEFAULT_LOW_STOCK_THRESHOLD, LOW_STOCK_THRESHOLD_SETTING, LineToReserve, OrderReservation, Reservation,
    StockCommand, StockItem, reserve_order, stock_product,
};

/// The consumer that reserves placed orders and gives back closed ones; also its inbox key.
pub const RESERVATIONS: &str = "inventory.reservations";
/// The consumer that commits confirmed orders; also its inbox key.
pub const SETTLEMENT: &str = "inventory.settlement";

/// The category of an order's reservation stream, `reservation-<order id>`.
pub const RESERVATION_CATEGORY: &str = "reservation";

/// How many times a reaction is decided again after losing a race before the consumer's
/// own retry (with backoff) takes over.
const MAX_ATTEMPTS: u32 = 10;

/// Where inventory records what it decided for an order.
pub fn reservation_stream(order_id: Uuid) -> StreamId {
    StreamId::new(RESERVATION_CATEGORY, order_id)
}

/// The low-stock threshold as the live setting says now: a whole number of units, or the
/// default when the setting is absent or unreadable.
pub async fn low_stock_threshold(settings: &dyn Settings) -> u64 {
    match settings.get(LOW_STOCK_THRESHOLD_SETTING).await {
        Ok(value) => parse_threshold(value.as_deref()),
        Err(error) => {
            tracing::warn!(setting = LOW_STOCK_THRESHOLD_SETTING, %error, "cannot read the setting; using the default");
            DEFAULT_LOW_STOCK_THRESHOLD
        }
    }
}

fn parse_threshold(value: Option<&str>) -> u64 {
    let Some(value) = value else { return DEFAULT_LOW_STOCK_THRESHOLD };
    value.trim().parse().unwrap_or_else(|_| {
        tracing::warn!(setting = LOW_STOCK_THRESHOLD_SETTING, %value, "not a whole number; using the default");
        DEFAULT_LOW_STOCK_THRESHOLD
    })
}

/// The low-stock threshold, followed live: every reservation reads it, and a read of a
/// NATS key-value bucket per reservation would cost a round trip on the saga's path.
#[derive(Debug)]
struct Threshold {
    settings: Arc<dyn Settings>,
    /// None when the setting cannot be watched: then each reservation asks for it.
    watched: Option<watch::Receiver<Option<String>>>,
}

impl Threshold {
    async fn follow(settings: Arc<dyn Settings>) -> Self {
        let watched = match settings.watch(LOW_STOCK_THRESHOLD_SETTING).await {
            Ok(receiver) => Some(receiver),
            Err(error) => {
                tracing::warn!(setting = LOW_STOCK_THRESHOLD_SETTING, %error, "cannot watch the setting; reading it each time");
                None
            }
        };
        Threshold { settings, watched }
    }

    async fn current(&self) -> u64 {
        match &self.watched {
            Some(receiver) => parse_threshold(receiver.borrow().as_deref()),
            None => low_stock_threshold(&*self.settings).await,
        }
    }
}

/// Starts both consumers. Orders' events must be published on the bus first, since the
/// in-process bus refuses a consumer whose source it does not know.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
    settings: Arc<dyn Settings>,
) -> Result<Vec<ConsumerHandle>, BusError> {
    let reactions = Arc::new(StockReactions::new(store, Threshold::follow(settings).await));
    let reservations = bus
        .consume(
            ConsumerDefinition::new(RESERVATIONS, orders::SERVICE, &["OrderPlaced", "OrderRejected", "OrderCancelled"]),
            Arc::new(OrderReactions { consumer: RESERVATIONS, reactions: reactions.clone(), codec: EventCodec::new() }),
            consumers.clone(),
        )
        .await?;
    let settlement = bus
        .consume(
            ConsumerDefinition::new(SETTLEMENT, orders::SERVICE, &["OrderConfirmed"]),
            Arc::new(OrderReactions { consumer: SETTLEMENT, reactions, codec: EventCodec::new() }),
            consumers,
        )
        .await;
    match settlement {
        Ok(settlement) => Ok(vec![reservations, settlement]),
        Err(error) => {
            reservations.stop().await;
            Err(error)
        }
    }
}

/// An order placed, as the reservation needs it.
#[derive(Debug, Clone, Copy)]
struct PlacedOrder<'a> {
    order_id: Uuid,
    user_id: Uuid,
    lines: &'a [OrderLine],
    total: Money,
    payment_method: PaymentMethod,
}

/// The decisions both consumers make, over the inventory's store.
#[derive(Debug)]
struct StockReactions {
    store: Arc<dyn EventStore>,
    stock: CommandHandler<StockItem>,
    codec: EventCodec<InventoryEvent>,
    low_stock_threshold: Threshold,
}

impl StockReactions {
    fn new(store: Arc<dyn EventStore>, low_stock_threshold: Threshold) -> Self {
        StockReactions {
            stock: CommandHandler::new(store.clone()),
            store,
            codec: EventCodec::new(),
            low_stock_threshold,
        }
    }

    /// What was decided for the order so far, and the version of its reservation stream.
    async fn reservation(&self, order_id: Uuid) -> Result<(Reservation, Version), HandlerError> {
        let recorded =
            self.store.read_stream(&reservation_stream(order_id), 0).await.map_err(HandlerError::transient)?;
        let mut reservation = Reservation::default();
        for event in &recorded {
            reservation = reservation.apply(&self.codec.decode(event).map_err(HandlerError::permanent)?);
        }
        Ok((reservation, recorded.last().map_or(0, |event| event.stream_version)))
    }

    async fn load_stock(&self, product_id: Uuid) -> Result<Loaded<StockItem>, HandlerError> {
        self.stock.load(product_id).await.map_err(load_failure)
    }

    /// The append of `events` to `stream_id`, decided at `expected`, caused by `cause`.
    fn append(
        &self,
        stream_id: StreamId,
        expected: ExpectedVersion,
        events: &[InventoryEvent],
        cause: &RecordedEvent,
    ) -> Result<StreamAppend, HandlerError> {
        caused_append(&self.codec, cause, stream_id, expected, events)
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

    /// Holds every line of a placed order, or none: `StockReserved` per product and
    /// `StockReservedForOrder`, or `StockReservationFailed` alone. An order decided before
    /// is left as it is.
    async fn reserve(&self, consumer: &str, cause: &RecordedEvent, order: PlacedOrder<'_>) -> Result<(), HandlerError> {
        let lines = merged(order.lines);
        let low_stock_threshold = self.low_stock_threshold.current().await;
        for _attempt in 0..MAX_ATTEMPTS {
            let (reservation, _) = self.reservation(order.order_id).await?;
            if reservation != Reservation::Undecided {
                return self.record(consumer, cause, Vec::new()).await.map(|_| ());
            }
            let mut stock = Vec::with_capacity(lines.len());
            for line in &lines {
                stock.push(self.load_stock(line.product_id).await?);
            }
            let to_reserve: Vec<LineToReserve<'_>> = lines
                .iter()
                .zip(&stock)
                .map(|(line, loaded)| LineToReserve {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    stock: &loaded.state,
                })
                .collect();
            let order_stream = reservation_stream(order.order_id);
            let appends = match reserve_order(order.order_id, &to_reserve, low_stock_threshold) {
                OrderReservation::Reserved(reserved) => {
                    let mut appends = Vec::with_capacity(lines.len() + 1);
                    for (line, loaded) in lines.iter().zip(&stock) {
                        // The line's reservation, and its low-stock alert if it made one.
                        let events: Vec<InventoryEvent> = reserved
                            .iter()
                            .filter(|event| stock_product(event) == Some(line.product_id))
                            .cloned()
                            .collect();
                        if events.is_empty() {
                            continue;
                        }
                        let expected = ExpectedVersion::after(loaded.version);
                        let stream_id = CommandHandler::<StockItem>::stream_id(line.product_id);
                        appends.push(self.append(stream_id, expected, &events, cause)?);
                    }
                    let reserved_for_order = InventoryEvent::StockReservedForOrder {
                        order_id: order.order_id,
                        user_id: order.user_id,
                        lines: lines.clone(),
                        total: order.total,
                        payment_method: order.payment_method,
                    };
                    appends.push(self.append(order_stream, ExpectedVersion::NoStream, &[reserved_for_order], cause)?);
                    appends
                }
                OrderReservation::Failed(failed) => {
                    vec![self.append(order_stream, ExpectedVersion::NoStream, &[failed], cause)?]
                }
            };
            if self.record(consumer, cause, appends).await? {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!(
            "the stock of order {} kept changing while it was reserved",
            order.order_id
        )))
    }

    /// Applies `command_of` to the stock of every line the order holds, in one append.
    async fn settle(
        &self,
        consumer: &str,
        cause: &RecordedEvent,
        order_id: Uuid,
        command_of: impl Fn(&ReservedLine) -> StockCommand,
    ) -> Result<(), HandlerError> {
        for _attempt in 0..MAX_ATTEMPTS {
            let (reservation, _) = self.reservation(order_id).await?;
            let mut appends = Vec::new();
            for line in reservation.reserved_lines() {
                let loaded = self.load_stock(line.product_id).await?;
                let events = match loaded.state.decide(&command_of(line)) {
                    Ok(events) => events,
                    Err(refused) => {
                        // The order's units went the other way first (released before a
                        // commit), or so long ago that the stock forgot them.
                        tracing::debug!(%order_id, product_id = %line.product_id, %refused, "nothing to settle");
                        Vec::new()
                    }
                };
                if !events.is_empty() {
                    let stream_id = CommandHandler::<StockItem>::stream_id(line.product_id);
                    appends.push(self.append(stream_id, ExpectedVersion::after(loaded.version), &events, cause)?);
                }
            }
            if self.record(consumer, cause, appends).await? {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("the stock of order {order_id} kept changing while it was settled")))
    }
}

/// One line per product, quantities summed: orders merges them already, and a stock
/// stream can take only one decision per append.
fn merged(lines: &[OrderLine]) -> Vec<ReservedLine> {
    let mut merged: Vec<ReservedLine> = Vec::with_capacity(lines.len());
    for line in lines {
        let quantity = u64::from(line.quantity);
        match merged.iter_mut().find(|reserved| reserved.product_id == line.product_id) {
            Some(reserved) => reserved.quantity += quantity,
            None => merged.push(ReservedLine { product_id: line.product_id, quantity }),
        }
    }
    merged
}

/// A store that cannot be read may come back; events that no longer decode will not.
fn load_failure<E: std::error::Error>(error: CommandError<E>) -> HandlerError {
    match error {
        CommandError::Codec(error) => HandlerError::permanent(error),
        other => HandlerError::transient(other),
    }
}

/// One consumer of orders' events; which events reach it is its definition's business.
#[derive(Debug)]
struct OrderReactions {
    consumer: &'static str,
    reactions: Arc<StockReactions>,
    codec: EventCodec<OrdersEvent>,
}

#[async_trait]
impl EventHandler for OrderReactions {
    #[tracing::instrument(skip_all, fields(consumer = self.consumer, event_id = %event.event_id))]
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let reactions = &self.reactions;
        match self.codec.decode(event).map_err(HandlerError::permanent)? {
            OrdersEvent::OrderPlaced { order_id, user_id, lines, total, payment_method, .. } => {
                let order = PlacedOrder { order_id, user_id, lines: &lines, total, payment_method };
                reactions.reserve(self.consumer, event, order).await
            }
            OrdersEvent::OrderRejected { order_id, .. } | OrdersEvent::OrderCancelled { order_id, .. } => {
                let give_back = |line: &ReservedLine| StockCommand::GiveBack {
                    product_id: line.product_id,
                    order_id,
                    quantity: line.quantity,
                };
                reactions.settle(self.consumer, event, order_id, give_back).await
            }
            OrdersEvent::OrderConfirmed { order_id, .. } => {
                let commit = |line: &ReservedLine| StockCommand::Commit { product_id: line.product_id, order_id };
                reactions.settle(self.consumer, event, order_id, commit).await
            }
            // Not asked for; nothing to do.
            _ => Ok(()),
        }
    }
}
