//! The `Order` aggregate: one order's status machine, where the checkout saga is decided.
//!
//! Pure decisions, no I/O. Placement takes lines already priced by the catalog (the handler
//! asks it), so the aggregate never waits on another service. The saga's reactions (stock
//! reserved, paid, rejected, delivered) are idempotent and forgiving: one that arrives for
//! a status it does not fit (stock reserved after a timeout rejection, a second capture)
//! changes nothing and is not an error, so that the consumers never dead-letter on the
//! ordinary races between services. Only the commands people send (cancel, ship) are
//! refused, because their caller must learn that they did not happen.

use contracts::identity::AddressInput;
use contracts::orders::{OrderLine, OrderStatus, OrdersEvent, RejectionReason};
use contracts::values::{Currency, Money, PaymentMethod};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most lines an order may have.
pub const MAX_LINES: usize = 50;

/// What can happen to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Places the order with lines priced by the catalog. Placing a placed order changes
    /// nothing (a retry with the same id).
    Place {
        order_id: Uuid,
        user_id: Uuid,
        lines: Vec<OrderLine>,
        shipping_address: AddressInput,
        payment_method: PaymentMethod,
    },
    /// Inventory holds every line.
    MarkStockReserved,
    /// Payments captured the total: the order is paid and confirmed at once.
    MarkPaid { payment_id: Uuid },
    /// Out of stock, payment declined, or the deadline passed.
    Reject { reason: RejectionReason },
    /// The owner or an admin cancels before dispatch.
    Cancel { requested_by: Option<Uuid> },
    /// Shipping dispatches the order's shipment.
    Ship { carrier: String, tracking_number: String },
    /// Shipping delivered it.
    Deliver,
}

/// Why an order refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("no order has been placed with this id")]
    NotFound,
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order may have at most {MAX_LINES} lines, this one has {count}")]
    TooManyLines { count: usize },
    #[error("the order has been dispatched")]
    AlreadyDispatched,
    #[error("the order was rejected")]
    AlreadyRejected,
    #[error("the order cannot be shipped while it is {status:?}; only a confirmed order ships")]
    NotConfirmed { status: OrderStatus },
    #[error("the order was already shipped with carrier {carrier}, tracking number {tracking_number}")]
    ShippedOtherwise { carrier: String, tracking_number: String },
}

/// What an order was placed with; set once by `OrderPlaced`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub shipping_address: AddressInput,
    pub payment_method: PaymentMethod,
}

/// How a shipped order travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    pub carrier: String,
    pub tracking_number: String,
}

/// One order (stream `order-<order id>`). `placed` is `None` until it is placed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    placed: Option<PlacedOrder>,
    status: Option<OrderStatus>,
    reason: Option<RejectionReason>,
    dispatch: Option<Dispatch>,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
}

impl Order {
    pub fn placed(&self) -> Option<&PlacedOrder> {
        self.placed.as_ref()
    }

    /// The status, once placed.
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }

    pub fn reason(&self) -> Option<RejectionReason> {
        self.reason
    }

    pub fn dispatch(&self) -> Option<&Dispatch> {
        self.dispatch.as_ref()
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The placed order and its status, or NotFound for an order never placed.
    fn current(&self) -> Result<(&PlacedOrder, OrderStatus), OrderError> {
        match (&self.placed, self.status) {
            (Some(placed), Some(status)) => Ok((placed, status)),
            _ => Err(OrderError::NotFound),
        }
    }

    fn place(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        lines: &[OrderLine],
        shipping_address: &AddressInput,
        payment_method: PaymentMethod,
    ) -> Result<Vec<OrdersEvent>, OrderError> {
        if self.placed.is_some() {
            return Ok(Vec::new());
        }
        if lines.is_empty() {
            return Err(OrderError::NoLines);
        }
        if lines.len() > MAX_LINES {
            return Err(OrderError::TooManyLines { count: lines.len() });
        }
        let currency = lines.first().map_or(Currency::default(), |line| line.unit_price.currency);
        let amount =
            lines.iter().map(|line| line.unit_price.times(line.quantity).amount).fold(0_i64, i64::saturating_add);
        Ok(vec![OrdersEvent::OrderPlaced {
            order_id,
            user_id,
            lines: lines.to_vec(),
            total: Money::new(amount, currency),
            shipping_address: shipping_address.clone(),
            payment_method,
        }])
    }

    fn mark_stock_reserved(&self) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        if status != OrderStatus::Pending {
            return Ok(Vec::new());
        }
        Ok(vec![OrdersEvent::OrderStockReserved { order_id: placed.order_id }])
    }

    fn mark_paid(&self, payment_id: Uuid) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        if !matches!(status, OrderStatus::Pending | OrderStatus::StockReserved) {
            // Rejected or cancelled first: payments refunds the late capture by itself.
            return Ok(Vec::new());
        }
        Ok(vec![
            OrdersEvent::OrderPaid { order_id: placed.order_id, payment_id },
            OrdersEvent::OrderConfirmed {
                order_id: placed.order_id,
                user_id: placed.user_id,
                shipping_address: placed.shipping_address.clone(),
                lines: placed.lines.clone(),
            },
        ])
    }

    fn reject(&self, reason: RejectionReason) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        if !matches!(status, OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid) {
            return Ok(Vec::new());
        }
        Ok(vec![OrdersEvent::OrderRejected { order_id: placed.order_id, user_id: placed.user_id, reason }])
    }

    fn cancel(&self, requested_by: Option<Uuid>) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        match status {
            OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid | OrderStatus::Confirmed => Ok(vec![
                OrdersEvent::OrderCancellationRequested { order_id: placed.order_id, requested_by },
                OrdersEvent::OrderCancelled { order_id: placed.order_id, user_id: placed.user_id },
            ]),
            OrderStatus::Cancelled => Ok(Vec::new()),
            OrderStatus::Shipped | OrderStatus::Delivered => Err(OrderError::AlreadyDispatched),
            OrderStatus::Rejected => Err(OrderError::AlreadyRejected),
        }
    }

    fn ship(&self, carrier: &str, tracking_number: &str) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        match status {
            OrderStatus::Confirmed => Ok(vec![OrdersEvent::OrderShipped {
                order_id: placed.order_id,
                carrier: carrier.to_owned(),
                tracking_number: tracking_number.to_owned(),
            }]),
            OrderStatus::Shipped | OrderStatus::Delivered => match &self.dispatch {
                // The same dispatch again: shipping retried after losing our answer.
                Some(dispatch) if dispatch.carrier == carrier && dispatch.tracking_number == tracking_number => {
                    Ok(Vec::new())
                }
                Some(dispatch) => Err(OrderError::ShippedOtherwise {
                    carrier: dispatch.carrier.clone(),
                    tracking_number: dispatch.tracking_number.clone(),
                }),
                None => Err(OrderError::NotConfirmed { status }),
            },
            other => Err(OrderError::NotConfirmed { status: other }),
        }
    }

    fn deliver(&self) -> Result<Vec<OrdersEvent>, OrderError> {
        let (placed, status) = self.current()?;
        if status != OrderStatus::Shipped {
            return Ok(Vec::new());
        }
        Ok(vec![OrdersEvent::OrderDelivered { order_id: placed.order_id, user_id: placed.user_id }])
    }
}

/// The status an event moves an order to; `None` for an event that is not a status change.
pub fn status_after(event: &OrdersEvent) -> Option<OrderStatus> {
    match event {
        OrdersEvent::OrderPlaced { .. } => Some(OrderStatus::Pending),
        OrdersEvent::OrderStockReserved { .. } => Some(OrderStatus::StockReserved),
        OrdersEvent::OrderPaid { .. } => Some(OrderStatus::Paid),
        OrdersEvent::OrderConfirmed { .. } => Some(OrderStatus::Confirmed),
        OrdersEvent::OrderShipped { .. } => Some(OrderStatus::Shipped),
        OrdersEvent::OrderDelivered { .. } => Some(OrderStatus::Delivered),
        OrdersEvent::OrderRejected { .. } => Some(OrderStatus::Rejected),
        OrdersEvent::OrderCancelled { .. } => Some(OrderStatus::Cancelled),
        OrdersEvent::OrderCancellationRequested { .. } => None,
    }
}

/// The order an event is about.
pub fn order_id_of(event: &OrdersEvent) -> Uuid {
    match event {
        OrdersEvent::OrderPlaced { order_id, .. }
        | OrdersEvent::OrderStockReserved { order_id }
        | OrdersEvent::OrderPaid { order_id, .. }
        | OrdersEvent::OrderConfirmed { order_id, .. }
        | OrdersEvent::OrderRejected { order_id, .. }
        | OrdersEvent::OrderCancellationRequested { order_id, .. }
        | OrdersEvent::OrderCancelled { order_id, .. }
        | OrdersEvent::OrderShipped { order_id, .. }
        | OrdersEvent::OrderDelivered { order_id, .. } => *order_id,
    }
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";

    type Command = OrderCommand;
    type Event = OrdersEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrdersEvent>, OrderError> {
        match command {
            OrderCommand::Place { order_id, user_id, lines, shipping_address, payment_method } => {
                self.place(*order_id, *user_id, lines, shipping_address, *payment_method)
            }
            OrderCommand::MarkStockReserved => self.mark_stock_reserved(),
            OrderCommand::MarkPaid { payment_id } => self.mark_paid(*payment_id),
            OrderCommand::Reject { reason } => self.reject(*reason),
            OrderCommand::Cancel { requested_by } => self.cancel(*requested_by),
            OrderCommand::Ship { carrier, tracking_number } => self.ship(carrier, tracking_number),
            OrderCommand::Deliver => self.deliver(),
        }
    }

    fn apply(mut self, event: &OrdersEvent) -> Self {
        self.version += 1;
        if let Some(status) = status_after(event) {
            self.status = Some(status);
        }
        match event {
            OrdersEvent::OrderPlaced { order_id, user_id, lines, total, shipping_address, payment_method } => {
                self.placed = Some(PlacedOrder {
                    order_id: *order_id,
                    user_id: *user_id,
                    lines: lines.clone(),
                    total: *total,
                    shipping_address: shipping_address.clone(),
                    payment_method: *payment_method,
                });
            }
            OrdersEvent::OrderRejected { reason, .. } => self.reason = Some(*reason),
            OrdersEvent::OrderShipped { carrier, tracking_number, .. } => {
                self.dispatch = Some(Dispatch { carrier: carrier.clone(), tracking_number: tracking_number.clone() });
            }
            OrdersEvent::OrderStockReserved { .. }
            | OrdersEvent::OrderPaid { .. }
            | OrdersEvent::OrderConfirmed { .. }
            | OrdersEvent::OrderCancellationRequested { .. }
            | OrdersEvent::OrderCancelled { .. }
            | OrdersEvent::OrderDelivered { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::values::{AddressLine, CardToken, CountryCode, PersonName};
    use eventshop_core::testing::AggregateTest;

    const ORDER: Uuid = Uuid::from_u128(1);
    const USER: Uuid = Uuid::from_u128(2);
    const PRODUCT: Uuid = Uuid::from_u128(3);
    const OTHER_PRODUCT: Uuid = Uuid::from_u128(4);
    const PAYMENT: Uuid = Uuid::from_u128(5);

    fn text<T: TryFrom<String>>(value: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        T::try_from(value.to_owned()).expect("a valid value")
    }

    fn address() -> AddressInput {
        AddressInput {
            name: text::<PersonName>("Ada Lovelace"),
            line1: text::<AddressLine>("12 Analytical Row"),
            line2: None,
            city: text::<AddressLine>("London"),
            postal_code: text::<AddressLine>("N1 7AA"),
            country: text::<CountryCode>("GB"),
        }
    }

    fn lines() -> Vec<OrderLine> {
        vec![
            OrderLine { product_id: PRODUCT, name: "Kettle".into(), quantity: 2, unit_price: Money::eur(1_999) },
            OrderLine { product_id: OTHER_PRODUCT, name: "Mug".into(), quantity: 3, unit_price: Money::eur(500) },
        ]
    }

    fn place() -> OrderCommand {
        OrderCommand::Place {
            order_id: ORDER,
            user_id: USER,
            lines: lines(),
            shipping_address: address(),
            payment_method: PaymentMethod::Card { token: CardToken::Visa },
        }
    }

    fn placed() -> OrdersEvent {
        OrdersEvent::OrderPlaced {
            order_id: ORDER,
            user_id: USER,
            lines: lines(),
            total: Money::eur(2 * 1_999 + 3 * 500),
            shipping_address: address(),
            payment_method: PaymentMethod::Card { token: CardToken::Visa },
        }
    }

    fn stock_reserved() -> OrdersEvent {
        OrdersEvent::OrderStockReserved { order_id: ORDER }
    }

    fn paid() -> OrdersEvent {
        OrdersEvent::OrderPaid { order_id: ORDER, payment_id: PAYMENT }
    }

    fn confirmed() -> OrdersEvent {
        OrdersEvent::OrderConfirmed { order_id: ORDER, user_id: USER, shipping_address: address(), lines: lines() }
    }

    fn rejected(reason: RejectionReason) -> OrdersEvent {
        OrdersEvent::OrderRejected { order_id: ORDER, user_id: USER, reason }
    }

    fn cancellation(requested_by: Option<Uuid>) -> Vec<OrdersEvent> {
        vec![
            OrdersEvent::OrderCancellationRequested { order_id: ORDER, requested_by },
            OrdersEvent::OrderCancelled { order_id: ORDER, user_id: USER },
        ]
    }

    fn shipped() -> OrdersEvent {
        OrdersEvent::OrderShipped { order_id: ORDER, carrier: "DHL".into(), tracking_number: "JD0001".into() }
    }

    fn delivered() -> OrdersEvent {
        OrdersEvent::OrderDelivered { order_id: ORDER, user_id: USER }
    }

    fn ship(tracking_number: &str) -> OrderCommand {
        OrderCommand::Ship { carrier: "DHL".into(), tracking_number: tracking_number.into() }
    }

    /// Every history that ends in each status, to check each command against each status.
    fn histories() -> Vec<(OrderStatus, Vec<OrdersEvent>)> {
        let mut cancelled = vec![placed(), stock_reserved()];
        cancelled.extend(cancellation(Some(USER)));
        vec![
            (OrderStatus::Pending, vec![placed()]),
            (OrderStatus::StockReserved, vec![placed(), stock_reserved()]),
            (OrderStatus::Paid, vec![placed(), paid()]),
            (OrderStatus::Confirmed, vec![placed(), stock_reserved(), paid(), confirmed()]),
            (OrderStatus::Shipped, vec![placed(), paid(), confirmed(), shipped()]),
            (OrderStatus::Delivered, vec![placed(), paid(), confirmed(), shipped(), delivered()]),
            (OrderStatus::Rejected, vec![placed(), rejected(RejectionReason::OutOfStock)]),
            (OrderStatus::Cancelled, cancelled),
        ]
    }

    #[test]
    fn each_history_ends_in_its_status() {
        for (status, history) in histories() {
            let order = Order::default().apply_all(&history);
            assert_eq!(order.status(), Some(status));
            assert_eq!(order.version(), history.len() as u64);
        }
    }

    #[test]
    fn placing_records_the_priced_lines_and_their_total() {
        AggregateTest::<Order>::given_no_history().when(place()).then_expect_events(vec![placed()]);
    }

    #[test]
    fn placing_again_changes_nothing() {
        AggregateTest::<Order>::given([placed()]).when(place()).then_expect_events(vec![]);
        AggregateTest::<Order>::given([placed(), rejected(RejectionReason::Timeout)])
            .when(place())
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_order_needs_between_one_and_fifty_lines() {
        let with_lines = |lines: Vec<OrderLine>| OrderCommand::Place {
            order_id: ORDER,
            user_id: USER,
            lines,
            shipping_address: address(),
            payment_method: PaymentMethod::Wallet,
        };
        AggregateTest::<Order>::given_no_history().when(with_lines(vec![])).then_expect_error(OrderError::NoLines);
        let line = lines()[0].clone();
        let many: Vec<OrderLine> =
            (0..51).map(|index| OrderLine { product_id: Uuid::from_u128(100 + index), ..line.clone() }).collect();
        AggregateTest::<Order>::given_no_history()
            .when(with_lines(many.clone()))
            .then_expect_error(OrderError::TooManyLines { count: 51 });
        let placed = AggregateTest::<Order>::given_no_history().when(with_lines(many[..50].to_vec())).then_state();
        assert_eq!(placed.placed().map(|order| order.total), Some(Money::eur(50 * 2 * 1_999)));
    }

    #[test]
    fn stock_reserved_moves_a_pending_order_only() {
        AggregateTest::<Order>::given([placed()])
            .when(OrderCommand::MarkStockReserved)
            .then_expect_events(vec![stock_reserved()]);
        for (status, history) in histories() {
            if status != OrderStatus::Pending {
                AggregateTest::<Order>::given(history).when(OrderCommand::MarkStockReserved).then_expect_events(vec![]);
            }
        }
    }

    #[test]
    fn a_capture_pays_and_confirms_a_pending_or_reserved_order_in_one_decision() {
        for history in [vec![placed()], vec![placed(), stock_reserved()]] {
            AggregateTest::<Order>::given(history)
                .when(OrderCommand::MarkPaid { payment_id: PAYMENT })
                .then_expect_events(vec![paid(), confirmed()]);
        }
    }

    #[test]
    fn a_late_or_repeated_capture_changes_nothing() {
        for (status, history) in histories() {
            if !matches!(status, OrderStatus::Pending | OrderStatus::StockReserved) {
                AggregateTest::<Order>::given(history)
                    .when(OrderCommand::MarkPaid { payment_id: PAYMENT })
                    .then_expect_events(vec![]);
            }
        }
    }

    #[test]
    fn an_order_in_progress_is_rejected_with_its_reason() {
        for reason in [RejectionReason::OutOfStock, RejectionReason::PaymentDeclined, RejectionReason::Timeout] {
            for history in [vec![placed()], vec![placed(), stock_reserved()], vec![placed(), paid()]] {
                let outcome = AggregateTest::<Order>::given(history).when(OrderCommand::Reject { reason });
                outcome.then_expect_events(vec![rejected(reason)]);
            }
        }
        let order = AggregateTest::<Order>::given([placed()])
            .when(OrderCommand::Reject { reason: RejectionReason::Timeout })
            .then_state();
        assert_eq!((order.status(), order.reason()), (Some(OrderStatus::Rejected), Some(RejectionReason::Timeout)));
    }

    #[test]
    fn a_confirmed_or_closed_order_is_not_rejected() {
        for (status, history) in histories() {
            if !matches!(status, OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid) {
                AggregateTest::<Order>::given(history)
                    .when(OrderCommand::Reject { reason: RejectionReason::Timeout })
                    .then_expect_events(vec![]);
            }
        }
    }

    #[test]
    fn an_order_not_yet_dispatched_is_cancelled_with_who_asked() {
        for (status, history) in histories() {
            if matches!(
                status,
                OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid | OrderStatus::Confirmed
            ) {
                AggregateTest::<Order>::given(history)
                    .when(OrderCommand::Cancel { requested_by: None })
                    .then_expect_events(cancellation(None));
            }
        }
    }

    #[test]
    fn cancelling_twice_changes_nothing_and_after_dispatch_or_rejection_is_refused() {
        let history = |status| histories().into_iter().find(|(each, _)| *each == status).map(|(_, events)| events);
        let cancel = || OrderCommand::Cancel { requested_by: Some(USER) };
        AggregateTest::<Order>::given(history(OrderStatus::Cancelled).unwrap_or_default())
            .when(cancel())
            .then_expect_events(vec![]);
        for dispatched in [OrderStatus::Shipped, OrderStatus::Delivered] {
            AggregateTest::<Order>::given(history(dispatched).unwrap_or_default())
                .when(cancel())
                .then_expect_error(OrderError::AlreadyDispatched);
        }
        AggregateTest::<Order>::given(history(OrderStatus::Rejected).unwrap_or_default())
            .when(cancel())
            .then_expect_error(OrderError::AlreadyRejected);
    }

    #[test]
    fn a_confirmed_order_ships_and_the_same_dispatch_again_changes_nothing() {
        AggregateTest::<Order>::given([placed(), paid(), confirmed()])
            .when(ship("JD0001"))
            .then_expect_events(vec![shipped()]);
        AggregateTest::<Order>::given([placed(), paid(), confirmed(), shipped()])
            .when(ship("JD0001"))
            .then_expect_events(vec![]);
        AggregateTest::<Order>::given([placed(), paid(), confirmed(), shipped(), delivered()])
            .when(ship("JD0001"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_a_confirmed_order_ships_and_only_once() {
        AggregateTest::<Order>::given([placed(), paid(), confirmed(), shipped()])
            .when(ship("OTHER"))
            .then_expect_error(OrderError::ShippedOtherwise {
                carrier: "DHL".into(),
                tracking_number: "JD0001".into(),
            });
        for (status, history) in histories() {
            if matches!(
                status,
                OrderStatus::Pending
                    | OrderStatus::StockReserved
                    | OrderStatus::Paid
                    | OrderStatus::Rejected
                    | OrderStatus::Cancelled
            ) {
                AggregateTest::<Order>::given(history)
                    .when(ship("JD0001"))
                    .then_expect_error(OrderError::NotConfirmed { status });
            }
        }
    }

    #[test]
    fn a_shipped_order_is_delivered_once() {
        AggregateTest::<Order>::given([placed(), paid(), confirmed(), shipped()])
            .when(OrderCommand::Deliver)
            .then_expect_events(vec![delivered()]);
        for (status, history) in histories() {
            if status != OrderStatus::Shipped {
                AggregateTest::<Order>::given(history).when(OrderCommand::Deliver).then_expect_events(vec![]);
            }
        }
    }

    #[test]
    fn an_order_never_placed_is_not_found_by_any_other_command() {
        for command in [
            OrderCommand::MarkStockReserved,
            OrderCommand::MarkPaid { payment_id: PAYMENT },
            OrderCommand::Reject { reason: RejectionReason::Timeout },
            OrderCommand::Cancel { requested_by: None },
            ship("JD0001"),
            OrderCommand::Deliver,
        ] {
            AggregateTest::<Order>::given_no_history().when(command).then_expect_error(OrderError::NotFound);
        }
    }

    #[test]
    fn the_state_counts_its_events_as_the_stream_version() {
        let order = AggregateTest::<Order>::given([placed(), stock_reserved()])
            .when(OrderCommand::Cancel { requested_by: None })
            .then_state();
        assert_eq!(order.version(), 4);
        assert_eq!(order.status(), Some(OrderStatus::Cancelled));
    }
}
