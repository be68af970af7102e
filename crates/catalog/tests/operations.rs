//! The catalog's operations, called over a real in-process bus against in-memory stores.

use std::sync::Arc;
use std::time::Duration;

use contracts::catalog::{
    CreateProduct, DiscontinueProduct, GetProduct, GetProducts, ListProducts, Product, ProductSort, UpdateProduct,
};
use contracts::inventory::{InventoryEvent, StockLevels};
use contracts::reviews::ReviewsEvent;
use contracts::values::{Money, PageRequest, Price};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, RejectionKind, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, Position, StreamId};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Shop {
    bus: Arc<InProcessBus>,
    catalog_store: Arc<InMemoryEventStore>,
    inventory_store: Arc<InMemoryEventStore>,
    reviews_store: Arc<InMemoryEventStore>,
    catalog: Option<RunningService>,
}

impl Shop {
    async fn start() -> Shop {
        let bus = Arc::new(InProcessBus::new());
        let inventory_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("inventory", inventory_store.clone()).await.expect("publishes");
        let reviews_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("reviews", reviews_store.clone()).await.expect("publishes");
        let mut shop = Shop {
            bus,
            catalog_store: Arc::new(InMemoryEventStore::new()),
            inventory_store,
            reviews_store,
            catalog: None,
        };
        shop.start_catalog().await;
        shop
    }

    async fn start_catalog(&mut self) {
        let context = ServiceContext {
            store: self.catalog_store.clone(),
            bus: self.bus.clone(),
            consumers: self.catalog_store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        self.catalog = Some(catalog::start(context).await.expect("the catalog starts"));
    }

    async fn stop_catalog(&mut self) {
        if let Some(catalog) = self.catalog.take() {
            catalog.stop().await;
        }
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, CallError> {
        call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn create(&self, product_id: Uuid, sku: &str, name: &str, price: i64) -> Product {
        self.call(create_request(product_id, sku, name, price)).await.expect("created")
    }

    async fn list(&self, request: ListProducts) -> Vec<Uuid> {
        let page = self.call(request).await.expect("listed");
        page.items.iter().map(|product| product.id).collect()
    }

    async fn get(&self, product_id: Uuid) -> Product {
        self.call(GetProduct { product_id }).await.expect("found")
    }

    async fn record_inventory(&self, event: InventoryEvent, product_id: Uuid) {
        let new = EventCodec::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
        self.inventory_store
            .append(&StreamId::new("stock", product_id), ExpectedVersion::Any, vec![new])
            .await
            .expect("inventory appends");
    }

    /// Records a product's rating totals on its rating stream, as reviews would.
    async fn record_rating(&self, product_id: Uuid, review_count: u64, rating_total: u64) {
        let event = ReviewsEvent::ProductRatingChanged { product_id, review_count, rating_total };
        let new = EventCodec::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
        self.reviews_store
            .append(&StreamId::new("rating", product_id), ExpectedVersion::Any, vec![new])
            .await
            .expect("reviews appends");
    }

    /// Polls until the product shows `review_count` reviews.
    async fn wait_for_reviews(&self, product_id: Uuid, review_count: u64) -> Product {
        for _ in 0..100 {
            let product = self.get(product_id).await;
            if product.review_count == review_count {
                return product;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("product {product_id} never showed {review_count} reviews");
    }

    /// Cross-service effects are eventual: polls until the product shows `available`.
    async fn wait_for_available(&self, product_id: Uuid, available: u64) -> Product {
        for _ in 0..100 {
            let product = self.get(product_id).await;
            if product.available == available {
                return product;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("product {product_id} never showed {available} available");
    }
}

fn text<T: TryFrom<String>>(value: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(value.to_owned()).expect("valid test value")
}

fn price(amount: i64) -> Price {
    Price::try_from(Money::eur(amount)).expect("valid test price")
}

fn create_request(product_id: Uuid, sku: &str, name: &str, amount: i64) -> CreateProduct {
    CreateProduct {
        product_id,
        sku: text(sku),
        name: text(name),
        description: text("A fine thing"),
        price: price(amount),
        category: text("things"),
    }
}

fn rejection_kind<T: std::fmt::Debug>(result: Result<T, CallError>) -> (RejectionKind, String) {
    match result {
        Err(CallError::Rejected(rejection)) => (rejection.kind, rejection.message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_product_is_created_read_and_updated_with_its_version() {
    let shop = Shop::start().await;
    let product_id = Uuid::now_v7();
    let created = shop.create(product_id, "lamp-1", "Desk Lamp", 2500).await;
    assert_eq!((created.version, created.sku.as_str(), created.discontinued), (1, "LAMP-1", false));

    let read = shop.get(product_id).await;
    assert_eq!(read, created);

    let renamed = shop
        .call(UpdateProduct {
            product_id,
            name: Some(text("Floor Lamp")),
            expected_version: Some(1),
            ..Default::default()
        })
        .await
        .expect("updated at the current version");
    assert_eq!((renamed.version, renamed.name.as_str()), (2, "Floor Lamp"));
    assert_eq!(shop.get(product_id).await.name.as_str(), "Floor Lamp", "read your writes");

    let stale = shop
        .call(UpdateProduct { product_id, price: Some(price(10)), expected_version: Some(1), ..Default::default() })
        .await;
    assert_eq!(rejection_kind(stale).0, RejectionKind::PreconditionFailed);
    assert_eq!(shop.get(product_id).await.price, Money::eur(2500), "a refused update changes nothing");

    let unchanged =
        shop.call(UpdateProduct { product_id, price: Some(price(2500)), ..Default::default() }).await.expect("no-op");
    assert_eq!(unchanged.version, 2, "nothing changed, no event");

    let absent = shop.call(UpdateProduct { product_id: Uuid::now_v7(), ..Default::default() }).await;
    assert_eq!(rejection_kind(absent).0, RejectionKind::NotFound);
    let absent = shop.call(GetProduct { product_id: Uuid::now_v7() }).await;
    assert_eq!(rejection_kind(absent).0, RejectionKind::NotFound);
}

#[tokio::test]
async fn a_sku_belongs_to_one_product() {
    let shop = Shop::start().await;
    shop.create(Uuid::now_v7(), "shoe-1", "Blue Shoes", 5000).await;
    let duplicate = shop.call(create_request(Uuid::now_v7(), "SHOE-1", "Red Shoes", 4000)).await;
    let (kind, message) = rejection_kind(duplicate);
    assert_eq!(kind, RejectionKind::Conflict);
    assert_eq!(message, "a product with sku SHOE-1 already exists");
    let all = ListProducts::default();
    assert_eq!(shop.list(all).await.len(), 1, "the refused product was not created");
}

#[tokio::test]
async fn creating_again_with_the_same_id_answers_the_same_product_once() {
    let shop = Shop::start().await;
    let product_id = Uuid::now_v7();
    let first = shop.create(product_id, "mug-1", "Mug", 900).await;
    let again = shop.create(product_id, "mug-1", "Mug", 900).await;
    assert_eq!(again, first);
    assert_eq!(shop.list(ListProducts::default()).await, [product_id]);
    let events = shop.catalog_store.read_all(Position::START, 100).await.expect("reads");
    assert_eq!(events.len(), 2, "one ProductCreated and one SkuClaimed: {events:?}");
}

#[tokio::test]
async fn the_listing_shows_each_change_as_soon_as_the_command_answered() {
    let shop = Shop::start().await;
    let (lamp, mug) = (Uuid::now_v7(), Uuid::now_v7());
    shop.create(lamp, "lamp-1", "Desk Lamp", 2500).await;
    assert_eq!(shop.list(ListProducts::default()).await, [lamp]);
    shop.create(mug, "mug-1", "Coffee Mug", 900).await;
    let by_price = || ListProducts { sort: ProductSort::PriceAsc, ..ListProducts::default() };
    assert_eq!(shop.list(by_price()).await, [mug, lamp]);

    shop.call(UpdateProduct { product_id: mug, price: Some(price(9000)), ..Default::default() })
        .await
        .expect("updated");
    assert_eq!(shop.list(by_price()).await, [lamp, mug]);
    let search = ListProducts { query: Some("cof".into()), ..ListProducts::default() };
    assert_eq!(shop.list(search).await, [mug]);

    let discontinued = shop.call(DiscontinueProduct { product_id: mug, expected_version: Some(2) }).await.expect("ok");
    assert!(discontinued.discontinued);
    assert_eq!(shop.list(by_price()).await, [lamp], "a discontinued product leaves the listing");
    let again = shop.call(DiscontinueProduct { product_id: mug, expected_version: Some(2) }).await.expect("again");
    assert_eq!(again, discontinued, "discontinuing again answers the same");
    assert!(shop.get(mug).await.discontinued, "still readable");
    let carts = shop.call(GetProducts { product_ids: vec![mug, Uuid::now_v7(), lamp] }).await.expect("read");
    assert_eq!(
        carts.iter().map(|product| (product.id, product.discontinued)).collect::<Vec<_>>(),
        [(mug, true), (lamp, false)]
    );
    let update = shop.call(UpdateProduct { product_id: mug, name: Some(text("Cup")), ..Default::default() }).await;
    assert_eq!(rejection_kind(update).0, RejectionKind::Conflict);
}

#[tokio::test]
async fn bad_list_requests_are_invalid_and_name_the_field() {
    let shop = Shop::start().await;
    let request = ListProducts {
        page: PageRequest { limit: 20, cursor: Some("bm90IGEgY3Vyc29y".into()) },
        ..ListProducts::default()
    };
    match shop.call(request).await {
        Err(CallError::Rejected(rejection)) => {
            assert_eq!(rejection.kind, RejectionKind::Invalid);
            let details = rejection.details.expect("details");
            assert_eq!(details["errors"][0]["field"], "cursor");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let request = ListProducts { page: PageRequest { limit: 0, cursor: None }, ..ListProducts::default() };
    assert_eq!(rejection_kind(shop.call(request).await).0, RejectionKind::Invalid);
}

#[tokio::test]
async fn stock_from_inventory_reaches_the_listing_once() {
    let mut shop = Shop::start().await;
    let product_id = Uuid::now_v7();
    shop.create(product_id, "lamp-1", "Desk Lamp", 2500).await;
    assert_eq!(shop.get(product_id).await.available, 0);

    let levels = StockLevels { on_hand: 5, reserved: 0, available: 5 };
    let added = InventoryEvent::StockAdded { product_id, restock_id: Uuid::now_v7(), quantity: 5, levels };
    shop.record_inventory(added, product_id).await;
    let product = shop.wait_for_available(product_id, 5).await;
    assert_eq!(product.version, 1, "stock is not a change of the product's stream");
    let listed = shop.call(ListProducts::default()).await.expect("listed");
    assert_eq!(listed.items[0].available, 5);

    // Deliver every inventory event again, as after a crash before the position was saved:
    // the inbox makes the second delivery change nothing.
    shop.stop_catalog().await;
    shop.catalog_store.save_consumer_position(catalog::stock::CONSUMER, Position::START).await.expect("rewinds");
    let levels = StockLevels { on_hand: 5, reserved: 2, available: 3 };
    let reserved = InventoryEvent::StockReserved { product_id, order_id: Uuid::now_v7(), quantity: 2, levels };
    shop.record_inventory(reserved, product_id).await;
    shop.start_catalog().await;
    shop.wait_for_available(product_id, 3).await;
    let listing_stream = catalog::stock::listing_stream(product_id);
    let recorded = shop.catalog_store.read_stream(&listing_stream, 0).await.expect("reads");
    assert_eq!(recorded.len(), 2, "one AvailabilityChanged per inventory event: {recorded:?}");
    let stock_events = shop.inventory_store.read_all(Position::START, 10).await.expect("reads");
    assert_eq!(recorded[0].causation_id, stock_events[0].event_id, "caused by the inventory event");
    assert_eq!(recorded[0].correlation_id, stock_events[0].correlation_id);
    shop.stop_catalog().await;
}

#[tokio::test]
async fn ratings_from_reviews_reach_the_listing_once_and_sort_it() {
    let mut shop = Shop::start().await;
    let (lamp, mug, cup) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    shop.create(lamp, "lamp-1", "Desk Lamp", 2500).await;
    shop.create(mug, "mug-1", "Coffee Mug", 900).await;
    shop.create(cup, "cup-1", "Tea Cup", 500).await;

    shop.record_rating(lamp, 1, 3).await;
    shop.record_rating(mug, 3, 13).await;
    shop.record_rating(cup, 1, 5).await;
    shop.record_rating(cup, 2, 9).await;
    let rated = shop.wait_for_reviews(mug, 3).await;
    shop.wait_for_reviews(cup, 2).await;
    shop.wait_for_reviews(lamp, 1).await;

    assert_eq!((rated.rating, rated.review_count, rated.version), (4.3, 3, 1), "the mean to one decimal");
    let by_rating = || ListProducts { sort: ProductSort::Rating, ..ListProducts::default() };
    assert_eq!(shop.list(by_rating()).await, [cup, mug, lamp]);
    shop.record_rating(lamp, 2, 10).await;
    shop.wait_for_reviews(lamp, 2).await;
    assert_eq!(shop.list(by_rating()).await, [lamp, cup, mug], "5.0 over 4.5, whatever the count");

    // Every reviews event delivered again changes nothing.
    shop.stop_catalog().await;
    shop.catalog_store.save_consumer_position(catalog::ratings::CONSUMER, Position::START).await.expect("rewinds");
    shop.record_rating(mug, 4, 14).await;
    shop.start_catalog().await;
    shop.wait_for_reviews(mug, 4).await;
    let recorded = shop.catalog_store.read_stream(&catalog::stock::listing_stream(mug), 0).await.expect("reads");
    assert_eq!(recorded.len(), 2, "one RatingChanged per reviews event: {recorded:?}");
    assert_eq!(shop.get(mug).await.rating, 3.5);
    shop.stop_catalog().await;
}
