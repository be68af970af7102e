//! A user's cart, as an aggregate: which products, how many of each, and which orders were
//! placed from it.
//!
//! Pure decisions, no I/O. The cart holds no names or prices: those belong to the catalog
//! and are read when the cart is shown, so a cart never shows yesterday's price. Whether a
//! product exists is also the catalog's to say; the handler asks before it sends
//! [`CartCommand::SetItem`].

use std::collections::VecDeque;

use contracts::cart::CartEvent;
use contracts::values::Quantity;
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most lines a cart may hold: the most lines an order may have.
pub const MAX_LINES: usize = 50;

/// How many checkouts a cart remembers, to recognise a repeated one. A repeat comes within
/// seconds (a retried HTTP call), not after a hundred orders.
pub const REMEMBERED_CHECKOUTS: usize = 100;

/// What can be done to a cart. `expected_version` is the caller's `If-Match`, if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// Puts `quantity` units of a product in the cart, replacing any quantity it had.
    SetItem { user_id: Uuid, product_id: Uuid, quantity: Quantity, expected_version: Option<Version> },
    /// Takes a product's line out of the cart.
    RemoveItem { user_id: Uuid, product_id: Uuid, expected_version: Option<Version> },
    /// Empties the cart.
    Clear { user_id: Uuid, expected_version: Option<Version> },
    /// Records that order `order_id` was placed with the cart's lines. Once per order.
    RecordCheckout { user_id: Uuid, order_id: Uuid },
    /// Empties the cart because order `order_id` was confirmed, if the cart's last checkout
    /// was that order: the lines it holds are the ones that were bought.
    ClearAfterOrder { user_id: Uuid, order_id: Uuid },
}

/// Why a command on a cart was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the cart is at version {actual}, not {expected}")]
    VersionMismatch { expected: Version, actual: Version },
    #[error("the cart holds no line for product {product_id}")]
    NoSuchLine { product_id: Uuid },
    #[error("a cart holds at most {MAX_LINES} products")]
    TooManyLines,
}

/// One line: a product and how many of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItem {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// A user's cart (stream `cart-<user id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// In the order they were first added, which is the order they are shown in.
    items: Vec<CartItem>,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
    /// The orders placed from this cart, the most recent last.
    checkouts: VecDeque<Uuid>,
}

impl Cart {
    pub fn items(&self) -> &[CartItem] {
        &self.items
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether order `order_id` was placed from this cart (among the remembered checkouts).
    pub fn was_checked_out_as(&self, order_id: Uuid) -> bool {
        self.checkouts.contains(&order_id)
    }

    /// The order placed by the cart's most recent checkout.
    pub fn last_checkout(&self) -> Option<Uuid> {
        self.checkouts.back().copied()
    }

    fn item(&self, product_id: Uuid) -> Option<&CartItem> {
        self.items.iter().find(|item| item.product_id == product_id)
    }

    fn check_version(&self, expected: Option<Version>) -> Result<(), CartError> {
        match expected {
            Some(expected) if expected != self.version => {
                Err(CartError::VersionMismatch { expected, actual: self.version })
            }
            _ => Ok(()),
        }
    }

    fn set_item(&self, user_id: Uuid, product_id: Uuid, quantity: u32) -> Result<Vec<CartEvent>, CartError> {
        match self.item(product_id) {
            Some(item) if item.quantity == quantity => Ok(Vec::new()),
            Some(_) => Ok(vec![CartEvent::CartItemQuantityChanged { user_id, product_id, quantity }]),
            None if self.items.len() >= MAX_LINES => Err(CartError::TooManyLines),
            None => Ok(vec![CartEvent::ItemAddedToCart { user_id, product_id, quantity }]),
        }
    }
}

impl Aggregate for Cart {
    const CATEGORY: &'static str = "cart";

    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn decide(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        match *command {
            CartCommand::SetItem { user_id, product_id, quantity, expected_version } => {
                self.check_version(expected_version)?;
                self.set_item(user_id, product_id, quantity.get())
            }
            CartCommand::RemoveItem { user_id, product_id, expected_version } => {
                self.check_version(expected_version)?;
                if self.item(product_id).is_none() {
                    return Err(CartError::NoSuchLine { product_id });
                }
                Ok(vec![CartEvent::ItemRemovedFromCart { user_id, product_id }])
            }
            CartCommand::Clear { user_id, expected_version } => {
                self.check_version(expected_version)?;
                if self.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![CartEvent::CartCleared { user_id }])
            }
            CartCommand::RecordCheckout { user_id, order_id } => {
                if self.was_checked_out_as(order_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![CartEvent::CartCheckedOut { user_id, order_id }])
            }
            CartCommand::ClearAfterOrder { user_id, order_id } => {
                if self.last_checkout() != Some(order_id) || self.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![CartEvent::CartCleared { user_id }])
            }
        }
    }

    fn apply(mut self, event: &CartEvent) -> Self {
        self.version += 1;
        match *event {
            CartEvent::ItemAddedToCart { product_id, quantity, .. } => {
                self.items.push(CartItem { product_id, quantity });
            }
            CartEvent::CartItemQuantityChanged { product_id, quantity, .. } => {
                if let Some(item) = self.items.iter_mut().find(|item| item.product_id == product_id) {
                    item.quantity = quantity;
                }
            }
            CartEvent::ItemRemovedFromCart { product_id, .. } => {
                self.items.retain(|item| item.product_id != product_id);
            }
            CartEvent::CartCleared { .. } => {
                self.items.clear();
            }
            CartEvent::CartCheckedOut { order_id, .. } => {
                self.checkouts.push_back(order_id);
                while self.checkouts.len() > REMEMBERED_CHECKOUTS {
                    self.checkouts.pop_front();
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::testing::AggregateTest;

    use super::*;

    const USER: Uuid = Uuid::from_u128(0xa11ce);
    const SOCKS: Uuid = Uuid::from_u128(0x50c5);
    const HAT: Uuid = Uuid::from_u128(0x4a7);
    const ORDER: Uuid = Uuid::from_u128(0x0de5);
    const LATER_ORDER: Uuid = Uuid::from_u128(0x0de6);

    fn quantity(value: u32) -> Quantity {
        Quantity::new(value).expect("a valid quantity")
    }

    fn added(product_id: Uuid, quantity: u32) -> CartEvent {
        CartEvent::ItemAddedToCart { user_id: USER, product_id, quantity }
    }

    fn changed(product_id: Uuid, quantity: u32) -> CartEvent {
        CartEvent::CartItemQuantityChanged { user_id: USER, product_id, quantity }
    }

    fn checked_out(order_id: Uuid) -> CartEvent {
        CartEvent::CartCheckedOut { user_id: USER, order_id }
    }

    fn cleared() -> CartEvent {
        CartEvent::CartCleared { user_id: USER }
    }

    fn set(product_id: Uuid, value: u32) -> CartCommand {
        CartCommand::SetItem { user_id: USER, product_id, quantity: quantity(value), expected_version: None }
    }

    #[test]
    fn setting_an_absent_product_adds_it() {
        AggregateTest::<Cart>::given_no_history().when(set(SOCKS, 2)).then_expect_events(vec![added(SOCKS, 2)]);
    }

    #[test]
    fn setting_a_present_product_replaces_its_quantity() {
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)])
            .when(set(SOCKS, 5))
            .then_expect_events(vec![changed(SOCKS, 5)]);
        let cart = AggregateTest::<Cart>::given(vec![added(SOCKS, 2)]).when(set(SOCKS, 5)).then_state();
        assert_eq!(cart.items(), [CartItem { product_id: SOCKS, quantity: 5 }]);
    }

    #[test]
    fn setting_the_same_quantity_again_changes_nothing() {
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)]).when(set(SOCKS, 2)).then_expect_events(vec![]);
    }

    #[test]
    fn a_cart_holds_at_most_fifty_products() {
        let full: Vec<CartEvent> = (0..MAX_LINES as u128).map(|id| added(Uuid::from_u128(id + 1), 1)).collect();
        AggregateTest::<Cart>::given(full.clone()).when(set(HAT, 1)).then_expect_error(CartError::TooManyLines);
        // A full cart still takes a new quantity for a product it holds.
        AggregateTest::<Cart>::given(full)
            .when(set(Uuid::from_u128(1), 3))
            .then_expect_events(vec![changed(Uuid::from_u128(1), 3)]);
    }

    #[test]
    fn a_stale_expected_version_is_refused() {
        let command =
            CartCommand::SetItem { user_id: USER, product_id: HAT, quantity: quantity(1), expected_version: Some(0) };
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)])
            .when(command)
            .then_expect_error(CartError::VersionMismatch { expected: 0, actual: 1 });
        let command = CartCommand::Clear { user_id: USER, expected_version: Some(1) };
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)]).when(command).then_expect_events(vec![cleared()]);
    }

    #[test]
    fn removing_takes_the_line_out_and_an_absent_line_is_refused() {
        let remove = |product_id| CartCommand::RemoveItem { user_id: USER, product_id, expected_version: None };
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2), added(HAT, 1)])
            .when(remove(SOCKS))
            .then_expect_events(vec![CartEvent::ItemRemovedFromCart { user_id: USER, product_id: SOCKS }]);
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)])
            .when(remove(HAT))
            .then_expect_error(CartError::NoSuchLine { product_id: HAT });
    }

    #[test]
    fn clearing_an_empty_cart_changes_nothing() {
        AggregateTest::<Cart>::given_no_history()
            .when(CartCommand::Clear { user_id: USER, expected_version: None })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_checkout_is_recorded_once_per_order() {
        let record = CartCommand::RecordCheckout { user_id: USER, order_id: ORDER };
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)])
            .when(record.clone())
            .then_expect_events(vec![checked_out(ORDER)]);
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2), checked_out(ORDER)]).when(record).then_expect_events(vec![]);
    }

    #[test]
    fn the_confirmation_of_the_last_checkout_clears_the_cart() {
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2), checked_out(ORDER)])
            .when(CartCommand::ClearAfterOrder { user_id: USER, order_id: ORDER })
            .then_expect_events(vec![cleared()]);
    }

    #[test]
    fn the_confirmation_of_an_older_or_unknown_order_leaves_the_cart_alone() {
        let history = vec![added(SOCKS, 2), checked_out(ORDER), checked_out(LATER_ORDER)];
        AggregateTest::<Cart>::given(history)
            .when(CartCommand::ClearAfterOrder { user_id: USER, order_id: ORDER })
            .then_expect_events(vec![]);
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2)])
            .when(CartCommand::ClearAfterOrder { user_id: USER, order_id: ORDER })
            .then_expect_events(vec![]);
        // Already emptied by the user: nothing to clear.
        AggregateTest::<Cart>::given(vec![added(SOCKS, 2), checked_out(ORDER), cleared()])
            .when(CartCommand::ClearAfterOrder { user_id: USER, order_id: ORDER })
            .then_expect_events(vec![]);
    }

    #[test]
    fn lines_keep_the_order_they_were_added_in_and_the_version_counts_events() {
        let cart = Cart::default().apply_all(&[added(SOCKS, 1), added(HAT, 1), changed(SOCKS, 4)]);
        let products: Vec<Uuid> = cart.items().iter().map(|item| item.product_id).collect();
        assert_eq!(products, [SOCKS, HAT]);
        assert_eq!(cart.version(), 3);
    }
}
