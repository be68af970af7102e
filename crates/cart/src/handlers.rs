//! The cart's operations: each loads the user's cart from its stream, decides with the
//! `Cart` aggregate, and answers the cart priced from the catalog as it is now.
//!
//! Reads load the cart's stream (one short stream per user), so an answer always shows
//! every change answered before it, by this instance or another. Names and prices come from
//! the catalog's `GetProducts` on every answer: the cart records only products and
//! quantities, and a line whose product the catalog no longer sells is shown as unavailable
//! and left out of the total.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use contracts::cart::{Cart as CartReply, CartLine, CheckoutCart, ClearCart, GetCart, RemoveCartItem, SetCartItem};
use contracts::catalog::{GetProducts, Product};
use contracts::orders::{GetOrder, OrderAccepted, OrderItemRequest, PlaceOrder};
use contracts::values::{Currency, Money, Quantity};
use eventshop_core::bus::{Bus, CallError, MessageContext, Rejection, RejectionKind, call};
use eventshop_core::{CommandHandler, EventStore, Version};
use runtime::{command_rejection, forwarded, internal};
use uuid::Uuid;

use crate::domain::{Cart, CartCommand, CartError};

/// How long the cart waits for the catalog or orders: well inside the gateway's own
/// deadline, so that a slow service is reported as such rather than as a gateway timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers the cart's operations against its event store, asking the catalog for prices
/// and orders for placements over the bus.
#[derive(Debug)]
pub struct CartHandlers {
    carts: CommandHandler<Cart>,
    bus: Arc<dyn Bus>,
}

impl CartHandlers {
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn Bus>) -> Self {
        CartHandlers { carts: CommandHandler::new(store), bus }
    }

    /// A user's cart; one never touched is empty, at version 0.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id))]
    pub async fn get_cart(&self, request: GetCart, context: MessageContext) -> Result<CartReply, Rejection> {
        let loaded =
            self.carts.load(request.user_id).await.map_err(|error| command_rejection(error, cart_rejection))?;
        self.priced(request.user_id, &loaded.state, loaded.version, Vec::new(), &context).await
    }

    /// Sets a product's quantity, adding the product if the cart does not hold it yet. The
    /// catalog must know the product and still sell it.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, product_id = %request.product_id))]
    pub async fn set_item(&self, request: SetCartItem, context: MessageContext) -> Result<CartReply, Rejection> {
        let products = self.products(&[request.product_id], &context).await?;
        match products.iter().find(|product| product.id == request.product_id) {
            None => {
                return Err(Rejection::new(
                    RejectionKind::NotFound,
                    format!("product {} does not exist", request.product_id),
                ));
            }
            Some(product) if product.discontinued => {
                let message = format!("product {} is no longer sold", request.product_id);
                return Err(Rejection::new(RejectionKind::Conflict, message));
            }
            Some(_) => {}
        }
        let command = CartCommand::SetItem {
            user_id: request.user_id,
            product_id: request.product_id,
            quantity: request.quantity,
            expected_version: request.expected_version,
        };
        self.execute(request.user_id, command, products, &context).await
    }

    /// Takes a product's line out of the cart; NotFound when there is none.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, product_id = %request.product_id))]
    pub async fn remove_item(&self, request: RemoveCartItem, context: MessageContext) -> Result<CartReply, Rejection> {
        let command = CartCommand::RemoveItem {
            user_id: request.user_id,
            product_id: request.product_id,
            expected_version: request.expected_version,
        };
        self.execute(request.user_id, command, Vec::new(), &context).await
    }

    /// Empties the cart.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id))]
    pub async fn clear(&self, request: ClearCart, context: MessageContext) -> Result<CartReply, Rejection> {
        let command = CartCommand::Clear { user_id: request.user_id, expected_version: request.expected_version };
        self.execute(request.user_id, command, Vec::new(), &context).await
    }

    /// Records the checkout, then places an order with the cart's available lines through
    /// orders' `PlaceOrder`; the order's confirmation clears the cart.
    ///
    /// The checkout is recorded first because the saga may confirm the order before this
    /// call returns, and the confirmation clears only a cart that knows it was checked out
    /// as that order. A retry (same `order_id`) of a recorded checkout asks orders for the
    /// order, and places it if orders never got it (the first attempt failed in between).
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, order_id = %request.order_id))]
    pub async fn checkout(&self, request: CheckoutCart, context: MessageContext) -> Result<OrderAccepted, Rejection> {
        let (user_id, order_id) = (request.user_id, request.order_id);
        let loaded = self.carts.load(user_id).await.map_err(|error| command_rejection(error, cart_rejection))?;
        let recorded = loaded.state.was_checked_out_as(order_id);
        if recorded {
            let order =
                call(&*self.bus, &GetOrder { order_id, viewer: Some(user_id) }, context.child(), CALL_TIMEOUT).await;
            match order {
                Ok(order) => return Ok(OrderAccepted { order_id, status: order.status }),
                Err(CallError::Rejected(rejection)) if rejection.kind == RejectionKind::NotFound => {}
                Err(error) => return Err(forwarded(error)),
            }
        }
        let product_ids: Vec<Uuid> = loaded.state.items().iter().map(|item| item.product_id).collect();
        let products = self.products(&product_ids, &context).await?;
        let on_sale: HashSet<Uuid> =
            products.iter().filter(|product| !product.discontinued).map(|product| product.id).collect();
        let items = loaded
            .state
            .items()
            .iter()
            .filter(|item| on_sale.contains(&item.product_id))
            .map(|item| {
                let quantity = Quantity::new(item.quantity).map_err(internal)?;
                Ok(OrderItemRequest { product_id: item.product_id, quantity })
            })
            .collect::<Result<Vec<_>, Rejection>>()?;
        if items.is_empty() {
            return Err(Rejection::new(RejectionKind::Conflict, "the cart is empty"));
        }
        if !recorded {
            self.carts
                .execute(user_id, &CartCommand::RecordCheckout { user_id, order_id }, context.event_metadata())
                .await
                .map_err(|error| command_rejection(error, cart_rejection))?;
        }
        let place = PlaceOrder {
            order_id,
            user_id,
            items,
            shipping_address: request.shipping_address,
            payment_method: request.payment_method,
        };
        call(&*self.bus, &place, context.child(), CALL_TIMEOUT).await.map_err(forwarded)
    }

    /// Runs `command` on the user's cart and answers the cart it left, priced with `known`
    /// products and whatever else the catalog says.
    async fn execute(
        &self,
        user_id: Uuid,
        command: CartCommand,
        known: Vec<Product>,
        context: &MessageContext,
    ) -> Result<CartReply, Rejection> {
        let executed = self
            .carts
            .execute(user_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, cart_rejection))?;
        self.priced(user_id, &executed.state, executed.version, known, context).await
    }

    /// The cart as the user sees it: each line with the catalog's current name and price.
    async fn priced(
        &self,
        user_id: Uuid,
        cart: &Cart,
        version: Version,
        known: Vec<Product>,
        context: &MessageContext,
    ) -> Result<CartReply, Rejection> {
        let mut products: HashMap<Uuid, Product> = known.into_iter().map(|product| (product.id, product)).collect();
        let missing: Vec<Uuid> =
            cart.items().iter().map(|item| item.product_id).filter(|id| !products.contains_key(id)).collect();
        if !missing.is_empty() {
            products.extend(self.products(&missing, context).await?.into_iter().map(|product| (product.id, product)));
        }
        let mut total = Money::zero(Currency::default());
        let mut items = Vec::with_capacity(cart.items().len());
        for item in cart.items() {
            let line = match products.get(&item.product_id) {
                Some(product) if !product.discontinued => {
                    let line_total = product.price.times(item.quantity);
                    total.amount = total.amount.saturating_add(line_total.amount);
                    CartLine {
                        product_id: item.product_id,
                        name: product.name.to_string(),
                        quantity: item.quantity,
                        unit_price: product.price,
                        line_total,
                        available: true,
                    }
                }
                // Discontinued: the last price is shown, but the line counts for nothing.
                Some(product) => CartLine {
                    product_id: item.product_id,
                    name: product.name.to_string(),
                    quantity: item.quantity,
                    unit_price: product.price,
                    line_total: Money::zero(product.price.currency),
                    available: false,
                },
                // The catalog does not know it any more: nothing to show but the id.
                None => CartLine {
                    product_id: item.product_id,
                    name: String::new(),
                    quantity: item.quantity,
                    unit_price: Money::zero(Currency::default()),
                    line_total: Money::zero(Currency::default()),
                    available: false,
                },
            };
            items.push(line);
        }
        Ok(CartReply { user_id, items, total, version })
    }

    /// The catalog's products among `product_ids`; unknown ones are left out.
    async fn products(&self, product_ids: &[Uuid], context: &MessageContext) -> Result<Vec<Product>, Rejection> {
        if product_ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = GetProducts { product_ids: product_ids.to_vec() };
        // Any failure of the catalog, a refusal included, is ours to report: the caller
        // asked about its cart, not about the catalog.
        call(&*self.bus, &request, context.child(), CALL_TIMEOUT).await.map_err(internal)
    }
}

/// How a refused cart command is answered.
fn cart_rejection(error: CartError) -> Rejection {
    let message = error.to_string();
    match error {
        CartError::VersionMismatch { .. } => Rejection::new(RejectionKind::PreconditionFailed, message),
        CartError::NoSuchLine { .. } => Rejection::new(RejectionKind::NotFound, message),
        CartError::TooManyLines => Rejection::new(RejectionKind::Conflict, message),
    }
}
