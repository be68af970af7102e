//! cart: one cart per user, priced from the catalog when read.

use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::AddressInput;
use crate::operation;
use crate::orders::OrderAccepted;
use crate::values::{Money, PaymentMethod, Quantity};

pub const SERVICE: &str = "cart";

/// A line with the catalog's current name and price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub line_total: Money,
    /// False when the product was discontinued since it was added.
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub user_id: Uuid,
    pub items: Vec<CartLine>,
    pub total: Money,
    /// The version of the cart's stream, for `ETag`.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetCart {
    pub user_id: Uuid,
}
operation!(GetCart, SERVICE, Cart);

/// Sets a line's quantity (adding the product if absent). Unknown products are NotFound;
/// at most 50 lines (Conflict beyond). `expected_version` from If-Match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetCartItem {
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub expected_version: Option<u64>,
}
operation!(SetCartItem, SERVICE, Cart);

/// Removes a line; NotFound if the cart has none for that product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveCartItem {
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub expected_version: Option<u64>,
}
operation!(RemoveCartItem, SERVICE, Cart);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearCart {
    pub user_id: Uuid,
    pub expected_version: Option<u64>,
}
operation!(ClearCart, SERVICE, Cart);

/// Places an order with the cart's lines (through orders' PlaceOrder, with this
/// `order_id`) and records CartCheckedOut; the cart is cleared when the order is
/// confirmed. An empty cart is Conflict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutCart {
    pub user_id: Uuid,
    pub order_id: Uuid,
    pub shipping_address: AddressInput,
    pub payment_method: PaymentMethod,
}
operation!(CheckoutCart, SERVICE, OrderAccepted);

/// The events of a cart's stream (`cart-<user id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CartEvent {
    ItemAddedToCart { user_id: Uuid, product_id: Uuid, quantity: u32 },
    CartItemQuantityChanged { user_id: Uuid, product_id: Uuid, quantity: u32 },
    ItemRemovedFromCart { user_id: Uuid, product_id: Uuid },
    CartCleared { user_id: Uuid },
    CartCheckedOut { user_id: Uuid, order_id: Uuid },
}

impl DomainEvent for CartEvent {}
