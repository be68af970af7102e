//! The inventory's part in the checkout saga, on a real in-process bus: orders' events are
//! appended to an orders store published on the bus, as the orders service would, and the
//! effects are read from the inventory's store and operations.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contracts::inventory::{GetInventory, InventoryEvent, ReservedLine, Restock, StockLevels};
use contracts::orders::{OrderLine, OrdersEvent, RejectionReason};
use contracts::values::{Money, PaymentMethod, Quantity};
use eventshop_core::bus::{EventBus, MessageContext, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::{LocalSettings, Settings};
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, Position, StreamId};
use inventory::saga::{RESERVATIONS, SETTLEMENT, reservation_stream};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Harness {
    bus: Arc<InProcessBus>,
    inventory: Arc<InMemoryEventStore>,
    orders: Arc<InMemoryEventStore>,
    /// The live settings every instance reads (`inventory.low_stock_threshold`).
    settings: Arc<LocalSettings>,
    services: Vec<RunningService>,
}

impl Harness {
    /// `instances` inventory services sharing one store, each running the saga's
    /// consumers, so that they race for the same events as several processes would.
    async fn start(instances: usize) -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let orders = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("orders", orders.clone()).await.expect("publishes");
        let mut harness = Harness {
            bus,
            inventory: Arc::new(InMemoryEventStore::new()),
            orders,
            settings: Arc::new(LocalSettings::new([])),
            services: Vec::new(),
        };
        for _ in 0..instances {
            harness.start_instance().await;
        }
        harness
    }

    async fn start_instance(&mut self) {
        let context = ServiceContext {
            store: self.inventory.clone(),
            bus: self.bus.clone(),
            consumers: self.inventory.clone(),
            settings: self.settings.clone(),
        };
        self.services.push(inventory::start(context).await.expect("inventory starts"));
    }

    async fn stop_instances(&mut self) {
        for service in self.services.drain(..) {
            service.stop().await;
        }
    }

    async fn restock(&self, product_id: Uuid, units: u32) {
        let quantity = Quantity::new(units).expect("a valid quantity");
        let restock = Restock { product_id, restock_id: Uuid::now_v7(), quantity };
        call(&*self.bus, &restock, MessageContext::new_transaction(None), TIMEOUT).await.expect("restock answers");
    }

    async fn levels(&self, product_id: Uuid) -> StockLevels {
        let get = GetInventory { product_id };
        call(&*self.bus, &get, MessageContext::new_transaction(None), TIMEOUT).await.expect("get answers").levels
    }

    /// Records an order event as the orders service would; each order is its own
    /// transaction, whose correlation id is the order's id.
    async fn order_event(&self, event: OrdersEvent) {
        let order_id = match &event {
            OrdersEvent::OrderPlaced { order_id, .. }
            | OrdersEvent::OrderConfirmed { order_id, .. }
            | OrdersEvent::OrderRejected { order_id, .. }
            | OrdersEvent::OrderCancelled { order_id, .. } => *order_id,
            other => panic!("not used in these tests: {other:?}"),
        };
        let metadata = Metadata { correlation_id: order_id, causation_id: order_id, acting_user: None };
        let new_event = EventCodec::new().encode(&event, metadata).expect("event encodes");
        self.orders
            .append(&StreamId::new("order", order_id), ExpectedVersion::Any, vec![new_event])
            .await
            .expect("order event appends");
    }

    async fn place(&self, order_id: Uuid, lines: &[(Uuid, u32)]) {
        self.order_event(placed(order_id, lines)).await;
    }

    /// What inventory recorded for an order, once it has decided.
    async fn decision(&self, order_id: Uuid) -> InventoryEvent {
        eventually(|| async {
            let recorded = self.inventory.read_stream(&reservation_stream(order_id), 0).await.expect("stream reads");
            recorded.first().map(|event| EventCodec::<InventoryEvent>::new().decode(event).expect("event decodes"))
        })
        .await
    }

    /// The low-stock alerts on a product's stream.
    async fn low_stock_alerts(&self, product_id: Uuid) -> Vec<InventoryEvent> {
        let stream = self.stock_stream(product_id).await;
        stream.into_iter().filter(|event| matches!(event, InventoryEvent::LowStockDetected { .. })).collect()
    }

    async fn stock_stream(&self, product_id: Uuid) -> Vec<InventoryEvent> {
        let recorded = self.inventory.read_stream(&StreamId::new("stock", product_id), 0).await.expect("stream reads");
        recorded.iter().map(|event| EventCodec::new().decode(event).expect("event decodes")).collect()
    }

    async fn wait_for_levels(&self, product_id: Uuid, expected: StockLevels) {
        eventually(|| async { (self.levels(product_id).await == expected).then_some(()) }).await;
    }

    /// Waits until `consumer` has read every orders event recorded so far.
    async fn caught_up(&self, consumer: &str) {
        let head = self.orders.head_position().await.expect("head reads");
        eventually(|| async {
            let position = self.inventory.consumer_position(consumer).await.expect("position reads");
            (position >= head).then_some(())
        })
        .await;
    }

    async fn stop(mut self) {
        self.stop_instances().await;
    }
}

fn placed(order_id: Uuid, lines: &[(Uuid, u32)]) -> OrdersEvent {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|&(product_id, quantity)| OrderLine {
            product_id,
            name: "A thing".to_owned(),
            quantity,
            unit_price: Money::eur(250),
        })
        .collect();
    let total = Money::eur(lines.iter().map(|line| line.unit_price.amount * i64::from(line.quantity)).sum());
    OrdersEvent::OrderPlaced {
        order_id,
        user_id: user(),
        lines,
        total,
        shipping_address: serde_json::from_value(serde_json::json!({
            "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London",
            "postal_code": "SW1Y 4JH", "country": "GB"
        }))
        .expect("a valid address"),
        payment_method: PaymentMethod::Wallet,
    }
}

fn user() -> Uuid {
    Uuid::from_u128(0xa11ce)
}

fn confirmed(order_id: Uuid) -> OrdersEvent {
    let OrdersEvent::OrderPlaced { lines, shipping_address, .. } = placed(order_id, &[]) else { unreachable!() };
    OrdersEvent::OrderConfirmed { order_id, user_id: user(), shipping_address, lines }
}

fn levels(on_hand: u64, reserved: u64) -> StockLevels {
    StockLevels { on_hand, reserved, available: on_hand - reserved }
}

/// Polls `probe` until it answers, for at most five seconds.
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
async fn every_line_of_a_placed_order_is_held_and_what_payments_needs_recorded() {
    let harness = Harness::start(1).await;
    let (pen, ink, order_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 10).await;
    harness.restock(ink, 3).await;

    // Two lines of the same product are held as one.
    harness.place(order_id, &[(pen, 2), (ink, 3), (pen, 1)]).await;

    let decision = harness.decision(order_id).await;
    assert_eq!(
        decision,
        InventoryEvent::StockReservedForOrder {
            order_id,
            user_id: user(),
            lines: vec![ReservedLine { product_id: pen, quantity: 3 }, ReservedLine { product_id: ink, quantity: 3 }],
            total: Money::eur(1_500),
            payment_method: PaymentMethod::Wallet,
        }
    );
    assert_eq!(harness.levels(pen).await, levels(10, 3));
    assert_eq!(harness.levels(ink).await, levels(3, 3));
    // The reaction belongs to the order's transaction.
    let recorded = harness.inventory.read_stream(&reservation_stream(order_id), 0).await.expect("stream reads");
    assert_eq!(recorded[0].correlation_id, order_id);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_one_line_short_holds_nothing() {
    let harness = Harness::start(1).await;
    let (pen, ink, order_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 10).await;
    harness.restock(ink, 1).await;

    harness.place(order_id, &[(pen, 3), (ink, 2)]).await;

    let decision = harness.decision(order_id).await;
    assert_eq!(
        decision,
        InventoryEvent::StockReservationFailed { order_id, product_id: ink, requested: 2, available: 1 }
    );
    assert_eq!(harness.levels(pen).await, levels(10, 0), "the line that fitted was held anyway");
    assert_eq!(harness.levels(ink).await, levels(1, 0));
    assert_eq!(harness.stock_stream(pen).await.len(), 1, "only the restock is on the pen's stream");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_orders_racing_for_five_units_get_five_units() {
    let harness = Harness::start(3).await;
    let pen = Uuid::now_v7();
    harness.restock(pen, 5).await;
    let orders: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();

    futures::future::join_all(orders.iter().map(|&order_id| harness.order_event(placed(order_id, &[(pen, 1)])))).await;

    let mut reserved = 0;
    for &order_id in &orders {
        match harness.decision(order_id).await {
            InventoryEvent::StockReservedForOrder { .. } => reserved += 1,
            InventoryEvent::StockReservationFailed { requested: 1, available: 0, .. } => {}
            other => panic!("unexpected decision {other:?}"),
        }
    }
    assert_eq!(reserved, 5);
    assert_eq!(harness.levels(pen).await, levels(5, 5));
    let reservations = harness
        .stock_stream(pen)
        .await
        .into_iter()
        .filter(|event| matches!(event, InventoryEvent::StockReserved { .. }));
    assert_eq!(reservations.count(), 5, "three instances, one effect per order");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_delivered_again_change_nothing() {
    let mut harness = Harness::start(1).await;
    let (pen, held, refused) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 2).await;
    // One after the other: orders' streams are handled at once, in no order among them.
    harness.place(held, &[(pen, 2)]).await;
    harness.decision(held).await;
    harness.place(refused, &[(pen, 1)]).await;
    harness.decision(refused).await;
    harness.caught_up(RESERVATIONS).await;
    let stock_before = harness.stock_stream(pen).await;

    // As after a crash that lost the consumer's position: everything is delivered again.
    harness.stop_instances().await;
    harness.inventory.save_consumer_position(RESERVATIONS, Position::START).await.expect("position saves");
    harness.start_instance().await;
    harness.caught_up(RESERVATIONS).await;

    assert_eq!(harness.stock_stream(pen).await, stock_before);
    assert_eq!(harness.levels(pen).await, levels(2, 2));
    for order_id in [held, refused] {
        let recorded = harness.inventory.read_stream(&reservation_stream(order_id), 0).await.expect("stream reads");
        assert_eq!(recorded.len(), 1, "the order was decided again");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_order_gives_its_units_back() {
    let harness = Harness::start(1).await;
    let (pen, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 4).await;
    harness.place(order_id, &[(pen, 3)]).await;
    harness.decision(order_id).await;

    let reason = RejectionReason::PaymentDeclined;
    harness.order_event(OrdersEvent::OrderRejected { order_id, user_id: user(), reason }).await;

    harness.wait_for_levels(pen, levels(4, 0)).await;
    let released = harness.stock_stream(pen).await.pop();
    assert!(matches!(released, Some(InventoryEvent::StockReleased { quantity: 3, .. })), "{released:?}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmed_order_takes_its_units_off_the_shelf() {
    let harness = Harness::start(1).await;
    let (pen, ink, order_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 4).await;
    harness.restock(ink, 4).await;
    harness.place(order_id, &[(pen, 3), (ink, 1)]).await;
    harness.decision(order_id).await;

    harness.order_event(confirmed(order_id)).await;

    harness.wait_for_levels(pen, levels(1, 0)).await;
    assert_eq!(harness.levels(ink).await, levels(3, 0));
    harness.caught_up(SETTLEMENT).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmed_order_cancelled_before_dispatch_puts_its_units_back() {
    let harness = Harness::start(1).await;
    let (pen, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 4).await;
    harness.place(order_id, &[(pen, 3)]).await;
    harness.decision(order_id).await;
    harness.order_event(confirmed(order_id)).await;
    harness.wait_for_levels(pen, levels(1, 0)).await;

    harness.order_event(OrdersEvent::OrderCancelled { order_id, user_id: user() }).await;

    harness.wait_for_levels(pen, levels(4, 0)).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_cancelled_before_inventory_saw_it_holds_nothing_in_the_end() {
    let mut harness = Harness::start(0).await;
    let (pen, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    let restocked =
        InventoryEvent::StockAdded { product_id: pen, restock_id: Uuid::now_v7(), quantity: 4, levels: levels(4, 0) };
    let restocked = EventCodec::new().encode(&restocked, Metadata::new_transaction(None)).expect("event encodes");
    harness
        .inventory
        .append(&StreamId::new("stock", pen), ExpectedVersion::NoStream, vec![restocked])
        .await
        .expect("history appends");
    // Both events are recorded before inventory runs, as after an outage.
    harness.place(order_id, &[(pen, 3)]).await;
    harness.order_event(OrdersEvent::OrderCancelled { order_id, user_id: user() }).await;

    harness.start_instance().await;
    harness.caught_up(RESERVATIONS).await;

    assert!(matches!(harness.decision(order_id).await, InventoryEvent::StockReservedForOrder { .. }));
    assert_eq!(harness.levels(pen).await, levels(4, 0), "the cancelled order still holds units");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_that_makes_stock_low_records_it_once_per_crossing() {
    let harness = Harness::start(1).await;
    let (pen, first, second, third) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 10).await;

    // Given 10 units and the default threshold of 5, when an order holds 6, then 4 are left:
    // low, recorded in the reservation's own append.
    harness.place(first, &[(pen, 6)]).await;
    harness.decision(first).await;
    let alert = InventoryEvent::LowStockDetected { product_id: pen, available: 4, threshold: 5 };
    assert_eq!(harness.low_stock_alerts(pen).await, std::slice::from_ref(&alert));
    let recorded = harness.inventory.read_stream(&StreamId::new("stock", pen), 0).await.expect("stream reads");
    let (reserved, detected) = (&recorded[1], &recorded[2]);
    assert_eq!((reserved.event_type.as_str(), detected.event_type.as_str()), ("StockReserved", "LowStockDetected"));
    assert_eq!(detected.position.0, reserved.position.0 + 1, "one append");
    assert_eq!((detected.causation_id, detected.correlation_id), (reserved.causation_id, first));

    // When another order takes one more while the stock is still low, then no second alert.
    harness.place(second, &[(pen, 1)]).await;
    harness.decision(second).await;
    assert_eq!(harness.levels(pen).await, levels(10, 7));
    assert_eq!(harness.low_stock_alerts(pen).await.len(), 1, "once per crossing");

    // When a restock brings it back above the threshold and an order takes it under again,
    // then it is low again.
    harness.restock(pen, 10).await;
    harness.place(third, &[(pen, 10)]).await;
    harness.decision(third).await;
    let again = InventoryEvent::LowStockDetected { product_id: pen, available: 3, threshold: 5 };
    assert_eq!(harness.low_stock_alerts(pen).await, [alert, again]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_low_stock_threshold_is_read_live_from_the_settings() {
    let harness = Harness::start(1).await;
    let (pen, ink) = (Uuid::now_v7(), Uuid::now_v7());
    harness.restock(pen, 100).await;
    harness.restock(ink, 100).await;
    harness.settings.set("inventory.low_stock_threshold", "0").await.expect("set");
    let order = Uuid::now_v7();
    harness.place(order, &[(pen, 100)]).await;
    harness.decision(order).await;
    assert!(harness.low_stock_alerts(pen).await.is_empty(), "a threshold of 0 never alerts");

    harness.settings.set("inventory.low_stock_threshold", " 50 ").await.expect("set");
    let order = Uuid::now_v7();
    harness.place(order, &[(ink, 51)]).await;
    harness.decision(order).await;
    let alert = InventoryEvent::LowStockDetected { product_id: ink, available: 49, threshold: 50 };
    assert_eq!(harness.low_stock_alerts(ink).await, [alert]);

    assert_eq!(inventory::saga::low_stock_threshold(&LocalSettings::new([])).await, 5, "the default");
    let unreadable = LocalSettings::new([("inventory.low_stock_threshold".to_owned(), "a few".to_owned())]);
    assert_eq!(inventory::saga::low_stock_threshold(&unreadable).await, 5);
    harness.stop().await;
}
