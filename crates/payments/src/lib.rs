//! The payments service: wallets (event-sourced accounts with a balance), payments and
//! refunds.
//!
//! [`domain`] holds the rules (a user's [`Wallet`](domain::Wallet) and an order's
//! [`CardPayment`](domain::CardPayment) aggregates), [`handlers`] the operations that apply
//! them, [`saga`] the consumers that charge, refund and abandon order payments, and
//! [`start`] runs it all on the bus.

pub mod domain;
pub mod handlers;
pub mod saga;

use std::sync::Arc;

use contracts::payments::{DepositFunds, GetWallet, ListWalletTransactions, SERVICE};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};

use crate::handlers::WalletHandlers;

/// Consumes the saga's events and serves the payments service's operations on the
/// context's bus until the returned service is stopped.
///
/// Inventory's and orders' events must be published on the bus first
/// (`publish_events("inventory", …)`, `publish_events("orders", …)`), since the in-process
/// bus refuses a consumer whose source it does not know.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let consumers = saga::start(&*context.bus, context.store.clone(), context.consumers.clone()).await?;
    let handlers = Arc::new(WalletHandlers::new(context.store.clone()));
    let router = OperationRouter::new()
        .with_admin(&context)
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
        });
    RunningService::new()
        .with_consumers(consumers)
        .serving(router, &*context.bus, SERVICE, "Wallets, payments and refunds")
        .await
}
