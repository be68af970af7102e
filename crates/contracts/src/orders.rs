//! orders: orders, their status history and their deadlines. The order stream is where
//! the checkout saga is decided: every other service reacts to its events, and it reacts
//! to theirs (SPEC §2).

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::AddressInput;
use crate::operation;
use crate::values::{Money, Page, PageRequest, PaymentMethod, Quantity};

pub const SERVICE: &str = "orders";

/// SPEC §2's status values. Terminal: delivered, rejected, cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    StockReserved,
    Paid,
    Confirmed,
    Shipped,
    Delivered,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Rejected | OrderStatus::Cancelled)
    }
}

/// Why an order was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    OutOfStock,
    PaymentDeclined,
    Timeout,
}

/// One line as the buyer asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItemRequest {
    pub product_id: Uuid,
    pub quantity: Quantity,
}

/// One line as placed: the price is the catalog's at placement time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

/// An order as its owner and the admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub reason: Option<RejectionReason>,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub shipping_address: AddressInput,
    pub payment_method: PaymentMethod,
    pub history: Vec<StatusChange>,
    pub created_at: DateTime<Utc>,
    /// The version of the order's stream, for `ETag`.
    pub version: u64,
}

/// The answer to a placement: accepted, the saga goes on without the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: Uuid,
    pub status: OrderStatus,
}

/// Places an order: prices are read from the catalog now and recorded in OrderPlaced.
/// `order_id` is chosen by the caller (derived from the Idempotency-Key, or new): placing
/// it again answers the first placement. Unknown or discontinued products, or more than
/// 50 lines, are Invalid (field `items`). Lines naming the same product are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderItemRequest>,
    pub shipping_address: AddressInput,
    pub payment_method: PaymentMethod,
}
operation!(PlaceOrder, SERVICE, OrderAccepted);

/// An order; `viewer` None means an admin. Another user's order is NotFound.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetOrder {
    pub order_id: Uuid,
    pub viewer: Option<Uuid>,
}
operation!(GetOrder, SERVICE, Order);

/// Orders newest first: the user's own (`user_id` Some), or all (admins), optionally of one
/// status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListOrders {
    pub user_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    pub page: PageRequest,
}
operation!(ListOrders, SERVICE, Page<Order>);

/// Cancels before dispatch (Conflict after; a rejected order is Conflict too; cancelling a
/// cancelled order answers it again). `viewer` as in GetOrder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelOrder {
    pub order_id: Uuid,
    pub viewer: Option<Uuid>,
}
operation!(CancelOrder, SERVICE, Order);

/// Asked by shipping when an admin dispatches: the order stream decides, so that a
/// dispatch and a cancellation can never both win. Conflict unless the order is confirmed
/// (or already shipped with the same tracking number: a retry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipOrder {
    pub order_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
}
operation!(ShipOrder, SERVICE, Order);

/// The events of an order's stream (`order-<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrdersEvent {
    OrderPlaced {
        order_id: Uuid,
        user_id: Uuid,
        lines: Vec<OrderLine>,
        total: Money,
        shipping_address: AddressInput,
        payment_method: PaymentMethod,
    },
    /// Inventory holds every line (status `stock_reserved`).
    OrderStockReserved {
        order_id: Uuid,
    },
    /// Payments captured the total (status `paid`); OrderConfirmed follows in the same append.
    OrderPaid {
        order_id: Uuid,
        payment_id: Uuid,
    },
    OrderConfirmed {
        order_id: Uuid,
        user_id: Uuid,
        shipping_address: AddressInput,
        lines: Vec<OrderLine>,
    },
    OrderRejected {
        order_id: Uuid,
        user_id: Uuid,
        reason: RejectionReason,
    },
    OrderCancellationRequested {
        order_id: Uuid,
        requested_by: Option<Uuid>,
    },
    OrderCancelled {
        order_id: Uuid,
        user_id: Uuid,
    },
    OrderShipped {
        order_id: Uuid,
        carrier: String,
        tracking_number: String,
    },
    OrderDelivered {
        order_id: Uuid,
        user_id: Uuid,
    },
}

impl DomainEvent for OrdersEvent {}

/// The setting naming how long an order may wait for stock and payment (SPEC §2).
pub const PAYMENT_TIMEOUT_SETTING: &str = "orders.payment_timeout";
