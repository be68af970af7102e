//! Shipping's operations, called over a real in-process bus against an in-memory store with
//! a small orders service served beside it; and its reactions to orders' events, read from
//! an orders store published on the bus.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::identity::AddressInput;
use contracts::orders::{Order, OrderStatus, OrdersEvent, ShipOrder};
use contracts::shipping::{DeliverShipment, DispatchShipment, GetShipment, Shipment, ShipmentStatus, shipment_id};
use contracts::values::{Money, PaymentMethod};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, Rejection, RejectionKind, Running, call};
use eventshop_core::consumer::EventHandler;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, RecordedEvent, StreamId};
use runtime::{InProcessBus, OperationRouter, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Orders as shipping sees it: remembers every ShipOrder, and answers it shipped (or with
/// a refusal the test sets).
#[derive(Debug, Default)]
struct FakeOrders {
    shipped: Mutex<Vec<ShipOrder>>,
    refusal: Mutex<Option<Rejection>>,
}

impl FakeOrders {
    fn ship(&self, request: ShipOrder) -> Result<Order, Rejection> {
        if let Some(refusal) = self.refusal.lock().expect("orders lock").clone() {
            return Err(refusal);
        }
        let order = Order {
            id: request.order_id,
            user_id: Uuid::nil(),
            status: OrderStatus::Shipped,
            reason: None,
            items: Vec::new(),
            total: Money::eur(0),
            shipping_address: address(),
            payment_method: PaymentMethod::Wallet,
            history: Vec::new(),
            created_at: Utc::now(),
            version: 5,
        };
        self.shipped.lock().expect("orders lock").push(request);
        Ok(order)
    }

    fn shipments(&self) -> Vec<(Uuid, String, String)> {
        let shipped = self.shipped.lock().expect("orders lock");
        shipped.iter().map(|ship| (ship.order_id, ship.carrier.clone(), ship.tracking_number.clone())).collect()
    }
}

struct Shop {
    bus: Arc<InProcessBus>,
    shipping_store: Arc<InMemoryEventStore>,
    orders_store: Arc<InMemoryEventStore>,
    orders: Arc<FakeOrders>,
    fake_orders: Box<dyn Running>,
    shipping: RunningService,
}

impl Shop {
    async fn start() -> Shop {
        let bus = Arc::new(InProcessBus::new());
        let orders_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("orders", orders_store.clone()).await.expect("orders publishes");
        let orders = Arc::new(FakeOrders::default());
        let fake_orders = {
            let orders = orders.clone();
            OperationRouter::new()
                .route::<ShipOrder, _, _>(move |request, _context| {
                    let answer = orders.ship(request);
                    async move { answer }
                })
                .serve(&*bus, "orders", "a fake orders service")
                .await
                .expect("the fake orders serves")
        };
        let shipping_store = Arc::new(InMemoryEventStore::new());
        let context = ServiceContext {
            store: shipping_store.clone(),
            bus: bus.clone(),
            consumers: shipping_store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        let shipping = shipping::start(context).await.expect("shipping starts");
        Shop { bus, shipping_store, orders_store, orders, fake_orders, shipping }
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, CallError> {
        call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    /// Records an orders event on the order's stream, as orders would.
    async fn record(&self, order_id: Uuid, event: OrdersEvent) -> Metadata {
        let metadata = Metadata::new_transaction(None);
        let event = EventCodec::<OrdersEvent>::new().encode(&event, metadata).expect("encodes");
        self.orders_store
            .append(&StreamId::new("order", order_id), ExpectedVersion::Any, vec![event])
            .await
            .expect("orders appends");
        metadata
    }

    async fn confirm(&self, user_id: Uuid, order_id: Uuid) -> Metadata {
        let confirmed = OrdersEvent::OrderConfirmed { order_id, user_id, shipping_address: address(), lines: vec![] };
        self.record(order_id, confirmed).await
    }

    async fn cancel(&self, user_id: Uuid, order_id: Uuid) -> Metadata {
        self.record(order_id, OrdersEvent::OrderCancelled { order_id, user_id }).await
    }

    /// The order's shipment once `check` holds of it; fails the test after a few seconds.
    async fn eventually(&self, order_id: Uuid, check: impl Fn(&Shipment) -> bool) -> Shipment {
        for _ in 0..100 {
            if let Ok(shipment) = self.call(GetShipment { order_id, viewer: None }).await
                && check(&shipment)
            {
                return shipment;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the shipment of {order_id} never reached the expected state");
    }

    async fn shipment_events(&self, order_id: Uuid) -> Vec<RecordedEvent> {
        let stream_id = StreamId::new("shipment", shipment_id(order_id));
        self.shipping_store.read_stream(&stream_id, 0).await.expect("the shipment stream reads")
    }

    async fn dispatch(&self, order_id: Uuid, carrier: &str, tracking_number: &str) -> Result<Shipment, CallError> {
        let shipment_id = shipment_id(order_id);
        self.call(DispatchShipment {
            shipment_id,
            carrier: carrier.to_owned(),
            tracking_number: tracking_number.to_owned(),
        })
        .await
    }

    async fn stop(self) {
        self.shipping.stop().await;
        self.fake_orders.stop().await;
    }
}

fn address() -> AddressInput {
    serde_json::from_value(serde_json::json!({
        "name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1", "country": "GB"
    }))
    .expect("a valid address")
}

fn rejection<T: std::fmt::Debug>(result: Result<T, CallError>) -> Rejection {
    match result {
        Err(CallError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_confirmed_order_gets_a_pending_shipment_that_only_its_owner_and_admins_see() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());

    let confirmation = shop.confirm(user_id, order_id).await;
    let shipment = shop.eventually(order_id, |_| true).await;

    let expected = Shipment {
        id: shipment_id(order_id),
        order_id,
        user_id,
        status: ShipmentStatus::Pending,
        carrier: None,
        tracking_number: None,
        address: address(),
        version: 1,
    };
    assert_eq!(shipment, expected);
    let owner = shop.call(GetShipment { order_id, viewer: Some(user_id) }).await.expect("the owner sees it");
    assert_eq!(owner, expected);
    let stranger = shop.call(GetShipment { order_id, viewer: Some(Uuid::now_v7()) }).await;
    assert_eq!(rejection(stranger).kind, RejectionKind::NotFound);
    let events = shop.shipment_events(order_id).await;
    assert_eq!(events[0].correlation_id, confirmation.correlation_id, "created within the order's transaction");
    shop.stop().await;
}

#[tokio::test]
async fn an_order_without_a_shipment_has_nothing_to_show_dispatch_or_deliver() {
    let shop = Shop::start().await;
    let order_id = Uuid::now_v7();

    let shown = shop.call(GetShipment { order_id, viewer: None }).await;
    let dispatched = shop.dispatch(order_id, "DHL", "JD01").await;
    let delivered = shop.call(DeliverShipment { shipment_id: shipment_id(order_id) }).await;

    assert_eq!(rejection(shown).kind, RejectionKind::NotFound);
    assert_eq!(rejection(dispatched).kind, RejectionKind::NotFound);
    assert_eq!(rejection(delivered).kind, RejectionKind::NotFound);
    assert!(shop.orders.shipments().is_empty(), "orders was not asked");
    shop.stop().await;
}

#[tokio::test]
async fn a_dispatch_ships_the_order_first_and_a_repeat_answers_the_same() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    shop.eventually(order_id, |_| true).await;

    let dispatched = shop.dispatch(order_id, " DHL ", "JD01").await.expect("dispatched");
    let repeated = shop.dispatch(order_id, "DHL", "JD01").await.expect("dispatched again");
    let another = shop.dispatch(order_id, "DHL", "JD02").await;

    assert_eq!(dispatched.status, ShipmentStatus::Dispatched);
    assert_eq!((dispatched.carrier.as_deref(), dispatched.tracking_number.as_deref()), (Some("DHL"), Some("JD01")));
    assert_eq!(dispatched.version, 2);
    assert_eq!(repeated, dispatched);
    assert_eq!(rejection(another).kind, RejectionKind::Conflict);
    assert_eq!(shop.orders.shipments(), vec![(order_id, "DHL".to_owned(), "JD01".to_owned())], "shipped once");
    let shown = shop.call(GetShipment { order_id, viewer: Some(user_id) }).await.expect("shown");
    assert_eq!(shown, dispatched, "a read shows the dispatch");
    shop.stop().await;
}

#[tokio::test]
async fn a_carrier_or_tracking_number_out_of_bounds_is_invalid_and_names_its_field() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    shop.eventually(order_id, |_| true).await;

    let no_carrier = rejection(shop.dispatch(order_id, "  ", "JD01").await);
    let long_number = rejection(shop.dispatch(order_id, "DHL", &"9".repeat(101)).await);

    for (refused, field) in [(no_carrier, "carrier"), (long_number, "tracking_number")] {
        assert_eq!(refused.kind, RejectionKind::Invalid);
        let details = refused.details.expect("the rejection names the field");
        assert_eq!(details["errors"][0]["field"], field);
    }
    assert!(shop.orders.shipments().is_empty(), "orders was not asked");
    shop.stop().await;
}

#[tokio::test]
async fn when_orders_refuses_to_ship_the_refusal_is_answered_and_the_shipment_waits() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    shop.eventually(order_id, |_| true).await;
    let refusal = Rejection::new(RejectionKind::Conflict, "the order was cancelled");
    *shop.orders.refusal.lock().expect("orders lock") = Some(refusal.clone());

    let refused = rejection(shop.dispatch(order_id, "DHL", "JD01").await);

    assert_eq!(refused, refusal);
    let shipment = shop.call(GetShipment { order_id, viewer: None }).await.expect("shown");
    assert_eq!((shipment.status, shipment.version), (ShipmentStatus::Pending, 1));
    shop.stop().await;
}

#[tokio::test]
async fn only_a_dispatched_shipment_is_delivered_and_delivering_again_answers_the_same() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    shop.eventually(order_id, |_| true).await;
    let deliver = DeliverShipment { shipment_id: shipment_id(order_id) };

    let too_early = shop.call(deliver.clone()).await;
    shop.dispatch(order_id, "DHL", "JD01").await.expect("dispatched");
    let delivered = shop.call(deliver.clone()).await.expect("delivered");
    let again = shop.call(deliver).await.expect("delivered again");

    assert_eq!(rejection(too_early).kind, RejectionKind::Conflict);
    assert_eq!((delivered.status, delivered.version), (ShipmentStatus::Delivered, 3));
    assert_eq!(again, delivered);
    let last = shop.shipment_events(order_id).await.pop().expect("an event");
    assert_eq!(last.event_type, "ShipmentDelivered");
    shop.stop().await;
}

#[tokio::test]
async fn a_cancelled_order_cancels_its_waiting_shipment_which_then_never_leaves() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    let cancellation = shop.cancel(user_id, order_id).await;

    let cancelled = shop.eventually(order_id, |shipment| shipment.status == ShipmentStatus::Cancelled).await;
    let dispatched = shop.dispatch(order_id, "DHL", "JD01").await;

    assert_eq!(cancelled.version, 2);
    assert_eq!(rejection(dispatched).kind, RejectionKind::Conflict);
    let events = shop.shipment_events(order_id).await;
    assert_eq!(events[1].correlation_id, cancellation.correlation_id);
    shop.stop().await;
}

#[tokio::test]
async fn an_order_cancelled_before_confirmation_leaves_no_shipment() {
    let shop = Shop::start().await;
    let (user_id, cancelled_order, confirmed_order) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.cancel(user_id, cancelled_order).await;
    // A later event of another order shows when the cancellation has been handled.
    shop.confirm(user_id, confirmed_order).await;
    shop.eventually(confirmed_order, |_| true).await;

    assert!(shop.shipment_events(cancelled_order).await.is_empty());
    shop.stop().await;
}

#[tokio::test]
async fn an_order_event_delivered_again_changes_nothing() {
    let shop = Shop::start().await;
    let (user_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    shop.confirm(user_id, order_id).await;
    shop.cancel(user_id, order_id).await;
    shop.eventually(order_id, |shipment| shipment.status == ShipmentStatus::Cancelled).await;

    let order_events = shop.orders_store.read_stream(&StreamId::new("order", order_id), 0).await.expect("reads");
    let reactions = shipping::orders::OrderReactions::new(shop.shipping_store.clone());
    for event in &order_events {
        reactions.handle(event).await.expect("a redelivery is handled");
    }

    assert_eq!(shop.shipment_events(order_id).await.len(), 2, "created and cancelled, once each");
    shop.stop().await;
}
