//! The inventory service: stock per product and the reservations that hold it for orders.
//!
//! [`domain`] holds the rules (a product's stock as the [`StockItem`](domain::StockItem)
//! aggregate, and an order's reservation over several of them), [`handlers`] the
//! operations that apply them, [`saga`] the consumers that reserve, release and commit
//! stock for orders, and [`start`] runs it all on the bus.

pub mod domain;
pub mod handlers;
pub mod saga;

use std::sync::Arc;

use contracts::inventory::{GetInventory, Restock, SERVICE};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::InventoryHandlers;

/// Consumes orders' events and serves the inventory's operations on the context's bus
/// until the returned service is stopped. The low-stock threshold follows the context's
/// live settings (`inventory.low_stock_threshold`).
///
/// Orders' events must be published on the bus first (`publish_events("orders", …)`),
/// since the in-process bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let consumers =
        saga::start(&*context.bus, context.store.clone(), context.consumers.clone(), context.settings.clone()).await?;
    let handlers = Arc::new(InventoryHandlers::new(context.store.clone()));
    let router = OperationRouter::new()
        .with_admin(&context)
        .route::<Restock, _, _>({
            let handlers = handlers.clone();
            move |request, message| {
                let handlers = handlers.clone();
                async move { handlers.restock(request, message).await }
            }
        })
        .route::<GetInventory, _, _>({
            let handlers = handlers.clone();
            move |request, message| {
                let handlers = handlers.clone();
                async move { handlers.get_inventory(request, message).await }
            }
        });
    RunningService::new()
        .with_consumers(consumers)
        .serving(router, &*context.bus, SERVICE, "Stock per product and the reservations that hold it for orders")
        .await
}
