//! The orders service's operations: PlaceOrder, GetOrder, ListOrders, CancelOrder and
//! ShipOrder, decided by the `Order` aggregate on the service's own store.
//!
//! An order is answered from its stream (read your writes without waiting on anything),
//! a list from the orders view, which every command waits for before it replies. Placing
//! asks the catalog for names and prices now, so that the order records what the buyer
//! was shown and never changes with the catalog afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use contracts::catalog::{GetProducts, Product};
use contracts::orders::{
    CancelOrder, GetOrder, ListOrders, Order as OrderReply, OrderAccepted, OrderItemRequest, OrderLine, OrdersEvent,
    PlaceOrder, ShipOrder,
};
use contracts::values::{Page, Quantity};
use eventshop_core::bus::{Bus, MessageContext, Rejection, RejectionKind, call};
use eventshop_core::{CommandHandler, EventCodec, EventStore, Position};
use runtime::{LiveView, command_rejection, forwarded, internal};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{MAX_LINES, Order, OrderCommand, OrderError};
use crate::views::{OrderReplyBuilder, OrdersView};

/// How long placing an order waits for the catalog's prices.
pub const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The orders service's state: its store, the orders' command handler and the orders view.
#[derive(Debug)]
pub struct Orders {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn Bus>,
    orders: Arc<CommandHandler<Order>>,
    view: LiveView<OrdersView>,
    codec: EventCodec<OrdersEvent>,
}

impl Orders {
    pub fn new(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn Bus>,
        orders: Arc<CommandHandler<Order>>,
        view: LiveView<OrdersView>,
    ) -> Self {
        Orders { store, bus, orders, view, codec: EventCodec::new() }
    }

    /// Places an order priced by the catalog now; a retry with the same id answers the
    /// order as it is.
    pub async fn place_order(
        self: Arc<Self>,
        request: PlaceOrder,
        context: MessageContext,
    ) -> Result<OrderAccepted, Rejection> {
        let merged = merge_lines(&request.items)?;
        // A retry finds its order without asking the catalog again, whose prices may have
        // changed since.
        let loaded =
            self.orders.load(request.order_id).await.map_err(|error| command_rejection(error, domain_rejection))?;
        if let Some(placed) = loaded.state.placed() {
            return accepted(request.order_id, request.user_id, placed.user_id, &loaded.state);
        }
        let lines = self.price(&merged, &context).await?;
        let command = OrderCommand::Place {
            order_id: request.order_id,
            user_id: request.user_id,
            lines,
            shipping_address: request.shipping_address,
            payment_method: request.payment_method,
        };
        let executed = self
            .orders
            .execute(request.order_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, domain_rejection))?;
        self.wait_for_view(executed.position).await;
        let owner = executed.state.placed().map_or(request.user_id, |placed| placed.user_id);
        accepted(request.order_id, request.user_id, owner, &executed.state)
    }

    pub async fn get_order(
        self: Arc<Self>,
        request: GetOrder,
        _context: MessageContext,
    ) -> Result<OrderReply, Rejection> {
        self.read_order(request.order_id, request.viewer).await
    }

    pub async fn list_orders(
        self: Arc<Self>,
        request: ListOrders,
        _context: MessageContext,
    ) -> Result<Page<OrderReply>, Rejection> {
        self.view.read(|view| view.list(&request)).map_err(Rejection::from)
    }

    /// Cancels before dispatch; the compensations follow in the services that react.
    pub async fn cancel_order(
        self: Arc<Self>,
        request: CancelOrder,
        context: MessageContext,
    ) -> Result<OrderReply, Rejection> {
        // Another user's order does not exist for this viewer, so it cannot be cancelled.
        self.read_order(request.order_id, request.viewer).await?;
        let requested_by = request.viewer.or(context.acting_user);
        self.execute(request.order_id, OrderCommand::Cancel { requested_by }, &context).await?;
        self.read_order(request.order_id, request.viewer).await
    }

    /// Ships a confirmed order, asked by shipping before it dispatches the shipment.
    pub async fn ship_order(
        self: Arc<Self>,
        request: ShipOrder,
        context: MessageContext,
    ) -> Result<OrderReply, Rejection> {
        let carrier = required_text("carrier", &request.carrier)?;
        let tracking_number = required_text("tracking_number", &request.tracking_number)?;
        self.execute(request.order_id, OrderCommand::Ship { carrier, tracking_number }, &context).await?;
        self.read_order(request.order_id, None).await
    }

    async fn execute(&self, order_id: Uuid, command: OrderCommand, context: &MessageContext) -> Result<(), Rejection> {
        let executed = self
            .orders
            .execute(order_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, domain_rejection))?;
        self.wait_for_view(executed.position).await;
        Ok(())
    }

    /// Waits until the orders view shows what a command appended, so that a list right
    /// after the reply shows it too.
    async fn wait_for_view(&self, appended_at: Option<Position>) {
        if let Some(position) = appended_at {
            self.view.caught_up(position).await;
        }
    }

    /// The order as its stream has it now; NotFound if it was never placed or `viewer`
    /// is not its owner.
    async fn read_order(&self, order_id: Uuid, viewer: Option<Uuid>) -> Result<OrderReply, Rejection> {
        let stream_id = CommandHandler::<Order>::stream_id(order_id);
        let events = self.store.read_stream(&stream_id, 0).await.map_err(internal)?;
        let reply = OrderReplyBuilder::from_stream(&self.codec, &events).map_err(internal)?;
        match reply {
            Some(reply) if viewer.is_none_or(|viewer| viewer == reply.user_id) => Ok(reply),
            _ => Err(domain_rejection(OrderError::NotFound)),
        }
    }

    /// Names and prices of the merged lines from the catalog. Every unknown or
    /// discontinued product is named by its first position in the request.
    async fn price(&self, merged: &[MergedLine], context: &MessageContext) -> Result<Vec<OrderLine>, Rejection> {
        let product_ids = merged.iter().map(|line| line.product_id).collect();
        let products = call(&*self.bus, &GetProducts { product_ids }, context.child(), CATALOG_TIMEOUT)
            .await
            .map_err(forwarded)?;
        let products: HashMap<Uuid, Product> = products.into_iter().map(|product| (product.id, product)).collect();
        let mut lines = Vec::with_capacity(merged.len());
        let mut errors = Vec::new();
        for line in merged {
            match products.get(&line.product_id) {
                Some(product) if !product.discontinued => lines.push(OrderLine {
                    product_id: line.product_id,
                    name: product.name.to_string(),
                    quantity: line.quantity,
                    unit_price: product.price,
                }),
                Some(_) => errors.push(json!({
                    "field": format!("items[{}].product_id", line.first_index),
                    "message": "this product has been discontinued",
                })),
                None => errors.push(json!({
                    "field": format!("items[{}].product_id", line.first_index),
                    "message": "no product has this id",
                })),
            }
        }
        if errors.is_empty() {
            Ok(lines)
        } else {
            Err(Rejection::new(RejectionKind::Invalid, "some items cannot be ordered")
                .with_details(json!({ "errors": errors })))
        }
    }
}

/// One product's line after merging the request's lines that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedLine {
    pub product_id: Uuid,
    pub quantity: u32,
    /// Where the product first appears in the request, to name it in an error.
    pub first_index: usize,
}

/// Merges lines of the same product, in the order products first appear; refuses an
/// empty order, more than [`MAX_LINES`] products, or a product quantity above
/// [`Quantity::MAX`].
pub fn merge_lines(items: &[OrderItemRequest]) -> Result<Vec<MergedLine>, Rejection> {
    if items.is_empty() {
        return Err(invalid_field("items", "an order needs at least one item"));
    }
    let mut merged: Vec<MergedLine> = Vec::new();
    let mut positions: HashMap<Uuid, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        match positions.get(&item.product_id) {
            Some(&position) => {
                let line = &mut merged[position];
                line.quantity = line.quantity.saturating_add(item.quantity.get());
                if line.quantity > Quantity::MAX {
                    let message = format!("the quantities of one product add up to more than {}", Quantity::MAX);
                    return Err(invalid_field(&format!("items[{index}].quantity"), &message));
                }
            }
            None => {
                positions.insert(item.product_id, merged.len());
                merged.push(MergedLine {
                    product_id: item.product_id,
                    quantity: item.quantity.get(),
                    first_index: index,
                });
            }
        }
    }
    if merged.len() > MAX_LINES {
        let message =
            format!("an order may have at most {MAX_LINES} different products, this one has {}", merged.len());
        return Err(invalid_field("items", &message));
    }
    Ok(merged)
}

/// The answer to a placement: the order's status now. An id already taken by another
/// user's order is a conflict, not that order's status.
fn accepted(order_id: Uuid, requester: Uuid, owner: Uuid, state: &Order) -> Result<OrderAccepted, Rejection> {
    if requester != owner {
        return Err(Rejection::new(RejectionKind::Conflict, "this order id is already taken"));
    }
    let status =
        state.status().ok_or_else(|| Rejection::new(RejectionKind::Internal, "a placed order has no status"))?;
    Ok(OrderAccepted { order_id, status })
}

fn required_text(field: &str, value: &str) -> Result<String, Rejection> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid_field(field, &format!("{field} must not be empty")));
    }
    if value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(invalid_field(
            field,
            &format!("{field} must be at most 200 characters, without control characters"),
        ));
    }
    Ok(value.to_owned())
}

fn invalid_field(field: &str, message: &str) -> Rejection {
    Rejection::new(RejectionKind::Invalid, message)
        .with_details(json!({ "errors": [{ "field": field, "message": message }] }))
}

/// How an order's refusal reaches the caller.
pub fn domain_rejection(error: OrderError) -> Rejection {
    match error {
        OrderError::NotFound => Rejection::new(RejectionKind::NotFound, "no such order"),
        OrderError::NoLines | OrderError::TooManyLines { .. } => invalid_field("items", &error.to_string()),
        OrderError::AlreadyDispatched
        | OrderError::AlreadyRejected
        | OrderError::NotConfirmed { .. }
        | OrderError::ShippedOtherwise { .. } => Rejection::new(RejectionKind::Conflict, error.to_string()),
    }
}
