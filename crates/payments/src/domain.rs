//! A user's wallet and a card payment, as aggregates: deposits, and the captures, refunds
//! and abandonments of order payments.
//!
//! Pure decisions, no I/O. The checkout saga ([`crate::saga`]) calls them when stock is
//! reserved for an order and when an order closes.
//!
//! The rule SPEC §2 asks of every wallet: the balance never goes below zero, and it is
//! always deposits − captures + refunds. A capture the balance cannot cover is not an error
//! but a decision, recorded as `PaymentDeclined`, because the saga must tell the order why
//! it failed and must not charge it later when its event is delivered again.
//!
//! Every payment is decided once: captured, declined, or abandoned (its order closed
//! before it was decided, so a late request to charge it finds it closed). Only a captured
//! payment is refunded, once.

use std::collections::{BTreeMap, VecDeque};

use contracts::payments::PaymentsEvent;
use contracts::values::{CardToken, Currency, Money, PositiveAmount};
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

/// The reason of a card capture the processor declined without saying why.
pub const CARD_DECLINED: &str = "card_declined";

/// What can be done to a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletCommand {
    /// Adds money, opening the wallet on the first deposit. Idempotent per `transaction_id`.
    Deposit { user_id: Uuid, transaction_id: Uuid, amount: PositiveAmount },
    /// Takes an order's payment from the balance, or declines it. Idempotent per
    /// `payment_id`: a payment is decided once, whatever the balance later becomes, and an
    /// abandoned one is never captured. The amount is an order's total, which may be zero.
    Capture { user_id: Uuid, payment_id: Uuid, order_id: Uuid, amount: Money },
    /// Gives a captured payment back. Once.
    Refund { payment_id: Uuid },
    /// Closes a payment not decided yet: its order closed first, so it will never be
    /// captured. A payment already decided stays as it is (a captured one is refunded
    /// with `Refund`).
    Abandon { user_id: Uuid, payment_id: Uuid, order_id: Uuid },
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
    #[error("payment {payment_id} was not captured; there is nothing to refund")]
    NotCaptured { payment_id: Uuid },
    #[error("a payment of {amount} minor units is below zero")]
    NegativeAmount { amount: i64 },
}

/// The balance a deposit left, and the stream version after it: what a repeat answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositOutcome {
    pub balance: Money,
    pub version: Version,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Captured,
    Declined,
    Refunded,
    /// Its order closed before it was decided; it will never be captured.
    Abandoned,
}

/// A payment decided on a wallet or a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedPayment {
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// What was asked; zero for an abandoned payment, whose amount was never known here.
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
    payments: BTreeMap<Uuid, DecidedPayment>,
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

    pub fn payment(&self, payment_id: Uuid) -> Option<&DecidedPayment> {
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
        if amount.amount < 0 {
            return Err(WalletError::NegativeAmount { amount: amount.amount });
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
            PaymentStatus::Declined | PaymentStatus::Abandoned => Err(WalletError::NotCaptured { payment_id }),
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

    fn abandon(&self, user_id: Uuid, payment_id: Uuid, order_id: Uuid) -> Vec<PaymentsEvent> {
        if self.payments.contains_key(&payment_id) {
            return Vec::new();
        }
        vec![PaymentsEvent::PaymentAbandoned { payment_id, order_id, user_id }]
    }

    fn check_currency(&self, offered: Currency) -> Result<(), WalletError> {
        match self.currency {
            Some(wallet) if wallet != offered => Err(WalletError::CurrencyMismatch { wallet, offered }),
            _ => Ok(()),
        }
    }

    fn record_payment(&mut self, payment_id: Uuid, payment: DecidedPayment) {
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
                self.capture(user_id, payment_id, order_id, amount)
            }
            WalletCommand::Refund { payment_id } => self.refund(payment_id),
            WalletCommand::Abandon { user_id, payment_id, order_id } => Ok(self.abandon(user_id, payment_id, order_id)),
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
                self.record_payment(payment_id, DecidedPayment { order_id, user_id, amount, status });
            }
            PaymentsEvent::PaymentDeclined { payment_id, order_id, user_id, amount, .. } => {
                let status = PaymentStatus::Declined;
                self.record_payment(payment_id, DecidedPayment { order_id, user_id, amount, status });
            }
            PaymentsEvent::PaymentRefunded { payment_id, order_id, user_id, amount, balance } => {
                self.balance = balance.map_or(self.balance + amount.amount, |balance| balance.amount);
                let status = PaymentStatus::Refunded;
                self.record_payment(payment_id, DecidedPayment { order_id, user_id, amount, status });
            }
            PaymentsEvent::PaymentAbandoned { payment_id, order_id, user_id } => {
                let amount = Money::zero(self.currency());
                let status = PaymentStatus::Abandoned;
                self.record_payment(payment_id, DecidedPayment { order_id, user_id, amount, status });
            }
        }
        self
    }
}

/// What can be done to a card payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardPaymentCommand {
    /// Charges the card through the simulated processor (SPEC §3): `tok_visa` and
    /// `tok_mastercard` succeed, `tok_chargeDeclined` is declined, `tok_insufficientFunds`
    /// is declined for insufficient funds. Decided once; an abandoned payment is never
    /// captured.
    Capture { payment_id: Uuid, order_id: Uuid, user_id: Uuid, amount: Money, token: CardToken },
    /// Gives a captured payment back to the card. Once.
    Refund { payment_id: Uuid },
    /// Closes the payment if it is not decided yet, as [`WalletCommand::Abandon`] does.
    Abandon { payment_id: Uuid, order_id: Uuid, user_id: Uuid },
}

/// Why a command on a card payment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardPaymentError {
    #[error("payment {payment_id} was never made")]
    UnknownPayment { payment_id: Uuid },
    #[error("payment {payment_id} was not captured; there is nothing to refund")]
    NotCaptured { payment_id: Uuid },
    #[error("a payment of {amount} minor units is below zero")]
    NegativeAmount { amount: i64 },
}

/// One order's card payment (stream `payment-<payment id>`): nothing until it is decided,
/// then how it was decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardPayment {
    payment: Option<DecidedPayment>,
}

impl CardPayment {
    /// How the payment was decided, if it was.
    pub fn payment(&self) -> Option<&DecidedPayment> {
        self.payment.as_ref()
    }

    fn capture(
        &self,
        payment_id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
        amount: Money,
        token: CardToken,
    ) -> Result<Vec<PaymentsEvent>, CardPaymentError> {
        if self.payment.is_some() {
            return Ok(Vec::new());
        }
        if amount.amount < 0 {
            return Err(CardPaymentError::NegativeAmount { amount: amount.amount });
        }
        let declined = |reason: &str| PaymentsEvent::PaymentDeclined {
            payment_id,
            order_id,
            user_id,
            amount,
            reason: reason.to_owned(),
        };
        Ok(vec![match token {
            CardToken::Visa | CardToken::Mastercard => {
                PaymentsEvent::PaymentCaptured { payment_id, order_id, user_id, amount, balance: None }
            }
            CardToken::ChargeDeclined => declined(CARD_DECLINED),
            CardToken::InsufficientFunds => declined(INSUFFICIENT_FUNDS),
        }])
    }

    fn refund(&self, payment_id: Uuid) -> Result<Vec<PaymentsEvent>, CardPaymentError> {
        let Some(payment) = self.payment else {
            return Err(CardPaymentError::UnknownPayment { payment_id });
        };
        match payment.status {
            PaymentStatus::Refunded => Ok(Vec::new()),
            PaymentStatus::Declined | PaymentStatus::Abandoned => Err(CardPaymentError::NotCaptured { payment_id }),
            PaymentStatus::Captured => Ok(vec![PaymentsEvent::PaymentRefunded {
                payment_id,
                order_id: payment.order_id,
                user_id: payment.user_id,
                amount: payment.amount,
                balance: None,
            }]),
        }
    }

    fn abandon(&self, payment_id: Uuid, order_id: Uuid, user_id: Uuid) -> Vec<PaymentsEvent> {
        if self.payment.is_some() {
            return Vec::new();
        }
        vec![PaymentsEvent::PaymentAbandoned { payment_id, order_id, user_id }]
    }

    fn record(&mut self, order_id: Uuid, user_id: Uuid, amount: Money, status: PaymentStatus) {
        self.payment = Some(DecidedPayment { order_id, user_id, amount, status });
    }
}

impl Aggregate for CardPayment {
    const CATEGORY: &'static str = "payment";

    type Command = CardPaymentCommand;
    type Event = PaymentsEvent;
    type Error = CardPaymentError;

    fn decide(&self, command: &CardPaymentCommand) -> Result<Vec<PaymentsEvent>, CardPaymentError> {
        match *command {
            CardPaymentCommand::Capture { payment_id, order_id, user_id, amount, token } => {
                self.capture(payment_id, order_id, user_id, amount, token)
            }
            CardPaymentCommand::Refund { payment_id } => self.refund(payment_id),
            CardPaymentCommand::Abandon { payment_id, order_id, user_id } => {
                Ok(self.abandon(payment_id, order_id, user_id))
            }
        }
    }

    fn apply(mut self, event: &PaymentsEvent) -> Self {
        match *event {
            PaymentsEvent::PaymentCaptured { order_id, user_id, amount, .. } => {
                self.record(order_id, user_id, amount, PaymentStatus::Captured);
            }
            PaymentsEvent::PaymentDeclined { order_id, user_id, amount, .. } => {
                self.record(order_id, user_id, amount, PaymentStatus::Declined);
            }
            PaymentsEvent::PaymentRefunded { order_id, user_id, amount, .. } => {
                self.record(order_id, user_id, amount, PaymentStatus::Refunded);
            }
            PaymentsEvent::PaymentAbandoned { order_id, user_id, .. } => {
                self.record(order_id, user_id, Money::zero(Currency::default()), PaymentStatus::Abandoned);
            }
            // Never recorded on a payment's stream.
            PaymentsEvent::WalletOpened { .. } | PaymentsEvent::FundsDeposited { .. } => {}
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
        WalletCommand::Capture { user_id: USER, payment_id: PAYMENT, order_id: ORDER, amount: Money::eur(amount) }
    }

    fn abandoned() -> PaymentsEvent {
        PaymentsEvent::PaymentAbandoned { payment_id: PAYMENT, order_id: ORDER, user_id: USER }
    }

    fn abandon() -> WalletCommand {
        WalletCommand::Abandon { user_id: USER, payment_id: PAYMENT, order_id: ORDER }
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
    fn a_capture_of_nothing_is_captured_and_one_below_zero_refused() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(capture(0))
            .then_expect_events(vec![captured(0, 500)]);
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(capture(-1))
            .then_expect_error(WalletError::NegativeAmount { amount: -1 });
    }

    #[test]
    fn a_payment_not_decided_yet_is_abandoned() {
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500)])
            .when(abandon())
            .then_expect_events(vec![abandoned()]);
        AggregateTest::<Wallet>::given_no_history().when(abandon()).then_expect_events(vec![abandoned()]);
    }

    #[test]
    fn an_abandoned_payment_is_never_captured_nor_refunded() {
        let history = vec![opened(), deposited(1, 500, 500), abandoned()];
        AggregateTest::<Wallet>::given(history.clone()).when(capture(300)).then_expect_events(vec![]);
        AggregateTest::<Wallet>::given(history.clone())
            .when(WalletCommand::Refund { payment_id: PAYMENT })
            .then_expect_error(WalletError::NotCaptured { payment_id: PAYMENT });
        AggregateTest::<Wallet>::given(history).when(abandon()).then_expect_events(vec![]);
    }

    #[test]
    fn a_decided_payment_is_not_abandoned() {
        for decided in [captured(300, 200), declined(300)] {
            AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500), decided])
                .when(abandon())
                .then_expect_events(vec![]);
        }
        AggregateTest::<Wallet>::given(vec![opened(), deposited(1, 500, 500), captured(300, 200), refunded(300, 500)])
            .when(abandon())
            .then_expect_events(vec![]);
    }

    fn card_capture(token: CardToken) -> CardPaymentCommand {
        CardPaymentCommand::Capture {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(300),
            token,
        }
    }

    fn card_captured() -> PaymentsEvent {
        PaymentsEvent::PaymentCaptured {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(300),
            balance: None,
        }
    }

    fn card_declined(reason: &str) -> PaymentsEvent {
        PaymentsEvent::PaymentDeclined {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(300),
            reason: reason.to_owned(),
        }
    }

    fn card_refunded() -> PaymentsEvent {
        PaymentsEvent::PaymentRefunded {
            payment_id: PAYMENT,
            order_id: ORDER,
            user_id: USER,
            amount: Money::eur(300),
            balance: None,
        }
    }

    #[test]
    fn a_card_payment_is_decided_by_its_token() {
        for token in [CardToken::Visa, CardToken::Mastercard] {
            AggregateTest::<CardPayment>::given_no_history()
                .when(card_capture(token))
                .then_expect_events(vec![card_captured()]);
        }
        AggregateTest::<CardPayment>::given_no_history()
            .when(card_capture(CardToken::ChargeDeclined))
            .then_expect_events(vec![card_declined(CARD_DECLINED)]);
        AggregateTest::<CardPayment>::given_no_history()
            .when(card_capture(CardToken::InsufficientFunds))
            .then_expect_events(vec![card_declined(INSUFFICIENT_FUNDS)]);
    }

    #[test]
    fn a_card_payment_is_decided_once() {
        for decided in [card_captured(), card_declined(CARD_DECLINED), abandoned(), card_refunded()] {
            AggregateTest::<CardPayment>::given(vec![decided.clone()])
                .when(card_capture(CardToken::Visa))
                .then_expect_events(vec![]);
            AggregateTest::<CardPayment>::given(vec![decided])
                .when(CardPaymentCommand::Abandon { payment_id: PAYMENT, order_id: ORDER, user_id: USER })
                .then_expect_events(vec![]);
        }
        AggregateTest::<CardPayment>::given_no_history()
            .when(CardPaymentCommand::Abandon { payment_id: PAYMENT, order_id: ORDER, user_id: USER })
            .then_expect_events(vec![abandoned()]);
    }

    #[test]
    fn a_captured_card_payment_is_refunded_once() {
        let refund = CardPaymentCommand::Refund { payment_id: PAYMENT };
        AggregateTest::<CardPayment>::given(vec![card_captured()])
            .when(refund.clone())
            .then_expect_events(vec![card_refunded()]);
        AggregateTest::<CardPayment>::given(vec![card_captured(), card_refunded()])
            .when(refund.clone())
            .then_expect_events(vec![]);
        AggregateTest::<CardPayment>::given(vec![card_declined(CARD_DECLINED)])
            .when(refund.clone())
            .then_expect_error(CardPaymentError::NotCaptured { payment_id: PAYMENT });
        AggregateTest::<CardPayment>::given(vec![abandoned()])
            .when(refund.clone())
            .then_expect_error(CardPaymentError::NotCaptured { payment_id: PAYMENT });
        AggregateTest::<CardPayment>::given_no_history()
            .when(refund)
            .then_expect_error(CardPaymentError::UnknownPayment { payment_id: PAYMENT });
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
            (id(), 0i64..=1_500).prop_map(|(payment_id, amount)| WalletCommand::Capture {
                user_id: USER,
                payment_id,
                order_id: payment_id,
                amount: Money::eur(amount),
            }),
            id().prop_map(|payment_id| WalletCommand::Refund { payment_id }),
            id().prop_map(|payment_id| WalletCommand::Abandon { user_id: USER, payment_id, order_id: payment_id }),
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
                        PaymentsEvent::WalletOpened { .. }
                        | PaymentsEvent::PaymentDeclined { .. }
                        | PaymentsEvent::PaymentAbandoned { .. } => {}
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
