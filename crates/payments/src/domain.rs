//! A user's wallet, as an aggregate: deposits, and the captures and refunds of wallet
//! payments.
//!
//! Pure decisions, no I/O. Capture and refund are here already although no operation calls
//! them yet: the checkout saga will, when stock is reserved and when an order is cancelled.
//!
//! The rule SPEC §2 asks of every wallet: the balance never goes below zero, and it is
//! always deposits − captures + refunds. A capture the balance cannot cover is not an error
//! but a decision, recorded as `PaymentDeclined`, because the saga must tell the order why
//! it failed and must not charge it later when its event is delivered again.

use std::collections::{BTreeMap, VecDeque};

use contracts::payments::PaymentsEvent;
use contracts::values::{Currency, Money, PositiveAmount};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The largest balance a wallet may hold, in minor units: ten billion euros, far below
/// any overflow of the sums made over it.
pub const MAX_BALANCE: i64 = 1_000_000_000_000;

/// How many deposits a wallet remembers to answer a repeated one as the first time. A
/// repeat arrives within seconds (a retried HTTP call), not after a thousand deposits.
pub const REMEMBERED_DEPOSITS: usize = 1_000;

/// The reason of a capture declined because the balance does not cover it.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// What can be done to a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletCommand {
    /// Adds money, opening the wallet on the first deposit. Idempotent per `transaction_id`.
    Deposit { user_id: Uuid, transaction_id: Uuid, amount: PositiveAmount },
    /// Takes an order's payment from the balance, or declines it. Idempotent per
    /// `payment_id`: a payment is decided once, whatever the balance later becomes.
    Capture { user_id: Uuid, payment_id: Uuid, order_id: Uuid, amount: PositiveAmount },
    /// Gives a captured payment back. Once.
    Refund { payment_id: Uuid },
}

/// Why a command on a wallet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("the balance would be {would_be}, above the limit of {MAX_BALANCE}")]
    BalanceLimitExceeded { would_be: i64 },
    #[error("the wallet is in {wallet}; it cannot take {offered}")]
    CurrencyMismatch { wallet: Currency, offered: Currency },
    #[error("payment {payment_id} was never made from this wallet")]
    UnknownPayment { payment_id: Uuid },
    #[error("payment {payment_id} was declined; there is nothing to refund")]
    NotCaptured { payment_id: Uuid },
}

/// The balance a deposit left, and the stream version after it: what a repeat answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositOutcome {
    pub balance: Money,
    pub version: Version,
}

/// Where a wallet payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Captured,
    Declined,
    Refunded,
}

/// A payment decided on this wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletPayment {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Money,
    pub status: PaymentStatus,
}

/// A user's wallet (stream `wallet-<user id>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    /// Set by the first deposit; a wallet never opened trades in the default currency.
    currency: Option<Currency>,
    /// Minor units of `currency`.
    balance: i64,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
    /// Deposits by transaction id, the most recent ones.
    deposits: VecDeque<(Uuid, DepositOutcome)>,
    /// Every payment decided on this wallet: one per order, so few, and all of them are
    /// needed to refund each at most once.
    payments: BTreeMap<Uuid, WalletPayment>,
}

impl Wallet {
    pub fn currency(&self) -> Currency {
        self.currency.unwrap_or_default()
    }

    pub fn balance(&self) -> Money {
        Money::new(self.balance, self.currency())
    }

    /// What deposit `transaction_id` left, if it is one of the remembered ones.
    pub fn deposit_outcome(&self, transaction_id: Uuid) -> Option<DepositOutcome> {
        self.deposits.iter().rev().find(|(id, _)| *id == transaction_id).map(|(_, outcome)| *outcome)
    }

    pub fn payment(&self, payment_id: Uuid) -> Option<&WalletPayment> {
        self.payments.get(&payment_id)
    }

    fn deposit(&self, user_id: Uuid, transaction_id: Uuid, amount: Money) -> Result<Vec<PaymentsEvent>, WalletError> {
        if self.deposit_outcome(transaction_id).is_some() {
            return Ok(Vec::new());
        }
        self.check_currency(amount.currency)?;
        let balance = self.balance + amount.amount;
        if balance > MAX_BALANCE {
            return Err(WalletError::BalanceLimitExceeded { would_be: balance });
        }
        let mut events = Vec::with_capacity(2);
        if self.currency.is_none() {
            events.push(PaymentsEvent::WalletOpened { user_id, currency: amount.currency });
        }
        let balance = Money::new(balance, amount.currency);
        events.push(PaymentsEvent::FundsDeposited { user_id, transaction_id, amount, balance });
        Ok(events)
    }

    fn capture(
        &self,
        user_id: Uuid,
        payment_id: Uuid,
        order_id: Uuid,
        amount: Money,
    ) -> Result<Vec<PaymentsEvent>, WalletError> {
        if self.payments.contains_key(&payment_id) {
            return Ok(Vec::new());
        }
        self.check_currency(amount.currency)?;
        if self.balance < amount.amount {
            let reason = INSUFFICIENT_FUNDS.to_owned();
            return Ok(vec![PaymentsEvent::PaymentDeclined { payment_id, order_id, user_id, amount, reason }]);
        }
        let balance = Some(Money::new(self.balance - amount.amount, amount.currency));
        Ok(vec![PaymentsEvent::PaymentCaptured { payment_id, order_id, user_id, amount, balance }])
    }

    fn refund(&self, payment_id: Uuid) -> Result<Vec<PaymentsEvent>, WalletError> {
        let Some(payment) = self.payments.get(&payment_id) else {
            return Err(WalletError::UnknownPayment { payment_id });
        };
        match payment.status {
            PaymentStatus::Refunded => Ok(Vec::new()),
            PaymentStatus::Declined => Err(WalletError::NotCaptured { payment_id }),
            PaymentStatus::Captured => {
                let balance = Some(Money::new(self.balance + payment.amount.amount, payment.amount.currency));
                Ok(vec![PaymentsEvent::PaymentRefunded {
                    payment_id,
                    order_id: payment.order_id,
                    user_id: payment.user_id,
                    amount: payment.amount,
                    balance,
                }])
            }
        }
    }

    fn check_currency(&self, offered: Currency) -> Result<(), WalletError> {
        match self.currency {
            Some(wallet) if wallet != offered => Err(WalletError::CurrencyMismatch { wallet, offered }),
            _ => Ok(()),
        }
    }

    fn record_payment(&mut self, payment_id: Uuid, payment: WalletPayment) {
        self.payments.insert(payment_id, payment);
    }
}

impl Aggregate for Wallet {
    const CATEGORY: &'static str = "wallet";

    type Command = WalletCommand;
    type Event = PaymentsEvent;
    type Error = WalletError;

    fn decide(&self, command: &WalletCommand) -> Result<Vec<PaymentsEvent>, WalletError> {
        match *command {
            WalletCommand::Deposit { user_id, transaction_id, amount } => {
                self.deposit(user_id, transaction_id, amount.money())
            }
            WalletCommand::Capture { user_id, payment_id, order_id, amount } => {
                self.capture(user_id, payment_id, order_id, amount.money())
            }
            WalletCommand::Refund { payment_id } => self.refund(payment_id),
        }
    }

    fn apply(mut self, event: &PaymentsEvent) -> Self {
        self.version += 1;
        match *event {
            PaymentsEvent::WalletOpened { currency, .. } => {
                self.currency = Some(currency);
            }
            PaymentsEvent::FundsDeposited { transaction_id, balance, .. } => {
                self.balance = balance.amount;
                self.deposits.push_back((transaction_id, DepositOutcome { balance, version: self.version }));
                while self.deposits.len() > REMEMBERED_DEPOSITS {
                    self.deposits.pop_front();
                }
            }
            PaymentsEvent::PaymentCaptured { payment_id, order_id, user_id, amount, balance } => {
                // A wallet payment always states the balance after; without one the
                // amount tells it.
                self.balance = balance.map_or(self.balance - amount.amount, |balance| balance.amount);
                let status = PaymentStatus::Captured;
                self.record_payment(payment_id, WalletPayment { order_id, user_id, amount, status });
            }
            PaymentsEvent::PaymentDeclined { payment_id, order_id, user_id, amount, .. } => {
                let status = PaymentStatus::Declined;
                self.record_payment(payment_id, WalletPayment { order_id, user_id, amount, status });
            }
            PaymentsEvent::PaymentRefunded { payment_id, order_id, user_id, amount, balance } => {
                self.balance = balance.map_or(self.balance + amount.amount, |balance| balance.amount);
                let status = PaymentStatus::Refunded;
                self.record_payment(payment_id, WalletPayment { order_id, user_id, amount, status });
            }
            // Not decided by this aggregate yet.
            PaymentsEvent::PaymentAbandoned { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::testing::AggregateTest;
    use proptest::prelude::*;

    use super::*;

    const USER: Uuid = Uuid::from_u128(0xa11ce);
    const ORDER: Uuid = Uuid::from_u128(0x0de5);
    const PAYMENT: Uuid = Uuid::from_u128(0x9a7);

    fn positive(amount: i64) -> PositiveAmount {
        PositiveAmount::try_from(Money::eur(amount)).expect("a positive amount")
    }

    fn opened() -> PaymentsEvent {
        PaymentsEvent::WalletOpened { user_id: USER, currency: Currency::Eur }
    }

    fn deposited(transaction: u128, amount: i64, balance: i64) -> PaymentsEvent {
        PaymentsEvent::FundsDeposited {
            user_id: USER,
            transaction_id: Uuid::from_u128(transaction),
            amount: Money::eur(amount),
            balance: Money::eur(balance),
        }
    }

    fn captured(amount: i64, balance: i64) -> PaymentsEvent {
        PaymentsEvent::PaymentCaptured {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(amount),
            balance: Some(Money::eur(balance)),
        }
    }

    fn declined(amount: i64) -> PaymentsEvent {
        PaymentsEvent::PaymentDeclined {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(amount),
            reason: INSUFFICIENT_FUNDS.to_owned(),
        }
    }

    fn refunded(amount: i64, balance: i64) -> PaymentsEvent {
        PaymentsEvent::PaymentRefunded {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(amount),
            balance: Some(Money::eur(balance)),
        }
    }

    fn deposit(transaction: u128, amount: i64) -> WalletCommand {
        WalletCommand::Deposit { user_id: USER, transaction_id: Uuid::from_u128(transaction), amount: positive(amount) }
    }

    fn capture(amount: i64) -> WalletCommand {
        WalletCommand::Capture { user_id: USER, payment_id: PAYMENT, order_id: ORDER, amount: positive(amount) }
    }

    #[test]
    fn the_first_deposit_opens_the_wallet() {
        AggregateTest::<Wallet>::given_no_history()
            .when(deposit(1, 500))
            .then_expect_events(vec![opened(), deposited(1, 500, 500)]);
    }

    #[test]
    fn later_deposits_add_to_the_balance() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(deposit(2, 250))
            .then_expect_events(vec![deposited(2, 250, 750)]);
    }

    #[test]
    fn a_repeated_deposit_counts_once_and_remembers_what_the_first_left() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(deposit(1, 500))
            .then_expect_events(vec![]);
        let state = AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500), deposited(2, 100, 600)])
            .when(deposit(1, 500))
            .then_state();
        assert_eq!(state.balance(), Money::eur(600));
        assert_eq!(
            state.deposit_outcome(Uuid::from_u128(1)),
            Some(DepositOutcome { balance: Money::eur(500), version: 2 })
        );
    }

    #[test]
    fn a_balance_may_not_exceed_ten_to_the_twelfth_minor_units() {
        let nearly_full = MAX_BALANCE - 10;
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, nearly_full, nearly_full)])
            .when(deposit(2, 11))
            .then_expect_error(WalletError::BalanceLimitExceeded { would_be: MAX_BALANCE + 1 });
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, nearly_full, nearly_full)])
            .when(deposit(2, 10))
            .then_expect_events(vec![deposited(2, 10, MAX_BALANCE)]);
    }

    #[test]
    fn a_capture_takes_the_amount_from_the_balance() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(capture(500))
            .then_expect_events(vec![captured(500, 0)]);
    }

    #[test]
    fn a_capture_the_balance_cannot_cover_is_declined_for_insufficient_funds() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(capture(501))
            .then_expect_events(vec![declined(501)]);
        AggregateTest::<Wallet>::given_no_history().when(capture(1)).then_expect_events(vec![declined(1)]);
    }

    #[test]
    fn a_payment_is_decided_once() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500), captured(300, 200)])
            .when(capture(300))
            .then_expect_events(vec![]);
        // A declined payment stays declined though the wallet could now pay it.
        AggregateTest::<Wallet>::given(vec![declined(300), opened(), deposited(1, 500, 500)])
            .when(capture(300))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_refund_gives_a_captured_payment_back_once() {
        let history = vec![opened(), deposited(1, 500, 500), captured(300, 200)];
        AggregateTest::<Wallet>::given(history.clone())
            .when(WalletCommand::Refund { payment_id: PAYMENT })
            .then_expect_events(vec![refunded(300, 500)]);
        AggregateTest::<Wallet>::given(history.into_iter().chain([refunded(300, 500)]))
            .when(WalletCommand::Refund { payment_id: PAYMENT })
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_a_captured_payment_is_refunded() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(WalletCommand::Refund { payment_id: PAYMENT })
            .then_expect_error(WalletError::UnknownPayment { payment_id: PAYMENT });
        AggregateTest::<Wallet>::given(vec![declined(300)])
            .when(WalletCommand::Refund { payment_id: PAYMENT })
            .then_expect_error(WalletError::NotCaptured { payment_id: PAYMENT });
    }

    #[test]
    fn the_state_survives_a_snapshot() {
        let state = Wallet::default().apply_all(&[opened(), deposited(1, 500, 500), captured(300, 200)]);
        let json = serde_json::to_string(&state).expect("the state serializes");
        let restored: Wallet = serde_json::from_str(&json).expect("the state deserializes");
        assert_eq!(restored, state);
    }

    fn any_command() -> impl Strategy<Value = WalletCommand> {
        // Few ids, so that repeats and refunds of real payments are common.
        let id = || (0u128..6).prop_map(Uuid::from_u128);
        prop_oneof![
            (id(), 1i64..=1_000).prop_map(|(transaction_id, amount)| WalletCommand::Deposit {
                user_id: USER,
                transaction_id,
                amount: positive(amount),
            }),
            (id(), 1i64..=1_500).prop_map(|(payment_id, amount)| WalletCommand::Capture {
                user_id: USER,
                payment_id,
                order_id: payment_id,
                amount: positive(amount),
            }),
            id().prop_map(|payment_id| WalletCommand::Refund { payment_id }),
        ]
    }

    proptest! {
        /// SPEC §2: a balance never goes below zero, and money is conserved.
        #[test]
        fn money_is_conserved_and_never_negative(commands in proptest::collection::vec(any_command(), 0..80)) {
            let mut state = Wallet::default();
            let (mut deposits, mut captures, mut refunds) = (0i64, 0i64, 0i64);
            for command in &commands {
                let Ok(events) = state.decide(command) else {
                    continue;
                };
                for event in &events {
                    match event {
                        PaymentsEvent::FundsDeposited { amount, .. } => deposits += amount.amount,
                        PaymentsEvent::PaymentCaptured { amount, .. } => captures += amount.amount,
                        PaymentsEvent::PaymentRefunded { amount, .. } => refunds += amount.amount,
                        PaymentsEvent::WalletOpened { .. } | PaymentsEvent::PaymentDeclined { .. } => {}
                    }
                }
                state = state.apply_all(&events);
                prop_assert!(state.balance >= 0, "negative balance after {command:?}");
                prop_assert_eq!(state.balance, deposits - captures + refunds, "money not conserved after {:?}", command);
                prop_assert!(refunds <= captures, "refunded more than was captured");
            }
        }
    }
}
