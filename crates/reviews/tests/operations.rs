//! Reviews' operations, called over a real in-process bus against in-memory stores, with a
//! small catalog served beside it; and its reactions to orders' events, read from an orders
//! store published on the bus.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use contracts::catalog::{GetProduct, Product};
use contracts::identity::AddressInput;
use contracts::orders::{OrderLine, OrdersEvent};
use contracts::reviews::{
    GetReview, ListReviews, PostReview, ProductReviews, Rating, RemoveReview, Review, ReviewText, ReviewTitle,
    ReviewsEvent,
};
use contracts::values::{Money, PageRequest};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, Rejection, RejectionKind, Running, call};
use eventshop_core::consumer::EventHandler;
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, StreamId};
use futures::future::join_all;
use runtime::{InProcessBus, OperationRouter, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The catalog as reviews sees it: the products it knows, and how often it was asked.
#[derive(Debug, Default)]
struct FakeCatalog {
    products: Mutex<HashSet<Uuid>>,
    asked: Mutex<u32>,
}

impl FakeCatalog {
    fn get(&self, product_id: Uuid) -> Result<Product, Rejection> {
        *self.asked.lock().expect("catalog lock") += 1;
        if !self.products.lock().expect("catalog lock").contains(&product_id) {
            return Err(Rejection::new(RejectionKind::NotFound, "no such product"));
        }
        Ok(Product {
            id: product_id,
            sku: text("MUG-1"),
            name: text("Mug"),
            description: text("A mug"),
            price: Money::eur(1000),
            category: text("kitchen"),
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
    reviews_store: Arc<InMemoryEventStore>,
    orders_store: Arc<InMemoryEventStore>,
    catalog: Arc<FakeCatalog>,
    fake_catalog: Box<dyn Running>,
    reviews: Option<RunningService>,
}

impl Shop {
    async fn start() -> Shop {
        let bus = Arc::new(InProcessBus::new());
        let orders_store = Arc::new(InMemoryEventStore::new());
        let _published = bus.publish_events("orders", orders_store.clone()).await.expect("orders publishes");
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
            reviews_store: Arc::new(InMemoryEventStore::new()),
            orders_store,
            catalog,
            fake_catalog,
            reviews: None,
        };
        shop.start_reviews().await;
        shop
    }

    async fn start_reviews(&mut self) {
        let context = ServiceContext {
            store: self.reviews_store.clone(),
            bus: self.bus.clone(),
            consumers: self.reviews_store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        self.reviews = Some(reviews::start(context).await.expect("reviews starts"));
    }

    async fn stop_reviews(&mut self) {
        if let Some(reviews) = self.reviews.take() {
            reviews.stop().await;
        }
    }

    /// A product the catalog knows.
    fn product(&self) -> Uuid {
        let product_id = Uuid::now_v7();
        self.catalog.products.lock().expect("catalog lock").insert(product_id);
        product_id
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, CallError> {
        call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    async fn post(&self, product_id: Uuid, user_id: Uuid, stars: u8) -> Result<Review, CallError> {
        self.call(post_request(Uuid::now_v7(), product_id, user_id, stars)).await
    }

    async fn list(&self, product_id: Uuid) -> ProductReviews {
        let request = ListReviews { product_id, page: PageRequest { limit: 100, cursor: None } };
        self.call(request).await.expect("listed")
    }

    async fn remove(&self, product_id: Uuid, review_id: Uuid, viewer: Option<Uuid>) -> Result<(), CallError> {
        self.call(RemoveReview { product_id, review_id, viewer, expected_version: None }).await
    }

    /// Records an orders event on the order's stream, as orders would.
    async fn record(&self, order_id: Uuid, event: OrdersEvent) {
        let event = EventCodec::<OrdersEvent>::new().encode(&event, Metadata::new_transaction(None)).expect("encodes");
        self.orders_store
            .append(&StreamId::new("order", order_id), ExpectedVersion::Any, vec![event])
            .await
            .expect("orders appends");
    }

    /// An order of `user_id` for `products`, confirmed; answers its id.
    async fn confirm(&self, user_id: Uuid, products: &[Uuid]) -> Uuid {
        let order_id = Uuid::now_v7();
        let lines = products
            .iter()
            .map(|product_id| OrderLine {
                product_id: *product_id,
                name: "Mug".to_owned(),
                quantity: 1,
                unit_price: Money::eur(1000),
            })
            .collect();
        let confirmed = OrdersEvent::OrderConfirmed { order_id, user_id, shipping_address: address(), lines };
        self.record(order_id, confirmed).await;
        order_id
    }

    async fn deliver(&self, user_id: Uuid, order_id: Uuid) {
        self.record(order_id, OrdersEvent::OrderDelivered { order_id, user_id }).await;
    }

    /// The review once `check` holds of it; fails the test after a few seconds.
    async fn eventually(&self, product_id: Uuid, review_id: Uuid, check: impl Fn(&Review) -> bool) -> Review {
        for _ in 0..100 {
            if let Ok(review) = self.call(GetReview { product_id, review_id }).await
                && check(&review)
            {
                return review;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("review {review_id} never reached the expected state");
    }

    async fn rating_events(&self, product_id: Uuid) -> Vec<ReviewsEvent> {
        let events = self.reviews_store.read_stream(&StreamId::new("rating", product_id), 0).await.expect("reads");
        let codec = EventCodec::<ReviewsEvent>::new();
        events.iter().map(|event| codec.decode(event).expect("decodes")).collect()
    }

    async fn stop(mut self) {
        self.stop_reviews().await;
        self.fake_catalog.stop().await;
    }
}

fn text<T: TryFrom<String>>(value: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(value.to_owned()).expect("valid test value")
}

fn address() -> AddressInput {
    serde_json::from_value(serde_json::json!({
        "name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1", "country": "GB"
    }))
    .expect("a valid address")
}

fn post_request(review_id: Uuid, product_id: Uuid, user_id: Uuid, stars: u8) -> PostReview {
    PostReview {
        review_id,
        product_id,
        user_id,
        rating: Rating::new(stars).expect("a valid rating"),
        title: text::<ReviewTitle>(&format!("{stars} stars")),
        body: text::<ReviewText>("Holds coffee.\nWashes well."),
    }
}

fn rejection<T: std::fmt::Debug>(result: Result<T, CallError>) -> Rejection {
    match result {
        Err(CallError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_review_is_posted_read_and_listed_and_a_retry_answers_the_same() {
    let shop = Shop::start().await;
    let (product_id, user_id, review_id) = (shop.product(), Uuid::now_v7(), Uuid::now_v7());

    let posted = shop.call(post_request(review_id, product_id, user_id, 4)).await.expect("posted");
    let again = shop.call(post_request(review_id, product_id, user_id, 4)).await.expect("posted again");
    let read = shop.call(GetReview { product_id, review_id }).await.expect("read");
    let listed = shop.list(product_id).await;

    assert_eq!(
        (posted.id, posted.product_id, posted.user_id, posted.rating.get()),
        (review_id, product_id, user_id, 4)
    );
    assert_eq!(posted.body.as_str(), "Holds coffee.\nWashes well.");
    assert!(!posted.verified_purchase);
    assert_eq!(posted.version, 1);
    assert_eq!(again, posted);
    assert_eq!(read, posted);
    assert_eq!(listed.items, vec![posted]);
    assert_eq!((listed.rating, listed.review_count), (4.0, 1));
    let rated = shop.rating_events(product_id).await;
    assert_eq!(rated, vec![ReviewsEvent::ProductRatingChanged { product_id, review_count: 1, rating_total: 4 }]);
    shop.stop().await;
}

#[tokio::test]
async fn one_review_per_user_and_product() {
    let shop = Shop::start().await;
    let (product_id, other_product, user_id) = (shop.product(), shop.product(), Uuid::now_v7());

    let first = shop.post(product_id, user_id, 5).await.expect("posted");
    let second = shop.post(product_id, user_id, 1).await;
    let elsewhere = shop.post(other_product, user_id, 1).await;
    let someone_else = shop.post(product_id, Uuid::now_v7(), 2).await;

    let refused = rejection(second);
    assert_eq!(refused.kind, RejectionKind::Conflict);
    assert!(refused.message.contains(&first.id.to_string()), "{}", refused.message);
    assert!(elsewhere.is_ok(), "another product may be reviewed");
    assert!(someone_else.is_ok(), "another user may review it");
    let listed = shop.list(product_id).await;
    assert_eq!((listed.review_count, listed.rating), (2, 3.5));
    shop.stop().await;
}

#[tokio::test]
async fn an_unknown_product_cannot_be_reviewed_and_has_no_reviews_to_list() {
    let shop = Shop::start().await;
    let (unknown, known) = (Uuid::now_v7(), shop.product());

    let posted = shop.post(unknown, Uuid::now_v7(), 3).await;
    let listed = shop.call(ListReviews { product_id: unknown, page: PageRequest::default() }).await;
    let empty = shop.list(known).await;

    assert_eq!(rejection(posted).kind, RejectionKind::NotFound);
    assert_eq!(rejection(listed).kind, RejectionKind::NotFound);
    assert!(empty.items.is_empty());
    assert_eq!((empty.rating, empty.review_count, empty.next_cursor), (0.0, 0, None));
    assert!(shop.rating_events(unknown).await.is_empty());
    shop.stop().await;
}

#[tokio::test]
async fn reviews_page_newest_first_and_a_bad_page_names_its_field() {
    let shop = Shop::start().await;
    let product_id = shop.product();
    let mut posted = Vec::new();
    for stars in 1..=5 {
        posted.push(shop.post(product_id, Uuid::now_v7(), stars).await.expect("posted").id);
    }
    let asked_before = *shop.catalog.asked.lock().expect("catalog lock");

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = shop.call(ListReviews { product_id, page: PageRequest { limit: 2, cursor } }).await.expect("a page");
        seen.extend(page.items.iter().map(|review| review.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let bad = shop.call(ListReviews { product_id, page: PageRequest { limit: 2, cursor: Some("x".into()) } }).await;

    posted.reverse();
    assert_eq!(seen, posted);
    assert_eq!(*shop.catalog.asked.lock().expect("catalog lock"), asked_before, "a reviewed product is known");
    let bad = rejection(bad);
    assert_eq!(bad.kind, RejectionKind::Invalid);
    assert_eq!(bad.details.expect("the field")["errors"][0]["field"], "cursor");
    shop.stop().await;
}

#[tokio::test]
async fn the_author_or_an_administrator_removes_a_review_and_the_author_may_post_again() {
    let shop = Shop::start().await;
    let (product_id, author, stranger) = (shop.product(), Uuid::now_v7(), Uuid::now_v7());
    let review = shop.post(product_id, author, 2).await.expect("posted");
    let other = shop.post(product_id, stranger, 4).await.expect("posted");

    let by_stranger = shop.remove(product_id, review.id, Some(stranger)).await;
    let wrong_product = shop.remove(shop.product(), review.id, Some(author)).await;
    let stale = shop
        .call(RemoveReview { product_id, review_id: review.id, viewer: Some(author), expected_version: Some(7) })
        .await;
    shop.remove(product_id, review.id, Some(author)).await.expect("removed by its author");
    shop.remove(product_id, review.id, Some(author)).await.expect("removing again changes nothing");
    let after_removal = shop.list(product_id).await;
    let reposted = shop.post(product_id, author, 5).await.expect("posted anew");
    let removed_again = shop.call(post_request(review.id, product_id, author, 2)).await;
    shop.remove(product_id, other.id, None).await.expect("removed by an administrator");
    let at_last = shop.list(product_id).await;

    assert_eq!(rejection(by_stranger).kind, RejectionKind::Forbidden);
    assert_eq!(rejection(wrong_product).kind, RejectionKind::NotFound);
    assert_eq!(rejection(stale).kind, RejectionKind::PreconditionFailed);
    assert_eq!(after_removal.items, vec![other.clone()]);
    assert_eq!((after_removal.rating, after_removal.review_count), (4.0, 1));
    assert_eq!(
        rejection(shop.call(GetReview { product_id, review_id: review.id }).await).kind,
        RejectionKind::NotFound
    );
    assert_ne!(reposted.id, review.id);
    assert_eq!(rejection(removed_again).kind, RejectionKind::Conflict, "a removed review stays removed");
    assert_eq!(at_last.items, vec![reposted]);
    assert_eq!((at_last.rating, at_last.review_count), (5.0, 1));
    let unknown = shop.remove(product_id, Uuid::now_v7(), None).await;
    assert_eq!(rejection(unknown).kind, RejectionKind::NotFound);
    shop.stop().await;
}

#[tokio::test]
async fn a_review_is_verified_once_its_author_received_the_product() {
    let shop = Shop::start().await;
    let (product_id, buyer, other_buyer, browser) = (shop.product(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let early = shop.post(product_id, buyer, 4).await.expect("posted before delivery");
    let order = shop.confirm(buyer, &[product_id, shop.product()]).await;
    let undelivered = shop.confirm(other_buyer, &[product_id]).await;

    // Confirmed is not received.
    let unverified = shop.post(product_id, other_buyer, 3).await.expect("posted");
    shop.deliver(buyer, order).await;
    let verified = shop.eventually(product_id, early.id, |review| review.verified_purchase).await;
    let late = shop.post(product_id, browser, 5).await.expect("posted by someone who bought nothing");

    assert!(verified.verified_purchase, "a review posted before delivery becomes verified");
    assert!(!shop.call(GetReview { product_id, review_id: unverified.id }).await.expect("read").verified_purchase);
    assert!(!late.verified_purchase);
    // A delivery of another user's order verifies only theirs.
    shop.deliver(other_buyer, undelivered).await;
    shop.eventually(product_id, unverified.id, |review| review.verified_purchase).await;
    let after = shop.post(shop.product(), buyer, 1).await.expect("posted");
    assert!(!after.verified_purchase, "the badge is per product");
    shop.stop().await;
}

#[tokio::test]
async fn a_review_posted_after_delivery_is_verified_at_once() {
    let shop = Shop::start().await;
    let (product_id, probe_product, buyer) = (shop.product(), shop.product(), Uuid::now_v7());
    let order = shop.confirm(buyer, &[probe_product, product_id]).await;
    shop.deliver(buyer, order).await;
    // A review of the order's other product shows when reviews has recorded the delivery.
    let probe = shop.post(probe_product, buyer, 3).await.expect("posted");
    shop.eventually(probe_product, probe.id, |review| review.verified_purchase).await;

    let review = shop.post(product_id, buyer, 5).await.expect("posted");

    assert!(review.verified_purchase);
    shop.stop().await;
}

#[tokio::test]
async fn concurrent_reviews_of_one_product_add_up_exactly() {
    let shop = Shop::start().await;
    let product_id = shop.product();
    let users: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();

    let posted = join_all(users.iter().enumerate().map(|(index, user_id)| {
        let stars = (index % 5) as u8 + 1;
        shop.post(product_id, *user_id, stars)
    }))
    .await;

    assert!(posted.iter().all(Result::is_ok), "{posted:?}");
    let total: u64 = (0..12).map(|index| (index % 5) as u64 + 1).sum();
    let listed = shop.list(product_id).await;
    assert_eq!(listed.review_count, 12);
    assert_eq!(listed.items.len(), 12);
    let last = shop.rating_events(product_id).await.pop().expect("a rating");
    assert_eq!(last, ReviewsEvent::ProductRatingChanged { product_id, review_count: 12, rating_total: total });
    shop.stop().await;
}

#[tokio::test]
async fn a_restarted_service_answers_the_same_from_its_store() {
    let mut shop = Shop::start().await;
    let (product_id, buyer, browser) = (shop.product(), Uuid::now_v7(), Uuid::now_v7());
    let order = shop.confirm(buyer, &[product_id]).await;
    shop.deliver(buyer, order).await;
    let review = shop.post(product_id, buyer, 5).await.expect("posted");
    shop.eventually(product_id, review.id, |review| review.verified_purchase).await;
    let removed = shop.post(product_id, browser, 1).await.expect("posted");
    shop.remove(product_id, removed.id, None).await.expect("removed");
    let before = shop.list(product_id).await;

    shop.stop_reviews().await;
    shop.start_reviews().await;
    let after = shop.list(product_id).await;

    assert_eq!(after, before);
    assert!(after.items[0].verified_purchase);
    assert_eq!((after.review_count, after.rating), (1, 5.0));
    shop.stop().await;
}

#[tokio::test]
async fn an_orders_event_delivered_again_changes_nothing() {
    let shop = Shop::start().await;
    let (product_id, buyer) = (shop.product(), Uuid::now_v7());
    let order = shop.confirm(buyer, &[product_id]).await;
    shop.deliver(buyer, order).await;
    let review = shop.post(product_id, buyer, 5).await.expect("posted");
    shop.eventually(product_id, review.id, |review| review.verified_purchase).await;

    let order_events = shop.orders_store.read_stream(&StreamId::new("order", order), 0).await.expect("reads");
    let recorder = reviews::purchases::PurchaseRecorder::new(shop.reviews_store.clone());
    for event in &order_events {
        recorder.handle(event).await.expect("a redelivery is handled");
    }

    let stream = reviews::purchases::purchase_stream(order);
    assert_eq!(shop.reviews_store.read_stream(&stream, 0).await.expect("reads").len(), 2, "recorded once each");
    shop.stop().await;
}
