//! The payments service: wallets (event-sourced accounts with a balance), payments and
//! refunds.
//!
//! [`domain`] holds the rules (a user's [`Wallet`](domain::Wallet) aggregate),
//! [`handlers`] the operations that apply them, and [`start`] serves those operations on
//! the bus.

pub mod domain;
pub mod handlers;

use std::sync::Arc;

use contracts::payments::{DepositFunds, GetWallet, ListWalletTransactions, SERVICE};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::WalletHandlers;

/// Serves the payments service's operations on the context's bus until the returned
/// service is stopped.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let handlers = Arc::new(WalletHandlers::new(context.store.clone()));
    let server = OperationRouter::new()
        .route::<DepositFunds, _, _>({
            let handlers = handlers.clone();
            move |request, message| {
                let handlers = handlers.clone();
                async move { handlers.deposit_funds(request, message).await }
            }
        })
        .route::<GetWallet, _, _>({
            let handlers = handlers.clone();
            move |request, message| {
                let handlers = handlers.clone();
                async move { handlers.get_wallet(request, message).await }
            }
        })
        .route::<ListWalletTransactions, _, _>({
            let handlers = handlers.clone();
            move |request, message| {
                let handlers = handlers.clone();
                async move { handlers.list_transactions(request, message).await }
            }
        })
        .serve(&*context.bus, SERVICE, "Wallets, payments and refunds")
        .await?;
    Ok(RunningService::new().with_server(server))
}
