//! The payments service's wallet operations: each turns a request into a command on a
//! user's wallet (or a read of its stream) and the outcome into a reply or a rejection.
//!
//! Reads load the wallet's stream, so an answer always shows every deposit that was
//! answered before it, by this instance or another. A wallet's stream is short (one event
//! per deposit, payment or refund), which is why the transaction list is read from it too
//! rather than from a read model.

use std::sync::Arc;

use contracts::Page;
use contracts::payments::{
    DepositFunds, GetWallet, ListWalletTransactions, PaymentsEvent, TransactionKind, Wallet as WalletReply,
    WalletTransaction,
};
use contracts::values::{Money, PageRequest};
use eventshop_core::bus::{MessageContext, Rejection, RejectionKind};
use eventshop_core::{CommandHandler, EventCodec, EventStore, RecordedEvent, Version};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{Wallet, WalletCommand, WalletError};

/// Answers the wallet operations against the service's event store.
#[derive(Debug)]
pub struct WalletHandlers {
    wallets: CommandHandler<Wallet>,
    codec: EventCodec<PaymentsEvent>,
}

impl WalletHandlers {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        WalletHandlers { wallets: CommandHandler::new(store), codec: EventCodec::new() }
    }

    /// Adds money to a wallet; a repeated `transaction_id` adds nothing and answers the
    /// wallet as the first deposit left it.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id, transaction_id = %request.transaction_id))]
    pub async fn deposit_funds(
        &self,
        request: DepositFunds,
        context: MessageContext,
    ) -> Result<WalletReply, Rejection> {
        let command = WalletCommand::Deposit {
            user_id: request.user_id,
            transaction_id: request.transaction_id,
            amount: request.amount,
        };
        let executed = self
            .wallets
            .execute(request.user_id, &command, context.event_metadata())
            .await
            .map_err(|error| runtime::command_rejection(error, wallet_rejection))?;
        if executed.events.is_empty() {
            // A repeat: answer as the first time did, not with the balance of today.
            if let Some(outcome) = executed.state.deposit_outcome(request.transaction_id) {
                return Ok(wallet_reply(request.user_id, outcome.balance, outcome.version));
            }
        }
        Ok(wallet_reply(request.user_id, executed.state.balance(), executed.version))
    }

    /// A user's wallet; one never used is empty, at version 0.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id))]
    pub async fn get_wallet(&self, request: GetWallet, _context: MessageContext) -> Result<WalletReply, Rejection> {
        let loaded = self
            .wallets
            .load(request.user_id)
            .await
            .map_err(|error| runtime::command_rejection(error, wallet_rejection))?;
        Ok(wallet_reply(request.user_id, loaded.state.balance(), loaded.version))
    }

    /// The wallet's movements, newest first. The cursor is the stream version of the last
    /// movement of the previous page; the next page holds older ones.
    #[tracing::instrument(skip_all, fields(user_id = %request.user_id))]
    pub async fn list_transactions(
        &self,
        request: ListWalletTransactions,
        _context: MessageContext,
    ) -> Result<Page<WalletTransaction>, Rejection> {
        let limit = checked_limit(&request.page)?;
        let below = match &request.page.cursor {
            None => Version::MAX,
            Some(cursor) => parse_cursor(cursor)?,
        };
        let stream_id = CommandHandler::<Wallet>::stream_id(request.user_id);
        let events = self.wallets.store().read_stream(&stream_id, 0).await.map_err(runtime::internal)?;
        let mut items = Vec::with_capacity(limit);
        let mut last_version = None;
        let mut next_cursor = None;
        for recorded in events.iter().rev().filter(|recorded| recorded.stream_version < below) {
            let event = self.codec.decode(recorded).map_err(runtime::internal)?;
            let Some(transaction) = transaction(&event, recorded) else {
                continue;
            };
            if items.len() == limit {
                next_cursor = last_version.map(|version: Version| version.to_string());
                break;
            }
            items.push(transaction);
            last_version = Some(recorded.stream_version);
        }
        Ok(Page { items, next_cursor })
    }
}

fn wallet_reply(user_id: Uuid, balance: Money, version: Version) -> WalletReply {
    WalletReply { user_id, balance, currency: balance.currency, version }
}

/// The movement of money an event records, if it records one.
fn transaction(event: &PaymentsEvent, recorded: &RecordedEvent) -> Option<WalletTransaction> {
    let at = recorded.recorded_at;
    match *event {
        PaymentsEvent::FundsDeposited { transaction_id, amount, .. } => {
            Some(WalletTransaction { id: transaction_id, kind: TransactionKind::Deposit, amount, order_id: None, at })
        }
        PaymentsEvent::PaymentCaptured { payment_id, order_id, amount, .. } => Some(WalletTransaction {
            id: payment_id,
            kind: TransactionKind::Capture,
            amount: Money::new(-amount.amount, amount.currency),
            order_id: Some(order_id),
            at,
        }),
        PaymentsEvent::PaymentRefunded { payment_id, order_id, amount, .. } => Some(WalletTransaction {
            // The capture already goes by the payment's id; the refund's id is derived
            // from it, so that it is the same on every read.
            id: Uuid::new_v5(&payment_id, b"refund"),
            kind: TransactionKind::Refund,
            amount,
            order_id: Some(order_id),
            at,
        }),
        // No money moved: a declined or abandoned payment was never taken.
        PaymentsEvent::WalletOpened { .. }
        | PaymentsEvent::PaymentDeclined { .. }
        | PaymentsEvent::PaymentAbandoned { .. } => None,
    }
}

fn checked_limit(page: &PageRequest) -> Result<usize, Rejection> {
    if (1..=PageRequest::MAX_LIMIT).contains(&page.limit) {
        Ok(page.limit as usize)
    } else {
        Err(invalid_field("limit", format!("a limit must be between 1 and {}", PageRequest::MAX_LIMIT)))
    }
}

fn parse_cursor(cursor: &str) -> Result<Version, Rejection> {
    cursor
        .parse::<Version>()
        .map_err(|_| invalid_field("cursor", "not a cursor from a previous page of this list".to_owned()))
}

fn invalid_field(field: &str, message: String) -> Rejection {
    Rejection::new(RejectionKind::Invalid, message.clone())
        .with_details(json!({ "errors": [{ "field": field, "message": message }] }))
}

/// How a refused wallet command is answered.
fn wallet_rejection(error: WalletError) -> Rejection {
    match error {
        WalletError::BalanceLimitExceeded { .. }
        | WalletError::CurrencyMismatch { .. }
        | WalletError::NegativeAmount { .. } => invalid_field("amount", error.to_string()),
        WalletError::UnknownPayment { .. } => Rejection::new(RejectionKind::NotFound, error.to_string()),
        WalletError::NotCaptured { .. } => Rejection::new(RejectionKind::Conflict, error.to_string()),
    }
}
