//! payments: wallets (event-sourced accounts with a balance), payments and refunds.

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{Money, Page, PageRequest, PositiveAmount};

pub const SERVICE: &str = "payments";

/// A user's wallet. A user who never deposited has an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    pub user_id: Uuid,
    pub balance: Money,
    pub currency: crate::Currency,
    /// The version of the wallet's stream, for `ETag`.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Deposit,
    Capture,
    Refund,
}

/// One movement of a wallet's money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletTransaction {
    pub id: Uuid,
    pub kind: TransactionKind,
    /// Positive for deposits and refunds, negative for captures.
    pub amount: Money,
    pub order_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// Adds money to the user's wallet, opening it if needed. `transaction_id` is chosen by
/// the caller (derived from an idempotency key, or new): the same deposit sent twice
/// counts once, and the repeat answers the wallet as the first left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepositFunds {
    pub user_id: Uuid,
    pub transaction_id: Uuid,
    pub amount: PositiveAmount,
}
operation!(DepositFunds, SERVICE, Wallet);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetWallet {
    pub user_id: Uuid,
}
operation!(GetWallet, SERVICE, Wallet);

/// The wallet's movements, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListWalletTransactions {
    pub user_id: Uuid,
    pub page: PageRequest,
}
operation!(ListWalletTransactions, SERVICE, Page<WalletTransaction>);

/// The events of a wallet's stream (`wallet-<user id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PaymentsEvent {
    WalletOpened {
        user_id: Uuid,
        currency: crate::Currency,
    },
    FundsDeposited {
        user_id: Uuid,
        transaction_id: Uuid,
        amount: Money,
        /// The balance after the deposit.
        balance: Money,
    },
    PaymentCaptured {
        payment_id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
        amount: Money,
        /// The wallet balance after, for wallet payments.
        balance: Option<Money>,
    },
    PaymentDeclined {
        payment_id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
        amount: Money,
        reason: String,
    },
    PaymentRefunded {
        payment_id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
        amount: Money,
        balance: Option<Money>,
    },
    /// The order closed (rejected or cancelled) before it was charged: it never will be.
    PaymentAbandoned {
        payment_id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
    },
}

/// The payment of an order: derived, so that every reaction to the order finds it. Wallet
/// payments are recorded on the wallet's stream, card payments on `payment-<payment id>`.
pub fn payment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"payment")
}

impl DomainEvent for PaymentsEvent {}
