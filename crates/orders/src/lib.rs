//! The orders service: orders, their status history and deadlines; where the checkout
//! saga is decided (SPEC §2).
//!
//! - [`domain`]: the `Order` aggregate, its status machine, pure.
//! - [`handlers`]: the operations of `contracts::orders`, on the orders' own store.
//! - [`saga`]: the reactions to inventory's, payments' and shipping's events.
//! - [`deadlines`]: the payment timeout, which rejects orders left waiting.
//! - [`views`]: the orders view (ListOrders, and the orders a deadline waits on).

pub mod deadlines;
pub mod domain;
pub mod handlers;
pub mod saga;
pub mod views;

use std::sync::Arc;

use contracts::orders::{CancelOrder, GetOrder, ListOrders, PlaceOrder, SERVICE, ShipOrder};
use eventshop_core::CommandHandler;
use runtime::{LiveView, OperationRouter, RunningService, ServiceContext, StartError};

use crate::domain::Order;
use crate::handlers::Orders;
use crate::views::OrdersView;

/// The orders view's name, in logs.
pub const ORDERS_VIEW: &str = "orders.orders";

/// Starts orders: replays the orders view, consumes the saga's events of inventory,
/// payments and shipping, serves every orders operation on the bus and enforces the
/// payment deadline.
///
/// Inventory's, payments' and shipping's events must be published on the bus first
/// (`publish_events`), since the in-process bus refuses a consumer whose source it does
/// not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let (view, follower) = LiveView::<OrdersView>::start(ORDERS_VIEW, context.store.clone()).await?;
    let orders = Arc::new(CommandHandler::<Order>::new(context.store.clone()));
    let consumers =
        match saga::start(&*context.bus, context.store.clone(), orders.clone(), context.consumers.clone()).await {
            Ok(consumers) => consumers,
            Err(error) => {
                follower.stop().await;
                return Err(error.into());
            }
        };
    let service = Arc::new(Orders::new(context.store.clone(), context.bus.clone(), orders.clone(), view.clone()));
    let served = router(service)
        .with_admin(&context)
        .serve(&*context.bus, SERVICE, "orders, their status history and deadlines")
        .await;
    let server = match served {
        Ok(server) => server,
        Err(error) => {
            for consumer in consumers {
                consumer.stop().await;
            }
            follower.stop().await;
            return Err(error);
        }
    };
    let deadlines = deadlines::start(view, orders, context.settings.clone());
    let running = consumers.into_iter().fold(RunningService::new().with_server(server), RunningService::with_consumer);
    // The deadline task stops before the view it reads.
    Ok(running.with_task(deadlines).with_task(follower))
}

fn router(orders: Arc<Orders>) -> OperationRouter {
    let (place, get, list) = (orders.clone(), orders.clone(), orders.clone());
    let (cancel, ship) = (orders.clone(), orders);
    OperationRouter::new()
        .route::<PlaceOrder, _, _>(move |request, context| place.clone().place_order(request, context))
        .route::<GetOrder, _, _>(move |request, context| get.clone().get_order(request, context))
        .route::<ListOrders, _, _>(move |request, context| list.clone().list_orders(request, context))
        .route::<CancelOrder, _, _>(move |request, context| cancel.clone().cancel_order(request, context))
        .route::<ShipOrder, _, _>(move |request, context| ship.clone().ship_order(request, context))
}
