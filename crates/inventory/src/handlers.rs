//! The inventory's operations: each turns a request into a command on a product's stock
//! (or a read of its stream) and the outcome into a reply or a rejection.
//!
//! Reads load the product's stock stream, so an answer always shows every restock that
//! was answered before it, by this instance or another.

use std::sync::Arc;

use contracts::inventory::{GetInventory, Inventory, Restock};
use eventshop_core::bus::{MessageContext, Rejection, RejectionKind};
use eventshop_core::{CommandHandler, EventStore};
use serde_json::json;

use crate::domain::{StockCommand, StockError, StockItem};

/// Answers the inventory's operations against its event store.
#[derive(Debug)]
pub struct InventoryHandlers {
    stock: CommandHandler<StockItem>,
}

impl InventoryHandlers {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        InventoryHandlers { stock: CommandHandler::new(store) }
    }

    /// Adds units to a product's stock; a repeated `restock_id` adds nothing and answers
    /// the levels the first one left.
    #[tracing::instrument(skip_all, fields(product_id = %request.product_id, restock_id = %request.restock_id))]
    pub async fn restock(&self, request: Restock, context: MessageContext) -> Result<Inventory, Rejection> {
        let command = StockCommand::Restock {
            product_id: request.product_id,
            restock_id: request.restock_id,
            quantity: request.quantity,
        };
        let executed = self
            .stock
            .execute(request.product_id, &command, context.event_metadata())
            .await
            .map_err(|error| runtime::command_rejection(error, stock_rejection))?;
        if executed.events.is_empty() {
            // A repeat: answer as the first time did, not with the levels of today.
            if let Some(outcome) = executed.state.restock_outcome(request.restock_id) {
                return Ok(Inventory {
                    product_id: request.product_id,
                    levels: outcome.levels,
                    version: outcome.version,
                });
            }
        }
        Ok(Inventory { product_id: request.product_id, levels: executed.state.levels(), version: executed.version })
    }

    /// A product's stock; one never restocked has none, at version 0.
    #[tracing::instrument(skip_all, fields(product_id = %request.product_id))]
    pub async fn get_inventory(&self, request: GetInventory, _context: MessageContext) -> Result<Inventory, Rejection> {
        let loaded = self
            .stock
            .load(request.product_id)
            .await
            .map_err(|error| runtime::command_rejection(error, stock_rejection))?;
        Ok(Inventory { product_id: request.product_id, levels: loaded.state.levels(), version: loaded.version })
    }
}

/// How a refused stock command is answered.
fn stock_rejection(error: StockError) -> Rejection {
    match error {
        StockError::OnHandLimitExceeded { .. } => {
            let message = error.to_string();
            Rejection::new(RejectionKind::Invalid, message.clone())
                .with_details(json!({ "errors": [{ "field": "quantity", "message": message }] }))
        }
        StockError::NoReservation { .. } => Rejection::new(RejectionKind::NotFound, error.to_string()),
        StockError::InsufficientStock { .. }
        | StockError::AlreadyCommitted { .. }
        | StockError::AlreadyReleased { .. } => Rejection::new(RejectionKind::Conflict, error.to_string()),
    }
}
