//! Events and an aggregate for the cases: a bank account, small enough to reason about,
//! with a rule (no overdraft) so that decisions can fail.

use eventshop_core::{Aggregate, DomainEvent, Metadata, NewEvent, Payload};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

impl DomainEvent for AccountEvent {}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Open { owner: String },
    Deposit { amount: i64 },
    Withdraw { amount: i64 },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("amounts must be positive")]
    NotPositive,
    #[error("the balance is too low")]
    InsufficientFunds,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub balance: i64,
    pub transactions: u64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount } | AccountCommand::Withdraw { amount } if *amount <= 0 => {
                Err(AccountError::NotPositive)
            }
            AccountCommand::Deposit { amount } => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
            AccountCommand::Withdraw { amount } if *amount > self.balance => Err(AccountError::InsufficientFunds),
            AccountCommand::Withdraw { amount } => Ok(vec![AccountEvent::Withdrawn { amount: *amount }]),
        }
    }

    fn apply(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
        self.transactions += 1;
        self
    }
}

/// A raw event with a small JSON payload, for cases that test the store alone.
pub fn event(label: &str) -> NewEvent {
    NewEvent::new(
        "Noted",
        1,
        Payload::from_value(&serde_json::json!({ "label": label })),
        Metadata::new_transaction(None),
    )
}

/// `count` raw events labelled `prefix-0`, `prefix-1`, …
pub fn events(prefix: &str, count: usize) -> Vec<NewEvent> {
    (0..count).map(|i| event(&format!("{prefix}-{i}"))).collect()
}

/// The label of an event made by [`event`].
pub fn label(event: &eventshop_core::RecordedEvent) -> String {
    event.payload.to_value().expect("payload is JSON")["label"].as_str().expect("label").to_owned()
}
