//! Recommendations' queries, called over a real in-process bus against in-memory stores;
//! what they answer is learned from orders' and the catalog's events, written to stores
//! published on the bus, with a small catalog served beside it for unknown products.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::catalog::{CatalogEvent, GetProduct, Product};
use contracts::identity::AddressInput;
use contracts::orders::{OrderLine, OrdersEvent};
use contracts::recommendations::{GetBoughtTogether, GetForYou, RecommendationReason, Recommendations};
use contracts::values::Money;
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, Rejection, RejectionKind, Running, call};
use eventshop_core::consumer::EventHandler;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{DomainEvent, EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, StreamId};
use recommendations::learned::{OrderCounter, ProductNoter, counted_stream, product_stream};
use runtime::{InProcessBus, OperationRouter, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

use RecommendationReason::{BoughtTogether, Popular, PopularInCategory};

fn text<T: TryFrom<String>>(value: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(value.to_owned()).expect("valid test value")
}

/// The catalog's GetProduct, for the products the test says exist.
#[derive(Debug, Default)]
struct FakeCatalog {
    products: Mutex<HashSet<Uuid>>,
}

impl FakeCatalog {
    fn get(&self, product_id: Uuid) -> Result<Product, Rejection> {
        if !self.products.lock().expect("catalog lock").contains(&product_id) {
            return Err(Rejection::new(RejectionKind::NotFound, "no such product"));
        }
        Ok(Product {
            id: product_id,
            sku: text("SKU-1"),
            name: text("Thing"),
            description: text(""),
            price: Money::eur(100),
            category: text("things"),
            available: 0,
            rating: 0.0,
            review_count: 0,
            discontinued: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        })
    }
}

struct Shop {
    bus: Arc<InProcessBus>,
    store: Arc<InMemoryEventStore>,
    orders_store: Arc<InMemoryEventStore>,
    catalog_store: Arc<InMemoryEventStore>,
    catalog: Arc<FakeCatalog>,
    fake_catalog: Box<dyn Running>,
    service: Option<RunningService>,
}

impl Shop {
    async fn start() -> Shop {
        let bus = Arc::new(InProcessBus::new());
        let orders_store = Arc::new(InMemoryEventStore::new());
        let catalog_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("orders", orders_store.clone()).await.expect("orders publishes");
        let _published = bus.publish_events("catalog", catalog_store.clone()).await.expect("catalog publishes");
        let catalog = Arc::new(FakeCatalog::default());
        let fake_catalog = {
            let catalog = catalog.clone();
            OperationRouter::new()
                .route::<GetProduct, _, _>(move |request, _context| {
                    let answer = catalog.get(request.product_id);
                    async move { answer }
                })
                .serve(&*bus, "catalog", "a fake catalog")
                .await
                .expect("the fake catalog serves")
        };
        let mut shop = Shop {
            bus,
            store: Arc::new(InMemoryEventStore::new()),
            orders_store,
            catalog_store,
            catalog,
            fake_catalog,
            service: None,
        };
        shop.start_service().await;
        shop
    }

    async fn start_service(&mut self) {
        let context = ServiceContext {
            store: self.store.clone(),
            bus: self.bus.clone(),
            consumers: self.store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        self.service = Some(recommendations::start(context).await.expect("recommendations starts"));
    }

    async fn stop_service(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, CallError> {
        call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn append<E: DomainEvent>(store: &InMemoryEventStore, stream_id: StreamId, event: E) {
        let event = EventCodec::<E>::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
        store.append(&stream_id, ExpectedVersion::Any, vec![event]).await.expect("appends");
    }

    /// A product in the catalog's store (and known to its GetProduct); answers its id.
    async fn product(&self, name: &str, category: &str) -> Uuid {
        let product_id = Uuid::now_v7();
        self.catalog.products.lock().expect("catalog lock").insert(product_id);
        let created = CatalogEvent::ProductCreated {
            product_id,
            sku: text(&format!("SKU-{}", product_id.simple())),
            name: text(name),
            description: text(""),
            price: Money::eur(1500),
            category: text(category),
        };
        Self::append(&self.catalog_store, StreamId::new("product", product_id), created).await;
        product_id
    }

    async fn catalog_event(&self, product_id: Uuid, event: CatalogEvent) {
        Self::append(&self.catalog_store, StreamId::new("product", product_id), event).await;
    }

    async fn order_event(&self, order_id: Uuid, event: OrdersEvent) {
        Self::append(&self.orders_store, StreamId::new("order", order_id), event).await;
    }

    /// A confirmed order of `user_id` with one unit of each product; answers its id.
    async fn confirm(&self, user_id: Uuid, products: &[Uuid]) -> Uuid {
        let order_id = Uuid::now_v7();
        let lines = products
            .iter()
            .map(|product_id| OrderLine {
                product_id: *product_id,
                name: "Thing".to_owned(),
                quantity: 1,
                unit_price: Money::eur(1500),
            })
            .collect();
        let shipping_address: AddressInput = serde_json::from_value(serde_json::json!({
            "name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1", "country": "GB"
        }))
        .expect("a valid address");
        self.order_event(order_id, OrdersEvent::OrderConfirmed { order_id, user_id, shipping_address, lines }).await;
        order_id
    }

    async fn together(&self, product_id: Uuid) -> Recommendations {
        self.call(GetBoughtTogether { product_id, limit: 10 }).await.expect("answered")
    }

    /// Polls until `check` holds of what goes with `product_id`.
    async fn eventually(&self, product_id: Uuid, check: impl Fn(&Recommendations) -> bool) -> Recommendations {
        for _ in 0..100 {
            let answer = self.together(product_id).await;
            if check(&answer) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("what goes with {product_id} never reached the expected answer");
    }

    async fn stop(mut self) {
        self.stop_service().await;
        self.fake_catalog.stop().await;
    }
}

fn listed(answer: &Recommendations) -> Vec<(Uuid, u64, RecommendationReason)> {
    answer.items.iter().map(|item| (item.product_id, item.score, item.reason)).collect()
}

fn rejection<T: std::fmt::Debug>(result: Result<T, CallError>) -> Rejection {
    match result {
        Err(CallError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn products_bought_together_are_recommended_with_their_catalog_details() {
    let shop = Shop::start().await;
    let (mug, beans, kettle) = (
        shop.product("Mug", "kitchen").await,
        shop.product("Coffee Beans", "pantry").await,
        shop.product("Kettle", "kitchen").await,
    );
    shop.confirm(Uuid::now_v7(), &[mug, beans]).await;
    shop.confirm(Uuid::now_v7(), &[mug, beans]).await;
    shop.confirm(Uuid::now_v7(), &[kettle]).await;

    let answer = shop.eventually(mug, |answer| answer.items.len() == 2).await;

    assert_eq!(listed(&answer), [(beans, 2, BoughtTogether), (kettle, 1, PopularInCategory)]);
    let beans_item = &answer.items[0];
    assert_eq!(beans_item.name.as_deref(), Some("Coffee Beans"));
    assert_eq!((beans_item.price, beans_item.category.as_deref()), (Some(Money::eur(1500)), Some("pantry")));
    assert_eq!(listed(&shop.together(beans).await), [(mug, 2, BoughtTogether)]);
    shop.stop().await;
}

#[tokio::test]
async fn cancelled_orders_stop_counting_and_rejected_ones_never_count() {
    let shop = Shop::start().await;
    let (mug, beans, spoon) =
        (shop.product("Mug", "kitchen").await, shop.product("Beans", "pantry").await, shop.product("Spoon", "x").await);
    let (buyer, other) = (Uuid::now_v7(), Uuid::now_v7());
    let cancelled = shop.confirm(buyer, &[mug, beans]).await;
    shop.eventually(mug, |answer| answer.items.len() == 1).await;

    shop.order_event(cancelled, OrdersEvent::OrderCancelled { order_id: cancelled, user_id: buyer }).await;
    // Cancelled and rejected before confirmation: nothing was counted, nothing to take back.
    let never_confirmed = Uuid::now_v7();
    shop.order_event(never_confirmed, OrdersEvent::OrderCancelled { order_id: never_confirmed, user_id: other }).await;
    let rejected = Uuid::now_v7();
    let reason = contracts::orders::RejectionReason::OutOfStock;
    shop.order_event(rejected, OrdersEvent::OrderRejected { order_id: rejected, user_id: other, reason }).await;
    shop.confirm(other, &[mug, spoon]).await;

    let answer = shop.eventually(mug, |answer| listed(answer) == [(spoon, 1, BoughtTogether)]).await;
    assert_eq!(answer.items.len(), 1);
    assert_eq!(shop.store.read_stream(&counted_stream(cancelled), 0).await.expect("reads").len(), 2);
    assert!(shop.store.read_stream(&counted_stream(never_confirmed), 0).await.expect("reads").is_empty());
    assert!(shop.store.read_stream(&counted_stream(rejected), 0).await.expect("reads").is_empty());
    let for_buyer = shop.call(GetForYou { user_id: buyer, limit: 10 }).await.expect("answered");
    assert!(for_buyer.items.iter().all(|item| item.reason == Popular), "nothing bought any more: {for_buyer:?}");
    shop.stop().await;
}

#[tokio::test]
async fn for_you_builds_on_the_users_purchases_and_excludes_them() {
    let shop = Shop::start().await;
    let (mug, beans, kettle, rake) = (
        shop.product("Mug", "kitchen").await,
        shop.product("Beans", "pantry").await,
        shop.product("Kettle", "kitchen").await,
        shop.product("Rake", "garden").await,
    );
    let me = Uuid::now_v7();
    shop.confirm(me, &[mug]).await;
    shop.confirm(Uuid::now_v7(), &[mug, beans]).await;
    shop.confirm(Uuid::now_v7(), &[kettle]).await;
    shop.confirm(Uuid::now_v7(), &[rake]).await;
    let mut answer = Recommendations { items: Vec::new() };
    for _ in 0..100 {
        answer = shop.call(GetForYou { user_id: me, limit: 10 }).await.expect("answered");
        if answer.items.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(listed(&answer), [(beans, 1, BoughtTogether), (kettle, 1, PopularInCategory), (rake, 1, Popular)]);
    assert!(answer.items.iter().all(|item| item.product_id != mug), "never what they bought");
    let limited = shop.call(GetForYou { user_id: me, limit: 1 }).await.expect("answered");
    assert_eq!(limited.items.len(), 1);
    shop.stop().await;
}

#[tokio::test]
async fn discontinued_and_renamed_products_follow_the_catalog() {
    let shop = Shop::start().await;
    let (mug, beans, cup) = (
        shop.product("Mug", "kitchen").await,
        shop.product("Beans", "pantry").await,
        shop.product("Cup", "kitchen").await,
    );
    shop.confirm(Uuid::now_v7(), &[mug, beans, cup]).await;
    shop.eventually(mug, |answer| answer.items.len() == 2).await;

    shop.catalog_event(beans, CatalogEvent::ProductDiscontinued { product_id: beans }).await;
    let renamed = CatalogEvent::ProductUpdated {
        product_id: cup,
        name: text("Tea Cup"),
        description: text(""),
        category: text("tea"),
    };
    shop.catalog_event(cup, renamed).await;
    shop.catalog_event(cup, CatalogEvent::PriceChanged { product_id: cup, price: Money::eur(700) }).await;

    let answer =
        shop.eventually(mug, |answer| answer.items.len() == 1 && answer.items[0].price == Some(Money::eur(700))).await;
    let item = &answer.items[0];
    assert_eq!((item.product_id, item.name.as_deref(), item.category.as_deref()), (cup, Some("Tea Cup"), Some("tea")));
    shop.stop().await;
}

#[tokio::test]
async fn an_unknown_product_is_not_found_and_a_bad_limit_names_its_field() {
    let shop = Shop::start().await;
    let unknown = shop.call(GetBoughtTogether { product_id: Uuid::now_v7(), limit: 5 }).await;
    assert_eq!(rejection(unknown).kind, RejectionKind::NotFound);

    // Known to the catalog, not yet to recommendations: nothing to recommend, no error.
    let fresh = Uuid::now_v7();
    shop.catalog.products.lock().expect("catalog lock").insert(fresh);
    assert!(shop.together(fresh).await.items.is_empty());

    for limit in [0, 101] {
        let refused = rejection(shop.call(GetForYou { user_id: Uuid::now_v7(), limit }).await);
        assert_eq!(refused.kind, RejectionKind::Invalid);
        assert_eq!(refused.details.expect("the field")["errors"][0]["field"], "limit");
    }
    shop.stop().await;
}

#[tokio::test]
async fn a_restarted_service_answers_the_same_from_its_store() {
    let mut shop = Shop::start().await;
    let (mug, beans, kettle) = (
        shop.product("Mug", "kitchen").await,
        shop.product("Beans", "pantry").await,
        shop.product("Kettle", "kitchen").await,
    );
    let me = Uuid::now_v7();
    shop.confirm(me, &[mug, beans]).await;
    shop.confirm(Uuid::now_v7(), &[kettle, beans]).await;
    shop.eventually(beans, |answer| answer.items.len() == 2).await;
    let before = (shop.together(beans).await, shop.call(GetForYou { user_id: me, limit: 10 }).await.expect("answered"));

    shop.stop_service().await;
    shop.start_service().await;
    let after = (shop.together(beans).await, shop.call(GetForYou { user_id: me, limit: 10 }).await.expect("answered"));

    assert_eq!(after, before);
    assert_eq!(listed(&after.1), [(kettle, 1, BoughtTogether)]);
    shop.stop().await;
}

#[tokio::test]
async fn events_delivered_again_change_nothing() {
    let shop = Shop::start().await;
    let (mug, beans) = (shop.product("Mug", "kitchen").await, shop.product("Beans", "pantry").await);
    let order = shop.confirm(Uuid::now_v7(), &[mug, beans]).await;
    shop.eventually(mug, |answer| answer.items.len() == 1).await;

    let counter = OrderCounter::new(shop.store.clone());
    for event in shop.orders_store.read_stream(&StreamId::new("order", order), 0).await.expect("reads") {
        counter.handle(&event).await.expect("a redelivery is handled");
    }
    let noter = ProductNoter::new(shop.store.clone());
    for event in shop.catalog_store.read_stream(&StreamId::new("product", mug), 0).await.expect("reads") {
        noter.handle(&event).await.expect("a redelivery is handled");
    }

    assert_eq!(shop.store.read_stream(&counted_stream(order), 0).await.expect("reads").len(), 1);
    assert_eq!(shop.store.read_stream(&product_stream(mug), 0).await.expect("reads").len(), 1);
    assert_eq!(listed(&shop.together(mug).await), [(beans, 1, BoughtTogether)]);
    shop.stop().await;
}
