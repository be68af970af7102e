//! inventory: stock per product and the reservations that hold it for orders.

use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{Money, PaymentMethod, Quantity};

pub const SERVICE: &str = "inventory";

/// A product's stock. `on_hand` = restocked − committed; `reserved` = held for orders in
/// progress; `available` = `on_hand` − `reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StockLevels {
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub product_id: Uuid,
    #[serde(flatten)]
    pub levels: StockLevels,
    /// The version of the product's stock stream, for `ETag`.
    pub version: u64,
}

/// Adds units. `restock_id` is chosen by the caller (derived from an idempotency key, or
/// new): the same restock sent twice adds once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restock {
    pub product_id: Uuid,
    pub restock_id: Uuid,
    pub quantity: Quantity,
}
operation!(Restock, SERVICE, Inventory);

/// A product's stock; a product never restocked has none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetInventory {
    pub product_id: Uuid,
}
operation!(GetInventory, SERVICE, Inventory);

/// One line held for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    pub product_id: Uuid,
    pub quantity: u64,
}

/// The events of a product's stock stream (`stock-<product id>`). Each carries the levels
/// after it, so that a reader (the catalog listing) needs no state of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InventoryEvent {
    StockAdded {
        product_id: Uuid,
        restock_id: Uuid,
        quantity: u64,
        levels: StockLevels,
    },
    StockReserved {
        product_id: Uuid,
        order_id: Uuid,
        quantity: u64,
        levels: StockLevels,
    },
    /// Every line of an order is held: recorded on the order's reservation stream
    /// (`reservation-<order id>`) in the same append as the lines' StockReserved. It carries
    /// what payments needs to charge, so that payments need not have seen the order.
    StockReservedForOrder {
        order_id: Uuid,
        user_id: Uuid,
        lines: Vec<ReservedLine>,
        total: Money,
        payment_method: PaymentMethod,
    },
    /// Recorded on the order's reservation stream when some line could not be held.
    StockReservationFailed {
        order_id: Uuid,
        product_id: Uuid,
        requested: u64,
        available: u64,
    },
    StockReleased {
        product_id: Uuid,
        order_id: Uuid,
        quantity: u64,
        levels: StockLevels,
    },
    StockCommitted {
        product_id: Uuid,
        order_id: Uuid,
        quantity: u64,
        levels: StockLevels,
    },
    LowStockDetected {
        product_id: Uuid,
        available: u64,
        threshold: u64,
    },
}

impl InventoryEvent {
    /// The product and its levels after this event, for events that change them.
    pub fn levels(&self) -> Option<(Uuid, StockLevels)> {
        match self {
            InventoryEvent::StockAdded { product_id, levels, .. }
            | InventoryEvent::StockReserved { product_id, levels, .. }
            | InventoryEvent::StockReleased { product_id, levels, .. }
            | InventoryEvent::StockCommitted { product_id, levels, .. } => Some((*product_id, *levels)),
            InventoryEvent::StockReservedForOrder { .. }
            | InventoryEvent::StockReservationFailed { .. }
            | InventoryEvent::LowStockDetected { .. } => None,
        }
    }
}

impl DomainEvent for InventoryEvent {}
