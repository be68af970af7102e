//! The aggregate every command bench runs: a bank account that is opened and receives
//! deposits.
//!
//! It mirrors `store-conformance`'s `Account` but adds `OpenWithDeposits`, a command that
//! causes several events at once, which the batch and cqrs-es comparisons need. The
//! cqrs-es bench implements the same rules on cqrs-es's traits, so both frameworks do the
//! same work per command.

use eventshop_core::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
}

impl DomainEvent for AccountEvent {}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Open {
        owner: String,
    },
    Deposit {
        amount: i64,
    },
    /// Opens the account and deposits each amount: `1 + deposits.len()` events.
    OpenWithDeposits {
        owner: String,
        deposits: Vec<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("amounts must be positive")]
    NotPositive,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    /// In cents.
    pub balance: i64,
    pub deposits: u64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } | AccountCommand::OpenWithDeposits { .. } if self.open => {
                Err(AccountError::AlreadyOpen)
            }
            AccountCommand::Open { owner } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
            AccountCommand::OpenWithDeposits { owner, deposits } => {
                if deposits.iter().any(|amount| *amount <= 0) {
                    return Err(AccountError::NotPositive);
                }
                let opened = AccountEvent::Opened { owner: owner.clone() };
                let deposited = deposits.iter().map(|&amount| AccountEvent::Deposited { amount });
                Ok(std::iter::once(opened).chain(deposited).collect())
            }
            AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount } if *amount <= 0 => Err(AccountError::NotPositive),
            AccountCommand::Deposit { amount } => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
        }
    }

    fn apply(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
        }
        self
    }
}

/// The command that opens an account with `events` events in all (at least 1).
pub fn open_with_events(owner: &str, events: usize) -> AccountCommand {
    let deposits = (1..events.max(1)).map(|i| 100 + i as i64).collect();
    AccountCommand::OpenWithDeposits { owner: owner.to_owned(), deposits }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_with_deposits_causes_one_event_per_deposit_plus_one() {
        let events = Account::default().decide(&open_with_events("ada", 10)).unwrap();
        assert_eq!(events.len(), 10);
        let state = Account::default().apply_all(&events);
        assert!(state.open);
        assert_eq!(state.deposits, 9);
    }

    #[test]
    fn deposits_need_an_open_account_and_a_positive_amount() {
        let closed = Account::default();
        assert_eq!(closed.decide(&AccountCommand::Deposit { amount: 5 }), Err(AccountError::NotOpen));
        let open = closed.apply(&AccountEvent::Opened { owner: "ada".into() });
        assert_eq!(open.decide(&AccountCommand::Deposit { amount: 0 }), Err(AccountError::NotPositive));
        assert_eq!(open.decide(&AccountCommand::Open { owner: "bob".into() }), Err(AccountError::AlreadyOpen));
    }
}
