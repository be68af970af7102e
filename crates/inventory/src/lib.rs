//! The inventory service: stock per product and the reservations that hold it for orders.
//!
//! [`domain`] holds the rules (a product's stock as the [`StockItem`](domain::StockItem)
//! aggregate), [`handlers`] the operations that apply them, and [`start`] serves those
//! operations on the bus.

pub mod domain;
pub mod handlers;

use std::sync::Arc;

use contracts::inventory::{GetInventory, Restock, SERVICE};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::InventoryHandlers;

/// Serves the inventory's operations on the context's bus until the returned service is
/// stopped.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let handlers = Arc::new(InventoryHandlers::new(context.store.clone()));
    let server = OperationRouter::new()
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
        })
        .serve(&*context.bus, SERVICE, "Stock per product and the reservations that hold it for orders")
        .await?;
    Ok(RunningService::new().with_server(server))
}
