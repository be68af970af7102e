//! The given/when/then harness, exercised on the bank-account fixture.

use std::collections::BTreeMap;

use async_trait::async_trait;
use eventshop_core::testing::{AggregateTest, InMemoryReadModels, InMemoryTx, ProjectionTest};
use eventshop_core::{EventCodec, Projection, ProjectionError, RecordedEvent, StreamId};
use store_conformance::fixtures::{Account, AccountCommand, AccountError, AccountEvent};

#[test]
fn a_deposit_into_an_open_account_is_recorded() {
    AggregateTest::<Account>::given([AccountEvent::Opened { owner: "ada".into() }])
        .when(AccountCommand::Deposit { amount: 30 })
        .then_expect_events(vec![AccountEvent::Deposited { amount: 30 }]);
}

#[test]
fn an_overdraft_is_refused() {
    AggregateTest::<Account>::given([
        AccountEvent::Opened { owner: "ada".into() },
        AccountEvent::Deposited { amount: 10 },
    ])
    .when(AccountCommand::Withdraw { amount: 11 })
    .then_expect_error(AccountError::InsufficientFunds);
}

#[test]
fn nothing_happens_to_an_account_that_is_not_open() {
    AggregateTest::<Account>::given_no_history()
        .when(AccountCommand::Deposit { amount: 1 })
        .then_expect_error(AccountError::NotOpen);
}

#[test]
fn the_state_after_a_command_is_available() {
    let state = AggregateTest::<Account>::given([AccountEvent::Opened { owner: "ada".into() }])
        .when(AccountCommand::Deposit { amount: 7 })
        .then_state();
    assert_eq!(state.balance, 7);
}

/// Balances per account, as a read model.
struct Balances;

#[async_trait]
impl Projection for Balances {
    type Tx = InMemoryTx<BTreeMap<String, i64>>;

    fn name(&self) -> &str {
        "balances"
    }

    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let event = EventCodec::<AccountEvent>::new()
            .decode(event)
            .map_err(|error| ProjectionError::failed("balances", error))?;
        let balance = tx.state.entry(String::new()).or_default();
        match event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } => *balance += amount,
            AccountEvent::Withdrawn { amount } => *balance -= amount,
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        tx.state.clear();
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_sums_what_it_is_given() {
    let account = StreamId::new("account", 1);
    let read_models = InMemoryReadModels::new();
    ProjectionTest::new()
        .given(
            &account,
            [
                AccountEvent::Opened { owner: "ada".into() },
                AccountEvent::Deposited { amount: 50 },
                AccountEvent::Withdrawn { amount: 20 },
            ],
        )
        .await
        .when_projected(Balances, read_models.clone())
        .await;
    assert_eq!(read_models.state()[""], 30);
}
