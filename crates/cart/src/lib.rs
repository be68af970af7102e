//! The cart service: one cart per user, priced from the catalog when it is read, and
//! checked out into an order.
//!
//! - [`domain`]: the `Cart` aggregate, pure.
//! - [`handlers`]: the operations of `contracts::cart`, on the cart's own store, asking the
//!   catalog for prices and orders for placements over the bus.
//! - [`orders`]: the consumer that clears a cart once the order checked out from it is
//!   confirmed.

pub mod domain;
pub mod handlers;
pub mod orders;

use std::sync::Arc;

use contracts::cart::{CheckoutCart, ClearCart, GetCart, RemoveCartItem, SERVICE, SetCartItem};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::CartHandlers;

/// Starts the cart: consumes orders' confirmations and serves every cart operation on the
/// bus.
///
/// Orders' events must be published on the bus first (`publish_events("orders", …)`), since
/// the in-process bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let reactions = orders::start(&*context.bus, context.store.clone(), context.consumers.clone()).await?;
    let handlers = Arc::new(CartHandlers::new(context.store.clone(), context.bus.clone()));
    let router = router(handlers).with_admin(&context);
    RunningService::new()
        .with_consumer(reactions)
        .serving(router, &*context.bus, SERVICE, "one cart per user, checked out into orders")
        .await
}

fn router(handlers: Arc<CartHandlers>) -> OperationRouter {
    let (get, set, remove) = (handlers.clone(), handlers.clone(), handlers.clone());
    let (clear, checkout) = (handlers.clone(), handlers);
    OperationRouter::new()
        .route::<GetCart, _, _>(move |request, context| {
            let handlers = get.clone();
            async move { handlers.get_cart(request, context).await }
        })
        .route::<SetCartItem, _, _>(move |request, context| {
            let handlers = set.clone();
            async move { handlers.set_item(request, context).await }
        })
        .route::<RemoveCartItem, _, _>(move |request, context| {
            let handlers = remove.clone();
            async move { handlers.remove_item(request, context).await }
        })
        .route::<ClearCart, _, _>(move |request, context| {
            let handlers = clear.clone();
            async move { handlers.clear(request, context).await }
        })
        .route::<CheckoutCart, _, _>(move |request, context| {
            let handlers = checkout.clone();
            async move { handlers.checkout(request, context).await }
        })
}
