//! The harness of the orders service's tests: the service on a real in-process bus with
//! in-memory stores, a fake catalog that prices products, and fake inventory, payments
//! and shipping stores whose events the saga consumes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::catalog::{GetProducts, Product};
use contracts::identity::AddressInput;
use contracts::inventory::InventoryEvent;
use contracts::orders::{GetOrder, Order, OrderItemRequest, OrderStatus, PlaceOrder};
use contracts::payments::PaymentsEvent;
use contracts::shipping::ShippingEvent;
use contracts::values::{CardToken, Money, PaymentMethod, Quantity};
use eventshop_core::bus::{CallError, EventBus, MessageContext, Operation, Rejection, RejectionKind, call};
use eventshop_core::settings::LocalSettings;
use eventshop_core::{
    DomainEvent, EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, RecordedEvent, StreamId,
};
use runtime::{InProcessBus, OperationRouter, RunningService, ServiceContext};
use uuid::Uuid;

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A product the fake catalog knows.
pub fn product(name: &str, price: i64, discontinued: bool) -> Product {
    let id = Uuid::now_v7();
    Product {
        id,
        sku: format!("SKU-{}", id.simple()).try_into().expect("a valid sku"),
        name: name.to_owned().try_into().expect("a valid name"),
        description: String::new().try_into().expect("a valid description"),
        price: Money::eur(price),
        category: "home".to_owned().try_into().expect("a valid category"),
        available: 10,
        rating: 0.0,
        review_count: 0,
        discontinued,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        version: 1,
    }
}

pub fn address() -> AddressInput {
    serde_json::from_value(serde_json::json!({
        "name": "Ada Lovelace",
        "line1": "12 Analytical Row",
        "city": "London",
        "postal_code": "N1 7AA",
        "country": "GB",
    }))
    .expect("a valid address")
}

pub fn item(product_id: Uuid, quantity: u32) -> OrderItemRequest {
    OrderItemRequest { product_id, quantity: Quantity::new(quantity).expect("a valid quantity") }
}

pub fn place(user_id: Uuid, items: Vec<OrderItemRequest>) -> PlaceOrder {
    PlaceOrder {
        order_id: Uuid::now_v7(),
        user_id,
        items,
        shipping_address: address(),
        payment_method: PaymentMethod::Card { token: CardToken::Visa },
    }
}

/// The catalog as orders sees it: GetProducts over the bus, from a table the test edits.
#[derive(Debug, Clone, Default)]
pub struct FakeCatalog {
    products: Arc<Mutex<HashMap<Uuid, Product>>>,
}

impl FakeCatalog {
    pub fn add(&self, product: Product) -> Product {
        self.products.lock().expect("catalog lock").insert(product.id, product.clone());
        product
    }

    async fn serve(&self, bus: &InProcessBus) -> Box<dyn eventshop_core::bus::Running> {
        let products = self.products.clone();
        OperationRouter::new()
            .route::<GetProducts, _, _>(move |request, _context| {
                let products = products.clone();
                async move {
                    let products = products.lock().map_err(|_| Rejection::new(RejectionKind::Internal, "poisoned"))?;
                    Ok(request.product_ids.iter().filter_map(|id| products.get(id).cloned()).collect())
                }
            })
            .serve(bus, contracts::catalog::SERVICE, "a fake catalog")
            .await
            .expect("the fake catalog serves")
    }
}

pub struct Harness {
    pub bus: Arc<InProcessBus>,
    pub store: Arc<InMemoryEventStore>,
    pub inventory: Arc<InMemoryEventStore>,
    pub payments: Arc<InMemoryEventStore>,
    pub shipping: Arc<InMemoryEventStore>,
    pub settings: Arc<LocalSettings>,
    pub catalog: FakeCatalog,
    catalog_server: Option<Box<dyn eventshop_core::bus::Running>>,
    service: Option<RunningService>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with_settings(LocalSettings::new([])).await
    }

    pub async fn start_with_settings(settings: LocalSettings) -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let (inventory, payments, shipping) = (
            Arc::new(InMemoryEventStore::new()),
            Arc::new(InMemoryEventStore::new()),
            Arc::new(InMemoryEventStore::new()),
        );
        bus.publish_events(contracts::inventory::SERVICE, inventory.clone()).await.expect("publishes");
        bus.publish_events(contracts::payments::SERVICE, payments.clone()).await.expect("publishes");
        bus.publish_events(contracts::shipping::SERVICE, shipping.clone()).await.expect("publishes");
        let catalog = FakeCatalog::default();
        let catalog_server = Some(catalog.serve(&bus).await);
        let mut harness = Harness {
            bus,
            store: Arc::new(InMemoryEventStore::new()),
            inventory,
            payments,
            shipping,
            settings: Arc::new(settings),
            catalog,
            catalog_server,
            service: None,
        };
        harness.start_service().await;
        harness
    }

    /// Starts orders (again) on the same stores and settings, as a restarted process.
    pub async fn start_service(&mut self) {
        let context = ServiceContext {
            store: self.store.clone(),
            bus: self.bus.clone(),
            consumers: self.store.clone(),
            settings: self.settings.clone(),
        };
        self.service = Some(orders::start(context).await.expect("orders starts"));
    }

    pub async fn stop_service(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }

    pub async fn call<O: Operation>(&self, operation: &O) -> Result<O::Reply, CallError> {
        call(&*self.bus, operation, MessageContext::new_transaction(None), TIMEOUT).await
    }

    pub async fn rejection<O: Operation>(&self, operation: &O) -> Rejection
    where
        O::Reply: std::fmt::Debug,
    {
        match self.call(operation).await {
            Err(CallError::Rejected(rejection)) => rejection,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    pub async fn get(&self, order_id: Uuid) -> Order {
        self.call(&GetOrder { order_id, viewer: None }).await.expect("the order answers")
    }

    /// The order once it has reached `status`, or a failed test after a few seconds.
    pub async fn wait_for_status(&self, order_id: Uuid, status: OrderStatus) -> Order {
        eventually(|| async {
            let order = self.get(order_id).await;
            (order.status == status).then_some(order)
        })
        .await
    }

    /// The order's events as stored.
    pub async fn order_events(&self, order_id: Uuid) -> Vec<RecordedEvent> {
        self.store.read_stream(&StreamId::new("order", order_id), 0).await.expect("the stream reads")
    }

    pub async fn order_event_types(&self, order_id: Uuid) -> Vec<String> {
        self.order_events(order_id).await.into_iter().map(|event| event.event_type).collect()
    }

    /// Records an event of inventory's, as inventory would: in the order's transaction.
    pub async fn inventory_records(&self, order_id: Uuid, event: InventoryEvent) -> RecordedEvent {
        record(&self.inventory, StreamId::new("reservation", order_id), event, self.correlation(order_id).await).await
    }

    pub async fn payments_records(&self, order_id: Uuid, event: PaymentsEvent) -> RecordedEvent {
        let stream = StreamId::new("payment", contracts::payments::payment_id(order_id));
        record(&self.payments, stream, event, self.correlation(order_id).await).await
    }

    pub async fn shipping_records(&self, order_id: Uuid, event: ShippingEvent) -> RecordedEvent {
        let stream = StreamId::new("shipment", contracts::shipping::shipment_id(order_id));
        record(&self.shipping, stream, event, self.correlation(order_id).await).await
    }

    /// The correlation id of an order's transaction: its placement's.
    pub async fn correlation(&self, order_id: Uuid) -> Uuid {
        self.order_events(order_id).await.first().map_or_else(Uuid::now_v7, |placed| placed.correlation_id)
    }

    pub async fn stop(mut self) {
        self.stop_service().await;
        if let Some(server) = self.catalog_server.take() {
            server.stop().await;
        }
    }
}

async fn record<E: DomainEvent>(
    store: &InMemoryEventStore,
    stream_id: StreamId,
    event: E,
    correlation_id: Uuid,
) -> RecordedEvent {
    let metadata = Metadata { correlation_id, causation_id: Uuid::now_v7(), acting_user: None };
    let new = EventCodec::<E>::new().encode(&event, metadata).expect("the event encodes");
    let event_id = new.event_id;
    store.append(&stream_id, ExpectedVersion::Any, vec![new]).await.expect("the event appends");
    let stored = store.read_stream(&stream_id, 0).await.expect("the stream reads");
    stored.into_iter().find(|recorded| recorded.event_id == event_id).expect("the event is stored")
}

/// Polls `check` until it gives a value, failing the test after a few seconds.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "the expected state was not reached within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Harness {
    /// The status the store holds for an order while the service is down.
    pub async fn get_stopped_status(&self, order_id: Uuid) -> OrderStatus {
        let events = self.order_events(order_id).await;
        let codec = EventCodec::<contracts::orders::OrdersEvent>::new();
        let reply = orders::views::OrderReplyBuilder::from_stream(&codec, &events).expect("the events decode");
        reply.expect("the order was placed").status
    }
}
