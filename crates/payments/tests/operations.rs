//! The wallet operations, called over a real in-process bus against an in-memory store, as
//! the gateway calls them.

use std::sync::Arc;
use std::time::Duration;

use contracts::payments::{
    DepositFunds, GetWallet, ListWalletTransactions, PaymentsEvent, TransactionKind, Wallet, WalletTransaction,
};
use contracts::values::{Currency, Money, PageRequest, PositiveAmount};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, RejectionKind, Request, RequestBus, call};
use eventshop_core::settings::LocalSettings;
use eventshop_core::{
    CommandHandler, EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, Payload, StreamId,
};
use payments::domain::{Wallet as WalletAggregate, WalletCommand};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Harness {
    bus: Arc<InProcessBus>,
    store: Arc<InMemoryEventStore>,
    services: Vec<RunningService>,
}

impl Harness {
    /// `instances` payments services sharing one store, as several processes share one
    /// database; the bus spreads requests over them in turn.
    async fn start(instances: usize) -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let store = Arc::new(InMemoryEventStore::new());
        // The saga's consumers need inventory's and orders' events published, even when
        // there are none.
        for source in ["inventory", "orders"] {
            let _published = bus.publish_events(source, Arc::new(InMemoryEventStore::new())).await.expect("publishes");
        }
        let mut services = Vec::new();
        for _ in 0..instances {
            let context = ServiceContext {
                store: store.clone(),
                bus: bus.clone(),
                consumers: store.clone(),
                settings: Arc::new(LocalSettings::new([])),
            };
            services.push(payments::start(context).await.expect("payments starts"));
        }
        Harness { bus, store, services }
    }

    async fn call<O: Operation>(&self, operation: &O) -> Result<O::Reply, CallError> {
        call(&*self.bus, operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn list(&self, user_id: Uuid, limit: u32, cursor: Option<String>) -> Result<Vec<Transaction>, CallError> {
        let page = self.call(&ListWalletTransactions { user_id, page: PageRequest { limit, cursor } }).await?;
        Ok(page.items.iter().map(Transaction::of).chain([Transaction::Next(page.next_cursor)]).collect())
    }

    async fn stop(self) {
        for service in self.services {
            service.stop().await;
        }
    }
}

/// A listed transaction reduced to what a test asserts on, and the page's next cursor.
#[derive(Debug, PartialEq)]
enum Transaction {
    Item { kind: TransactionKind, amount: i64, order_id: Option<Uuid> },
    Next(Option<String>),
}

impl Transaction {
    fn of(item: &WalletTransaction) -> Transaction {
        Transaction::Item { kind: item.kind, amount: item.amount.amount, order_id: item.order_id }
    }
}

fn deposit(user_id: Uuid, transaction_id: Uuid, amount: i64) -> DepositFunds {
    let amount = PositiveAmount::try_from(Money::eur(amount)).expect("a positive amount");
    DepositFunds { user_id, transaction_id, amount }
}

fn wallet(user_id: Uuid, balance: i64, version: u64) -> Wallet {
    Wallet { user_id, balance: Money::eur(balance), currency: Currency::Eur, version }
}

fn rejection_field(result: Result<impl std::fmt::Debug, CallError>) -> (RejectionKind, String) {
    let Err(CallError::Rejected(rejection)) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    let details = rejection.details.expect("the rejection names the field");
    (rejection.kind, details["errors"][0]["field"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_wallet_never_used_is_empty_in_euros_at_version_zero() {
    let harness = Harness::start(1).await;
    let user_id = Uuid::now_v7();

    let empty = harness.call(&GetWallet { user_id }).await.expect("get answers");

    assert_eq!(empty, wallet(user_id, 0, 0));
    let listed = harness.list(user_id, 20, None).await.expect("list answers");
    assert_eq!(listed, vec![Transaction::Next(None)]);
    harness.stop().await;
}

#[tokio::test]
async fn deposits_add_up_and_a_repeated_one_counts_once() {
    let harness = Harness::start(1).await;
    let user_id = Uuid::now_v7();
    let first = Uuid::now_v7();

    let after_first = harness.call(&deposit(user_id, first, 1_000)).await.expect("deposit answers");
    let repeat = harness.call(&deposit(user_id, first, 1_000)).await.expect("repeat answers");
    let after_second = harness.call(&deposit(user_id, Uuid::now_v7(), 250)).await.expect("deposit answers");
    let late_repeat = harness.call(&deposit(user_id, first, 1_000)).await.expect("repeat answers");

    // The first deposit opens the wallet: two events.
    assert_eq!(after_first, wallet(user_id, 1_000, 2));
    assert_eq!(repeat, after_first, "a repeat answers as the first time");
    assert_eq!(after_second, wallet(user_id, 1_250, 3));
    assert_eq!(late_repeat, after_first, "a repeat answers as the first time, even after other deposits");
    assert_eq!(harness.call(&GetWallet { user_id }).await.expect("get answers"), after_second);
    let stream = harness.store.read_stream(&StreamId::new("wallet", user_id), 0).await.expect("stream reads");
    assert_eq!(stream.len(), 3, "the repeats appended nothing");
    harness.stop().await;
}

#[tokio::test]
async fn every_instance_reads_the_writes_of_the_others() {
    let harness = Harness::start(3).await;
    let user_id = Uuid::now_v7();

    for deposits in 1..=9i64 {
        let written = harness.call(&deposit(user_id, Uuid::now_v7(), 100)).await.expect("deposit answers");
        let read = harness.call(&GetWallet { user_id }).await.expect("get answers");
        assert_eq!(written.balance, Money::eur(100 * deposits));
        assert_eq!(read, written, "the next instance saw an older wallet");
    }
    harness.stop().await;
}

#[tokio::test]
async fn transactions_are_listed_newest_first_page_by_page() {
    let harness = Harness::start(1).await;
    let user_id = Uuid::now_v7();
    for amount in [100, 200, 300] {
        harness.call(&deposit(user_id, Uuid::now_v7(), amount)).await.expect("deposit answers");
    }
    // The saga's commands, as it will run them on this store: a payment, a declined one
    // (not a movement of money) and a refund.
    let wallets = CommandHandler::<WalletAggregate>::new(harness.store.clone());
    let (paid_order, declined_order) = (Uuid::now_v7(), Uuid::now_v7());
    let payment_id = Uuid::now_v7();
    for command in [
        WalletCommand::Capture { user_id, payment_id, order_id: paid_order, amount: Money::eur(250) },
        WalletCommand::Capture {
            user_id,
            payment_id: Uuid::now_v7(),
            order_id: declined_order,
            amount: Money::eur(10_000),
        },
        WalletCommand::Refund { payment_id },
    ] {
        wallets.execute(user_id, &command, Metadata::new_transaction(None)).await.expect("the saga's command runs");
    }

    let first_page = harness.list(user_id, 2, None).await.expect("list answers");
    let Some(Transaction::Next(Some(cursor))) = first_page.last() else {
        panic!("the first page has no next cursor: {first_page:?}");
    };
    let second_page = harness.list(user_id, 2, Some(cursor.clone())).await.expect("list answers");
    let Some(Transaction::Next(Some(cursor))) = second_page.last() else {
        panic!("the second page has no next cursor: {second_page:?}");
    };
    let last_page = harness.list(user_id, 2, Some(cursor.clone())).await.expect("list answers");

    let refund = Transaction::Item { kind: TransactionKind::Refund, amount: 250, order_id: Some(paid_order) };
    let capture = Transaction::Item { kind: TransactionKind::Capture, amount: -250, order_id: Some(paid_order) };
    let deposited = |amount| Transaction::Item { kind: TransactionKind::Deposit, amount, order_id: None };
    assert_eq!(&first_page[..2], &[refund, capture]);
    assert_eq!(&second_page[..2], &[deposited(300), deposited(200)]);
    assert_eq!(last_page, vec![deposited(100), Transaction::Next(None)]);
    assert_eq!(harness.call(&GetWallet { user_id }).await.expect("get answers").balance, Money::eur(600));

    let everything = harness
        .call(&ListWalletTransactions { user_id, page: PageRequest { limit: 100, cursor: None } })
        .await
        .expect("list answers");
    let ids: std::collections::HashSet<Uuid> = everything.items.iter().map(|item| item.id).collect();
    assert_eq!(ids.len(), 5, "two transactions share an id: {:?}", everything.items);
    assert!(everything.items.windows(2).all(|pair| pair[0].at >= pair[1].at), "not newest first");
    harness.stop().await;
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_invalid_and_named() {
    let harness = Harness::start(1).await;
    let user_id = Uuid::now_v7();
    harness.call(&deposit(user_id, Uuid::now_v7(), 100)).await.expect("deposit answers");

    for limit in [0, 101] {
        let listed = harness.list(user_id, limit, None).await;
        assert_eq!(rejection_field(listed), (RejectionKind::Invalid, "limit".to_owned()), "limit {limit}");
    }
    for cursor in ["", "abc", "-1", "1.5"] {
        let listed = harness.list(user_id, 20, Some(cursor.to_owned())).await;
        assert_eq!(rejection_field(listed), (RejectionKind::Invalid, "cursor".to_owned()), "cursor {cursor:?}");
    }
    harness.stop().await;
}

#[tokio::test]
async fn a_balance_beyond_ten_to_the_twelfth_is_invalid_and_names_the_amount() {
    let harness = Harness::start(1).await;
    let user_id = Uuid::now_v7();
    let nearly_full = 1_000_000_000_000 - 10;
    let codec = EventCodec::<PaymentsEvent>::new();
    let history = [
        PaymentsEvent::WalletOpened { user_id, currency: Currency::Eur },
        PaymentsEvent::FundsDeposited {
            user_id,
            transaction_id: Uuid::now_v7(),
            amount: Money::eur(nearly_full),
            balance: Money::eur(nearly_full),
        },
    ]
    .iter()
    .map(|event| codec.encode(event, Metadata::new_transaction(None)).expect("event encodes"))
    .collect();
    harness
        .store
        .append(&StreamId::new("wallet", user_id), ExpectedVersion::NoStream, history)
        .await
        .expect("history appends");

    let refused = harness.call(&deposit(user_id, Uuid::now_v7(), 11)).await;

    assert_eq!(rejection_field(refused), (RejectionKind::Invalid, "amount".to_owned()));
    let unchanged = harness.call(&GetWallet { user_id }).await.expect("get answers");
    assert_eq!(unchanged, wallet(user_id, nearly_full, 2));
    harness.stop().await;
}

#[tokio::test]
async fn a_deposit_of_zero_or_less_cannot_even_be_decoded() {
    let harness = Harness::start(1).await;
    for amount in ["0", "-100", "12.5", "1000000001"] {
        let json = format!(
            r#"{{"user_id":"{}","transaction_id":"{}","amount":{{"amount":{amount},"currency":"EUR"}}}}"#,
            Uuid::now_v7(),
            Uuid::now_v7()
        );
        assert!(serde_json::from_str::<DepositFunds>(&json).is_err(), "amount {amount} decoded");

        // Nor does the service take it from a sender that does not use the contracts.
        let request = Request {
            service: contracts::payments::SERVICE.to_owned(),
            operation: "DepositFunds".to_owned(),
            context: MessageContext::new_transaction(None),
            body: Payload::from_json_unchecked(json),
        };
        let reply = harness.bus.request(request, TIMEOUT).await.expect("the bus delivers");
        let rejection = reply.expect_err("the service refuses the request");
        assert_eq!(rejection.kind, RejectionKind::Invalid, "amount {amount}");
    }
    assert!(harness.store.head_position().await.expect("head reads").0 == 0, "something was appended");
    harness.stop().await;
}
