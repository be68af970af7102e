//! The cart's operations, called over a real in-process bus against an in-memory store, with
//! a small catalog and orders service served beside it; and its reaction to orders'
//! confirmations, read from an orders store published on the bus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::cart::{Cart, CartEvent, CartLine, CheckoutCart, ClearCart, GetCart, RemoveCartItem, SetCartItem};
use contracts::catalog::{GetProducts, Product};
use contracts::identity::AddressInput;
use contracts::orders::{GetOrder, Order, OrderAccepted, OrderStatus, OrdersEvent, PlaceOrder};
use contracts::values::{Money, PaymentMethod, Quantity};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, Rejection, RejectionKind, Running, call};
use eventshop_core::consumer::EventHandler;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, StreamId};
use runtime::{InProcessBus, OperationRouter, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The catalog as the cart sees it: products by id, changed by the test at will.
#[derive(Debug, Default)]
struct FakeCatalog {
    products: Mutex<HashMap<Uuid, Product>>,
}

impl FakeCatalog {
    fn put(&self, product: Product) {
        self.products.lock().expect("catalog lock").insert(product.id, product);
    }

    fn get_products(&self, request: &GetProducts) -> Vec<Product> {
        let products = self.products.lock().expect("catalog lock");
        request.product_ids.iter().filter_map(|id| products.get(id).cloned()).collect()
    }
}

/// Orders as the cart sees it: remembers every placement, answers accepted (or a rejection
/// the test sets), and finds placed orders again.
#[derive(Debug, Default)]
struct FakeOrders {
    placed: Mutex<Vec<PlaceOrder>>,
    refusal: Mutex<Option<Rejection>>,
    /// Confirm each order before answering its placement, as a fast saga can.
    confirms_before_answering: std::sync::atomic::AtomicBool,
}

impl FakeOrders {
    fn place(&self, request: PlaceOrder) -> Result<OrderAccepted, Rejection> {
        if let Some(refusal) = self.refusal.lock().expect("orders lock").clone() {
            return Err(refusal);
        }
        let order_id = request.order_id;
        self.placed.lock().expect("orders lock").push(request);
        Ok(OrderAccepted { order_id, status: OrderStatus::Pending })
    }

    fn get(&self, request: &GetOrder) -> Result<Order, Rejection> {
        let placed = self.placed.lock().expect("orders lock");
        let Some(place) = placed.iter().find(|place| place.order_id == request.order_id) else {
            return Err(Rejection::new(RejectionKind::NotFound, "no such order"));
        };
        Ok(Order {
            id: place.order_id,
            user_id: place.user_id,
            status: OrderStatus::Pending,
            reason: None,
            items: Vec::new(),
            total: Money::eur(0),
            shipping_address: place.shipping_address.clone(),
            payment_method: place.payment_method,
            history: Vec::new(),
            created_at: Utc::now(),
            version: 1,
        })
    }

    fn placements(&self) -> Vec<PlaceOrder> {
        self.placed.lock().expect("orders lock").clone()
    }
}

struct Shop {
    bus: Arc<InProcessBus>,
    cart_store: Arc<InMemoryEventStore>,
    orders_store: Arc<InMemoryEventStore>,
    catalog: Arc<FakeCatalog>,
    orders: Arc<FakeOrders>,
    fakes: Vec<Box<dyn Running>>,
    cart: RunningService,
}

impl Shop {
    async fn start() -> Shop {
        let bus = Arc::new(InProcessBus::new());
        let orders_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("orders", orders_store.clone()).await.expect("orders publishes");
        let catalog = Arc::new(FakeCatalog::default());
        let orders = Arc::new(FakeOrders::default());
        let fake_catalog = {
            let catalog = catalog.clone();
            OperationRouter::new()
                .route::<GetProducts, _, _>(move |request, _context| {
                    let products = catalog.get_products(&request);
                    async move { Ok(products) }
                })
                .serve(&*bus, "catalog", "a fake catalog")
                .await
                .expect("the fake catalog serves")
        };
        let fake_orders = {
            let (placing, getting, orders_events) = (orders.clone(), orders.clone(), orders_store.clone());
            OperationRouter::new()
                .route::<PlaceOrder, _, _>(move |request, _context| {
                    let (user_id, order_id) = (request.user_id, request.order_id);
                    let confirm = placing.confirms_before_answering.load(std::sync::atomic::Ordering::SeqCst);
                    let answer = placing.place(request);
                    let orders_events = orders_events.clone();
                    async move {
                        if confirm && answer.is_ok() {
                            append_confirmation(&orders_events, user_id, order_id).await;
                            // Long enough for the cart's consumer to see the confirmation first.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        answer
                    }
                })
                .route::<GetOrder, _, _>(move |request, _context| {
                    let answer = getting.get(&request);
                    async move { answer }
                })
                .serve(&*bus, "orders", "a fake orders service")
                .await
                .expect("the fake orders serves")
        };
        let cart_store = Arc::new(InMemoryEventStore::new());
        let context = ServiceContext {
            store: cart_store.clone(),
            bus: bus.clone(),
            consumers: cart_store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        let cart = cart::start(context).await.expect("the cart starts");
        Shop { bus, cart_store, orders_store, catalog, orders, fakes: vec![fake_catalog, fake_orders], cart }
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, CallError> {
        call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn set(&self, user_id: Uuid, product_id: Uuid, quantity: u32) -> Result<Cart, CallError> {
        let quantity = Quantity::new(quantity).expect("a valid quantity");
        self.call(SetCartItem { user_id, product_id, quantity, expected_version: None }).await
    }

    async fn get(&self, user_id: Uuid) -> Cart {
        self.call(GetCart { user_id }).await.expect("the cart answers")
    }

    async fn checkout(&self, user_id: Uuid, order_id: Uuid) -> Result<OrderAccepted, CallError> {
        let request =
            CheckoutCart { user_id, order_id, shipping_address: address(), payment_method: PaymentMethod::Wallet };
        self.call(request).await
    }

    /// Records orders' confirmation of `order_id` in the orders store, as orders would.
    async fn confirm(&self, user_id: Uuid, order_id: Uuid) -> Metadata {
        append_confirmation(&self.orders_store, user_id, order_id).await
    }

    async fn cart_events(&self, user_id: Uuid) -> Vec<eventshop_core::RecordedEvent> {
        self.cart_store.read_stream(&StreamId::new("cart", user_id), 0).await.expect("the cart stream reads")
    }

    async fn stop(self) {
        self.cart.stop().await;
        for fake in self.fakes {
            fake.stop().await;
        }
    }
}

async fn append_confirmation(orders_store: &InMemoryEventStore, user_id: Uuid, order_id: Uuid) -> Metadata {
    let confirmed = OrdersEvent::OrderConfirmed { order_id, user_id, shipping_address: address(), lines: Vec::new() };
    let metadata = Metadata::new_transaction(Some(user_id));
    let event = EventCodec::<OrdersEvent>::new().encode(&confirmed, metadata).expect("encodes");
    orders_store
        .append(&StreamId::new("order", order_id), ExpectedVersion::Any, vec![event])
        .await
        .expect("orders appends");
    metadata
}

fn address() -> AddressInput {
    serde_json::from_value(serde_json::json!({
        "name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1", "country": "GB"
    }))
    .expect("a valid address")
}

fn product(id: Uuid, name: &str, price: i64) -> Product {
    serde_json::from_value(serde_json::json!({
        "id": id, "sku": format!("SKU-{}", id.simple()), "name": name, "description": "", "category": "things",
        "price": {"amount": price, "currency": "EUR"}, "available": 10, "rating": 0.0, "review_count": 0,
        "discontinued": false, "created_at": Utc::now(), "updated_at": Utc::now(), "version": 1
    }))
    .expect("a valid product")
}

fn line(product_id: Uuid, name: &str, quantity: u32, unit_price: i64, available: bool) -> CartLine {
    let line_total = if available { unit_price * i64::from(quantity) } else { 0 };
    CartLine {
        product_id,
        name: name.to_owned(),
        quantity,
        unit_price: Money::eur(unit_price),
        line_total: Money::eur(line_total),
        available,
    }
}

fn rejection_kind<T: std::fmt::Debug>(result: Result<T, CallError>) -> RejectionKind {
    match result {
        Err(CallError::Rejected(rejection)) => rejection.kind,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Waits until `check` holds of the user's cart, or fails the test after a few seconds.
async fn eventually(shop: &Shop, user_id: Uuid, check: impl Fn(&Cart) -> bool) -> Cart {
    for _ in 0..100 {
        let cart = shop.get(user_id).await;
        if check(&cart) {
            return cart;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cart never reached the expected state: {:?}", shop.get(user_id).await);
}

#[tokio::test]
async fn a_cart_never_touched_is_empty_in_euros_at_version_zero() {
    let shop = Shop::start().await;
    let user_id = Uuid::now_v7();

    let cart = shop.get(user_id).await;

    assert_eq!(cart, Cart { user_id, items: vec![], total: Money::eur(0), version: 0 });
    shop.stop().await;
}

#[tokio::test]
async fn setting_items_adds_or_replaces_and_the_cart_is_priced_from_the_catalog_now() {
    let shop = Shop::start().await;
    let (user_id, socks, hat) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.catalog.put(product(hat, "Hat", 2_000));

    shop.set(user_id, socks, 2).await.expect("socks added");
    shop.set(user_id, hat, 1).await.expect("hat added");
    let replaced = shop.set(user_id, socks, 3).await.expect("socks replaced");

    let expected_lines = vec![line(socks, "Socks", 3, 500, true), line(hat, "Hat", 1, 2_000, true)];
    assert_eq!(replaced.items, expected_lines, "the quantity replaces; lines keep their order");
    assert_eq!(replaced.total, Money::eur(3_500));
    assert_eq!(replaced.version, 3);
    assert_eq!(shop.get(user_id).await, replaced, "a read shows the write");

    shop.catalog.put(product(socks, "Wool socks", 700));
    let repriced = shop.get(user_id).await;
    assert_eq!(repriced.items[0], line(socks, "Wool socks", 3, 700, true));
    assert_eq!(repriced.total, Money::eur(4_100));
    shop.stop().await;
}

#[tokio::test]
async fn setting_the_same_quantity_again_changes_nothing() {
    let shop = Shop::start().await;
    let (user_id, socks) = (Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));

    let first = shop.set(user_id, socks, 2).await.expect("added");
    let again = shop.set(user_id, socks, 2).await.expect("set again");

    assert_eq!(again, first);
    assert_eq!(shop.cart_events(user_id).await.len(), 1);
    shop.stop().await;
}

#[tokio::test]
async fn an_unknown_product_is_not_found_and_a_discontinued_one_cannot_be_added() {
    let shop = Shop::start().await;
    let (user_id, gone) = (Uuid::now_v7(), Uuid::now_v7());

    assert_eq!(rejection_kind(shop.set(user_id, Uuid::now_v7(), 1).await), RejectionKind::NotFound);
    let mut discontinued = product(gone, "Old hat", 100);
    discontinued.discontinued = true;
    shop.catalog.put(discontinued);
    assert_eq!(rejection_kind(shop.set(user_id, gone, 1).await), RejectionKind::Conflict);

    assert!(shop.cart_events(user_id).await.is_empty(), "nothing was recorded");
    shop.stop().await;
}

#[tokio::test]
async fn lines_the_catalog_no_longer_sells_are_shown_unavailable_and_count_nothing() {
    let shop = Shop::start().await;
    let (user_id, socks, hat, scarf) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (id, name, price) in [(socks, "Socks", 500), (hat, "Hat", 2_000), (scarf, "Scarf", 1_500)] {
        shop.catalog.put(product(id, name, price));
        shop.set(user_id, id, 1).await.expect("added");
    }

    let mut discontinued = product(hat, "Hat", 2_000);
    discontinued.discontinued = true;
    shop.catalog.put(discontinued);
    shop.catalog.products.lock().expect("catalog lock").remove(&scarf);
    let cart = shop.get(user_id).await;

    assert_eq!(
        cart.items,
        vec![line(socks, "Socks", 1, 500, true), line(hat, "Hat", 1, 2_000, false), line(scarf, "", 1, 0, false)]
    );
    assert_eq!(cart.total, Money::eur(500));
    shop.stop().await;
}

#[tokio::test]
async fn a_stale_expected_version_is_a_failed_precondition() {
    let shop = Shop::start().await;
    let (user_id, socks) = (Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.set(user_id, socks, 1).await.expect("added");
    let quantity = Quantity::new(4).expect("a valid quantity");

    let stale = shop.call(SetCartItem { user_id, product_id: socks, quantity, expected_version: Some(0) }).await;
    let stale_clear = shop.call(ClearCart { user_id, expected_version: Some(7) }).await;
    let stale_remove = shop.call(RemoveCartItem { user_id, product_id: socks, expected_version: Some(2) }).await;
    let current = shop.call(SetCartItem { user_id, product_id: socks, quantity, expected_version: Some(1) }).await;

    assert_eq!(rejection_kind(stale), RejectionKind::PreconditionFailed);
    assert_eq!(rejection_kind(stale_clear), RejectionKind::PreconditionFailed);
    assert_eq!(rejection_kind(stale_remove), RejectionKind::PreconditionFailed);
    assert_eq!(current.expect("the current version is accepted").items, vec![line(socks, "Socks", 4, 500, true)]);
    shop.stop().await;
}

#[tokio::test]
async fn removing_a_line_and_clearing_the_cart() {
    let shop = Shop::start().await;
    let (user_id, socks, hat) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.catalog.put(product(hat, "Hat", 2_000));
    shop.set(user_id, socks, 1).await.expect("added");
    shop.set(user_id, hat, 1).await.expect("added");

    let removed = shop.call(RemoveCartItem { user_id, product_id: socks, expected_version: None }).await;
    let removed_again = shop.call(RemoveCartItem { user_id, product_id: socks, expected_version: None }).await;
    let cleared = shop.call(ClearCart { user_id, expected_version: None }).await.expect("cleared");

    assert_eq!(removed.expect("removed").items, vec![line(hat, "Hat", 1, 2_000, true)]);
    assert_eq!(rejection_kind(removed_again), RejectionKind::NotFound);
    assert_eq!(cleared, Cart { user_id, items: vec![], total: Money::eur(0), version: 4 });
    shop.stop().await;
}

#[tokio::test]
async fn a_cart_holds_at_most_fifty_products() {
    let shop = Shop::start().await;
    let user_id = Uuid::now_v7();
    for _ in 0..50 {
        let id = Uuid::now_v7();
        shop.catalog.put(product(id, "Thing", 100));
        shop.set(user_id, id, 1).await.expect("added");
    }
    let one_too_many = Uuid::now_v7();
    shop.catalog.put(product(one_too_many, "Thing", 100));

    assert_eq!(rejection_kind(shop.set(user_id, one_too_many, 1).await), RejectionKind::Conflict);
    assert_eq!(shop.get(user_id).await.items.len(), 50);
    shop.stop().await;
}

#[tokio::test]
async fn checking_out_places_an_order_with_the_available_lines_once() {
    let shop = Shop::start().await;
    let (user_id, order_id, socks, hat) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.catalog.put(product(hat, "Hat", 2_000));
    shop.set(user_id, socks, 2).await.expect("added");
    shop.set(user_id, hat, 1).await.expect("added");
    let mut discontinued = product(hat, "Hat", 2_000);
    discontinued.discontinued = true;
    shop.catalog.put(discontinued);

    let accepted = shop.checkout(user_id, order_id).await.expect("checked out");
    let repeated = shop.checkout(user_id, order_id).await.expect("checked out again");

    assert_eq!(accepted, OrderAccepted { order_id, status: OrderStatus::Pending });
    assert_eq!(repeated, accepted, "a repeat answers as the first time");
    let placements = shop.orders.placements();
    assert_eq!(placements.len(), 1, "the order is placed once");
    let items: Vec<(Uuid, u32)> =
        placements[0].items.iter().map(|item| (item.product_id, item.quantity.get())).collect();
    assert_eq!(items, vec![(socks, 2)], "only what the catalog still sells");
    assert_eq!((placements[0].user_id, placements[0].payment_method), (user_id, PaymentMethod::Wallet));
    let checkouts: Vec<CartEvent> = shop
        .cart_events(user_id)
        .await
        .iter()
        .filter(|event| event.event_type == "CartCheckedOut")
        .map(|event| EventCodec::<CartEvent>::new().decode(event).expect("decodes"))
        .collect();
    assert_eq!(checkouts, vec![CartEvent::CartCheckedOut { user_id, order_id }]);
    assert_eq!(shop.get(user_id).await.items.len(), 2, "the cart stays until the order is confirmed");
    shop.stop().await;
}

#[tokio::test]
async fn an_empty_cart_or_one_with_nothing_for_sale_cannot_be_checked_out() {
    let shop = Shop::start().await;
    let (user_id, hat) = (Uuid::now_v7(), Uuid::now_v7());

    let empty = shop.checkout(user_id, Uuid::now_v7()).await;
    shop.catalog.put(product(hat, "Hat", 2_000));
    shop.set(user_id, hat, 1).await.expect("added");
    shop.catalog.products.lock().expect("catalog lock").remove(&hat);
    let nothing_for_sale = shop.checkout(user_id, Uuid::now_v7()).await;

    assert_eq!(rejection_kind(empty), RejectionKind::Conflict);
    assert_eq!(rejection_kind(nothing_for_sale), RejectionKind::Conflict);
    assert!(shop.orders.placements().is_empty());
    shop.stop().await;
}

#[tokio::test]
async fn a_refused_placement_is_answered_as_orders_refused_it_and_a_retry_places_the_order() {
    let shop = Shop::start().await;
    let (user_id, socks) = (Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.set(user_id, socks, 1).await.expect("added");
    let refusal = Rejection::new(RejectionKind::Invalid, "product gone")
        .with_details(serde_json::json!({ "errors": [{ "field": "items[0].product_id", "message": "gone" }] }));
    *shop.orders.refusal.lock().expect("orders lock") = Some(refusal.clone());

    let order_id = Uuid::now_v7();
    let result = shop.checkout(user_id, order_id).await;

    match result {
        Err(CallError::Rejected(rejection)) => assert_eq!(rejection, refusal),
        other => panic!("expected orders' rejection, got {other:?}"),
    }
    assert_eq!(shop.get(user_id).await.items.len(), 1, "the cart keeps its items");
    // Orders takes it on the second try, with the same order id.
    *shop.orders.refusal.lock().expect("orders lock") = None;
    let accepted = shop.checkout(user_id, order_id).await.expect("placed on retry");
    assert_eq!(accepted.order_id, order_id);
    assert_eq!(shop.orders.placements().len(), 1);
    shop.stop().await;
}

#[tokio::test]
async fn the_confirmation_of_the_checked_out_order_clears_the_cart_in_its_transaction() {
    let shop = Shop::start().await;
    let (user_id, order_id, socks) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.set(user_id, socks, 1).await.expect("added");
    shop.checkout(user_id, order_id).await.expect("checked out");

    shop.confirm(user_id, Uuid::now_v7()).await;
    let confirmation = shop.confirm(user_id, order_id).await;

    let cart = eventually(&shop, user_id, |cart| cart.items.is_empty()).await;
    assert_eq!(cart.version, 3, "added, checked out, cleared: the other order changed nothing");
    let events = shop.cart_events(user_id).await;
    let cleared = events.last().expect("an event");
    assert_eq!(cleared.event_type, "CartCleared");
    assert_eq!(cleared.correlation_id, confirmation.correlation_id, "cleared within the order's transaction");
    shop.stop().await;
}

#[tokio::test]
async fn a_confirmation_that_arrives_before_the_checkout_answers_still_clears_the_cart() {
    let shop = Shop::start().await;
    let (user_id, order_id, socks) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.set(user_id, socks, 1).await.expect("added");
    shop.orders.confirms_before_answering.store(true, std::sync::atomic::Ordering::SeqCst);

    shop.checkout(user_id, order_id).await.expect("checked out");

    eventually(&shop, user_id, |cart| cart.items.is_empty()).await;
    shop.stop().await;
}

#[tokio::test]
async fn a_confirmation_delivered_again_changes_nothing() {
    let shop = Shop::start().await;
    let (user_id, order_id, socks) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.catalog.put(product(socks, "Socks", 500));
    shop.set(user_id, socks, 1).await.expect("added");
    shop.checkout(user_id, order_id).await.expect("checked out");
    shop.confirm(user_id, order_id).await;
    eventually(&shop, user_id, |cart| cart.items.is_empty()).await;
    shop.set(user_id, socks, 2).await.expect("the user shops on");

    let confirmed = shop.orders_store.read_stream(&StreamId::new("order", order_id), 0).await.expect("reads");
    let reactions = cart::orders::OrderReactions::new(shop.cart_store.clone());
    reactions.handle(&confirmed[0]).await.expect("a redelivery is handled");

    assert_eq!(shop.get(user_id).await.items, vec![line(socks, "Socks", 2, 500, true)]);
    shop.stop().await;
}
