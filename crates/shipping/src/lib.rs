//! The shipping service: a shipment per confirmed order, dispatched and delivered by an
//! admin.
//!
//! - [`domain`]: the `Shipment` aggregate, pure.
//! - [`handlers`]: the operations of `contracts::shipping`, on shipping's own store; a
//!   dispatch asks orders' `ShipOrder` over the bus first.
//! - [`orders`]: the consumer that creates a shipment when an order is confirmed and
//!   cancels it when the order is cancelled before it left.

pub mod domain;
pub mod handlers;
pub mod orders;

use std::sync::Arc;

use contracts::shipping::{DeliverShipment, DispatchShipment, GetShipment, SERVICE};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::ShippingHandlers;

/// Starts shipping: consumes orders' confirmations and cancellations and serves every
/// shipping operation on the bus.
///
/// Orders' events must be published on the bus first (`publish_events("orders", …)`), since
/// the in-process bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let reactions = orders::start(&*context.bus, context.store.clone(), context.consumers.clone()).await?;
    let handlers = Arc::new(ShippingHandlers::new(context.store.clone(), context.bus.clone()));
    let router = router(handlers).with_admin(&context);
    RunningService::new()
        .with_consumer(reactions)
        .serving(router, &*context.bus, SERVICE, "shipments of confirmed orders")
        .await
}

fn router(handlers: Arc<ShippingHandlers>) -> OperationRouter {
    let (get, dispatch, deliver) = (handlers.clone(), handlers.clone(), handlers);
    OperationRouter::new()
        .route::<GetShipment, _, _>(move |request, context| {
            let handlers = get.clone();
            async move { handlers.get_shipment(request, context).await }
        })
        .route::<DispatchShipment, _, _>(move |request, context| {
            let handlers = dispatch.clone();
            async move { handlers.dispatch(request, context).await }
        })
        .route::<DeliverShipment, _, _>(move |request, context| {
            let handlers = deliver.clone();
            async move { handlers.deliver(request, context).await }
        })
}
