//! shipping: a shipment per confirmed order, dispatched and delivered by an admin.

use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::AddressInput;
use crate::operation;

pub const SERVICE: &str = "shipping";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Pending,
    Dispatched,
    Delivered,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub status: ShipmentStatus,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub address: AddressInput,
    pub version: u64,
}

/// The shipment id of an order: derived, so that the order id finds it.
pub fn shipment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"shipment")
}

/// The shipment of an order; `viewer` None means an admin. Another user's is NotFound.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetShipment {
    pub order_id: Uuid,
    pub viewer: Option<Uuid>,
}
operation!(GetShipment, SERVICE, Shipment);

/// Dispatches (asks orders' ShipOrder first). Conflict unless pending (a repeat with the
/// same tracking number answers the shipment again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchShipment {
    pub shipment_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
}
operation!(DispatchShipment, SERVICE, Shipment);

/// Marks delivered. Conflict unless dispatched (delivered again: same answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverShipment {
    pub shipment_id: Uuid,
}
operation!(DeliverShipment, SERVICE, Shipment);

/// The events of a shipment's stream (`shipment-<shipment id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ShippingEvent {
    ShipmentCreated { shipment_id: Uuid, order_id: Uuid, user_id: Uuid, address: AddressInput },
    ShipmentDispatched { shipment_id: Uuid, order_id: Uuid, user_id: Uuid, carrier: String, tracking_number: String },
    ShipmentDelivered { shipment_id: Uuid, order_id: Uuid, user_id: Uuid },
    ShipmentCancelled { shipment_id: Uuid, order_id: Uuid, user_id: Uuid },
}

impl DomainEvent for ShippingEvent {}
