//! The payments' part in the checkout saga, on a real in-process bus: inventory's and
//! orders' events are appended to their stores, published on the bus, as those services
//! would, and the effects are read from the payments' store and operations.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contracts::inventory::{InventoryEvent, ReservedLine};
use contracts::orders::{OrdersEvent, RejectionReason};
use contracts::payments::{DepositFunds, GetWallet, PaymentsEvent, payment_id};
use contracts::values::{CardToken, Money, PaymentMethod, PositiveAmount};
use eventshop_core::bus::{EventBus, MessageContext, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{
    DomainEvent, EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, RecordedEvent, StreamId,
};
use payments::saga::{CHARGES, COMPENSATIONS};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Harness {
    bus: Arc<InProcessBus>,
    payments: Arc<InMemoryEventStore>,
    inventory: Arc<InMemoryEventStore>,
    orders: Arc<InMemoryEventStore>,
    services: Vec<RunningService>,
}

impl Harness {
    async fn start() -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let (inventory, orders) = (Arc::new(InMemoryEventStore::new()), Arc::new(InMemoryEventStore::new()));
        let _published = bus.publish_events("inventory", inventory.clone()).await.expect("publishes");
        let _published = bus.publish_events("orders", orders.clone()).await.expect("publishes");
        let payments = Arc::new(InMemoryEventStore::new());
        let context = ServiceContext {
            store: payments.clone(),
            bus: bus.clone(),
            consumers: payments.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        let services = vec![payments::start(context).await.expect("payments starts")];
        Harness { bus, payments, inventory, orders, services }
    }

    async fn deposit(&self, user_id: Uuid, amount: i64) {
        let amount = PositiveAmount::try_from(Money::eur(amount)).expect("a positive amount");
        let deposit = DepositFunds { user_id, transaction_id: Uuid::now_v7(), amount };
        call(&*self.bus, &deposit, MessageContext::new_transaction(None), TIMEOUT).await.expect("deposit answers");
    }

    async fn balance(&self, user_id: Uuid) -> i64 {
        let get = GetWallet { user_id };
        call(&*self.bus, &get, MessageContext::new_transaction(None), TIMEOUT)
            .await
            .expect("get answers")
            .balance
            .amount
    }

    /// Inventory held an order's stock: what payments charges on.
    async fn stock_reserved(&self, order: Order) {
        let event = InventoryEvent::StockReservedForOrder {
            order_id: order.id,
            user_id: order.user_id,
            lines: vec![ReservedLine { product_id: Uuid::now_v7(), quantity: 1 }],
            total: Money::eur(order.total),
            payment_method: order.method,
        };
        record(&self.inventory, StreamId::new("reservation", order.id), order.id, &event).await;
    }

    async fn rejected(&self, order: Order) {
        let event =
            OrdersEvent::OrderRejected { order_id: order.id, user_id: order.user_id, reason: RejectionReason::Timeout };
        record(&self.orders, StreamId::new("order", order.id), order.id, &event).await;
    }

    async fn cancelled(&self, order: Order) {
        let event = OrdersEvent::OrderCancelled { order_id: order.id, user_id: order.user_id };
        record(&self.orders, StreamId::new("order", order.id), order.id, &event).await;
    }

    /// The events payments recorded about an order's payment, wherever they are, once
    /// `consumer` has read everything `source` holds.
    async fn payment_events(&self, consumer: &str, source: &InMemoryEventStore, order: Order) -> Vec<RecordedEvent> {
        let head = source.head_position().await.expect("head reads");
        eventually(|| async {
            let position = self.payments.consumer_position(consumer).await.expect("position reads");
            (position >= head).then_some(())
        })
        .await;
        let codec = EventCodec::<PaymentsEvent>::new();
        let all = self.payments.read_all(eventshop_core::Position::START, 10_000).await.expect("store reads");
        all.into_iter()
            .filter(|recorded| {
                let event = codec.decode(recorded).expect("event decodes");
                matches!(
                    event,
                    PaymentsEvent::PaymentCaptured { order_id, .. }
                    | PaymentsEvent::PaymentDeclined { order_id, .. }
                    | PaymentsEvent::PaymentRefunded { order_id, .. }
                    | PaymentsEvent::PaymentAbandoned { order_id, .. } if order_id == order.id
                )
            })
            .collect()
    }

    async fn charged(&self, order: Order) -> Vec<(String, String)> {
        summary(&self.payment_events(CHARGES, &self.inventory, order).await)
    }

    async fn compensated(&self, order: Order) -> Vec<(String, String)> {
        summary(&self.payment_events(COMPENSATIONS, &self.orders, order).await)
    }

    async fn stop(self) {
        for service in self.services {
            service.stop().await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Order {
    id: Uuid,
    user_id: Uuid,
    total: i64,
    method: PaymentMethod,
}

impl Order {
    fn new(user_id: Uuid, total: i64, method: PaymentMethod) -> Order {
        Order { id: Uuid::now_v7(), user_id, total, method }
    }
}

/// Records `event` as its service would, in the order's transaction.
async fn record<E: DomainEvent>(store: &InMemoryEventStore, stream_id: StreamId, order_id: Uuid, event: &E) {
    let metadata = Metadata { correlation_id: order_id, causation_id: order_id, acting_user: None };
    let new_event = EventCodec::new().encode(event, metadata).expect("event encodes");
    store.append(&stream_id, ExpectedVersion::Any, vec![new_event]).await.expect("event appends");
}

/// Each event as (type, stream category): what was decided, and where.
fn summary(events: &[RecordedEvent]) -> Vec<(String, String)> {
    events.iter().map(|event| (event.event_type.clone(), event.stream_id.category().to_owned())).collect()
}

fn pair(event_type: &str, category: &str) -> (String, String) {
    (event_type.to_owned(), category.to_owned())
}

async fn eventually<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wallet_order_is_captured_from_the_balance() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.deposit(user_id, 1_000).await;
    let order = Order::new(user_id, 600, PaymentMethod::Wallet);

    harness.stock_reserved(order).await;

    let events = harness.payment_events(CHARGES, &harness.inventory, order).await;
    assert_eq!(summary(&events), vec![pair("PaymentCaptured", "wallet")]);
    assert_eq!(events[0].correlation_id, order.id, "the capture belongs to the order's transaction");
    let captured = EventCodec::<PaymentsEvent>::new().decode(&events[0]).expect("event decodes");
    assert_eq!(
        captured,
        PaymentsEvent::PaymentCaptured {
            payment_id: payment_id(order.id),
            order_id: order.id,
            user_id,
            amount: Money::eur(600),
            balance: Some(Money::eur(400)),
        }
    );
    assert_eq!(harness.balance(user_id).await, 400);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wallet_order_beyond_the_balance_is_declined_for_insufficient_funds() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.deposit(user_id, 500).await;
    let order = Order::new(user_id, 501, PaymentMethod::Wallet);

    harness.stock_reserved(order).await;

    let events = harness.payment_events(CHARGES, &harness.inventory, order).await;
    assert_eq!(summary(&events), vec![pair("PaymentDeclined", "wallet")]);
    let declined = EventCodec::<PaymentsEvent>::new().decode(&events[0]).expect("event decodes");
    assert!(matches!(declined, PaymentsEvent::PaymentDeclined { ref reason, .. } if reason == "insufficient_funds"));
    assert_eq!(harness.balance(user_id).await, 500);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_card_order_is_decided_by_its_token() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    let cases = [
        (CardToken::Visa, "PaymentCaptured", None),
        (CardToken::Mastercard, "PaymentCaptured", None),
        (CardToken::ChargeDeclined, "PaymentDeclined", Some("card_declined")),
        (CardToken::InsufficientFunds, "PaymentDeclined", Some("insufficient_funds")),
    ];
    for (token, event_type, reason) in cases {
        let order = Order::new(user_id, 700, PaymentMethod::Card { token });

        harness.stock_reserved(order).await;

        let events = harness.payment_events(CHARGES, &harness.inventory, order).await;
        assert_eq!(summary(&events), vec![pair(event_type, "payment")], "{token:?}");
        assert_eq!(events[0].stream_id, StreamId::new("payment", payment_id(order.id)));
        match EventCodec::<PaymentsEvent>::new().decode(&events[0]).expect("event decodes") {
            PaymentsEvent::PaymentCaptured { balance, amount, .. } => {
                assert_eq!((balance, amount), (None, Money::eur(700)));
            }
            PaymentsEvent::PaymentDeclined { reason: declined_for, .. } => assert_eq!(Some(&*declined_for), reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(harness.balance(user_id).await, 0, "a card never touches the wallet");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_order_is_refunded_once() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.deposit(user_id, 1_000).await;
    let by_wallet = Order::new(user_id, 300, PaymentMethod::Wallet);
    let by_card = Order::new(user_id, 300, PaymentMethod::Card { token: CardToken::Visa });
    for order in [by_wallet, by_card] {
        harness.stock_reserved(order).await;
        harness.charged(order).await;
    }
    assert_eq!(harness.balance(user_id).await, 700);

    for order in [by_wallet, by_card] {
        harness.cancelled(order).await;
        // A second closing of the same order (a rejection racing the cancellation) refunds nothing more.
        harness.rejected(order).await;
    }

    assert_eq!(
        harness.compensated(by_wallet).await,
        vec![pair("PaymentCaptured", "wallet"), pair("PaymentRefunded", "wallet")]
    );
    assert_eq!(
        harness.compensated(by_card).await,
        vec![pair("PaymentCaptured", "payment"), pair("PaymentRefunded", "payment")]
    );
    assert_eq!(harness.balance(user_id).await, 1_000);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_payment_needs_no_compensation() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    let order = Order::new(user_id, 300, PaymentMethod::Card { token: CardToken::ChargeDeclined });
    harness.stock_reserved(order).await;
    harness.charged(order).await;

    harness.rejected(order).await;

    assert_eq!(harness.compensated(order).await, vec![pair("PaymentDeclined", "payment")]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_arriving_after_the_rejection_is_never_charged() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.deposit(user_id, 1_000).await;
    let by_wallet = Order::new(user_id, 300, PaymentMethod::Wallet);
    let by_card = Order::new(user_id, 300, PaymentMethod::Card { token: CardToken::Visa });

    for order in [by_wallet, by_card] {
        harness.rejected(order).await;
        let abandoned = harness.compensated(order).await;
        // Payments does not know the method yet, so the payment is closed wherever it may be made.
        assert_eq!(abandoned, vec![pair("PaymentAbandoned", "payment"), pair("PaymentAbandoned", "wallet")]);
        harness.stock_reserved(order).await;
        assert_eq!(harness.charged(order).await, abandoned, "the late reservation charged a closed order");
    }
    assert_eq!(harness.balance(user_id).await, 1_000);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_is_conserved_over_many_orders_captured_declined_refunded_and_abandoned() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.deposit(user_id, 1_000).await;
    harness.deposit(user_id, 250).await;
    let orders: Vec<Order> = (0..12).map(|index| Order::new(user_id, 50 + index * 5, PaymentMethod::Wallet)).collect();

    // Charges and closings in every order, the two consumers racing each other. The
    // totals add up to less than the balance, so that no charge is declined however the
    // race goes.
    for (index, &order) in orders.iter().enumerate() {
        match index % 3 {
            0 => harness.stock_reserved(order).await,
            1 => {
                harness.stock_reserved(order).await;
                harness.cancelled(order).await;
            }
            _ => {
                harness.cancelled(order).await;
                harness.stock_reserved(order).await;
            }
        }
    }

    let (mut captured, mut refunded) = (0, 0);
    for &order in &orders {
        harness.compensated(order).await;
        for event in harness.payment_events(CHARGES, &harness.inventory, order).await {
            match EventCodec::<PaymentsEvent>::new().decode(&event).expect("event decodes") {
                PaymentsEvent::PaymentCaptured { amount, .. } => captured += amount.amount,
                PaymentsEvent::PaymentRefunded { amount, .. } => refunded += amount.amount,
                PaymentsEvent::PaymentDeclined { .. } | PaymentsEvent::PaymentAbandoned { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let balance = harness.balance(user_id).await;
    assert_eq!(balance, 1_250 - captured + refunded, "money was created or lost");
    assert!(balance >= 0);
    // Every closed order got its money back; only the orders left open paid.
    let kept: i64 = orders.iter().enumerate().filter(|(index, _)| index % 3 == 0).map(|(_, order)| order.total).sum();
    assert_eq!(captured - refunded, kept);
    harness.stop().await;
}
