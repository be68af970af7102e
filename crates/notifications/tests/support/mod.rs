//! A notifications service on a real in-process bus, with in-memory stores standing in
//! for identity, orders, shipping and inventory: their events are appended as those
//! services would, and the notifications are read through the service's operations.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use contracts::identity::IdentityEvent;
use contracts::inventory::InventoryEvent;
use contracts::notifications::{ListNotifications, MarkNotificationRead, Notification, NotificationsEvent};
use contracts::orders::{OrderLine, OrdersEvent};
use contracts::shipping::ShippingEvent;
use contracts::values::{Email, Money, Page, PageRequest, PersonName, Role};
use eventshop_core::bus::{CallError, EventBus, MessageContext, call};
use eventshop_core::settings::LocalSettings;
use eventshop_core::{
    DomainEvent, EventCodec, EventStore, ExpectedVersion, InMemoryEventStore, Metadata, RecordedEvent, StreamId,
};
use notifications::email::OutboxPolicy;
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An outbox that retries within a test's patience.
pub fn quick_policy() -> OutboxPolicy {
    OutboxPolicy {
        tick: Duration::from_millis(20),
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        max_attempts: 5,
        smtp_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        address_wait: Duration::from_secs(30),
    }
}

pub struct Harness {
    pub bus: Arc<InProcessBus>,
    pub store: Arc<InMemoryEventStore>,
    pub identity: Arc<InMemoryEventStore>,
    pub orders: Arc<InMemoryEventStore>,
    pub shipping: Arc<InMemoryEventStore>,
    pub inventory: Arc<InMemoryEventStore>,
    pub settings: Arc<LocalSettings>,
    pub policy: OutboxPolicy,
    pub services: Vec<RunningService>,
}

impl Harness {
    /// `instances` notifications services sharing one store, with `settings`.
    pub async fn start(instances: usize, settings: &[(&str, &str)], policy: OutboxPolicy) -> Harness {
        let bus = Arc::new(InProcessBus::new());
        let sources = [
            (contracts::identity::SERVICE, Arc::new(InMemoryEventStore::new())),
            (contracts::orders::SERVICE, Arc::new(InMemoryEventStore::new())),
            (contracts::shipping::SERVICE, Arc::new(InMemoryEventStore::new())),
            (contracts::inventory::SERVICE, Arc::new(InMemoryEventStore::new())),
        ];
        for (service, store) in &sources {
            let _published = bus.publish_events(service, store.clone()).await.expect("publishes");
        }
        let [(_, identity), (_, orders), (_, shipping), (_, inventory)] = sources;
        let settings = settings.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned()));
        let mut harness = Harness {
            bus,
            store: Arc::new(InMemoryEventStore::new()),
            identity,
            orders,
            shipping,
            inventory,
            settings: Arc::new(LocalSettings::new(settings)),
            policy,
            services: Vec::new(),
        };
        for _ in 0..instances {
            harness.start_instance().await;
        }
        harness
    }

    pub fn context(&self) -> ServiceContext {
        ServiceContext {
            store: self.store.clone(),
            bus: self.bus.clone(),
            consumers: self.store.clone(),
            settings: self.settings.clone(),
        }
    }

    pub async fn start_instance(&mut self) {
        let service = notifications::start_with(self.context(), self.policy).await.expect("notifications starts");
        self.services.push(service);
    }

    pub async fn stop_instances(&mut self) {
        for service in self.services.drain(..) {
            service.stop().await;
        }
    }

    pub async fn stop(mut self) {
        self.stop_instances().await;
    }

    /// Registers a user in identity's store, as identity would; answers the user id.
    pub async fn register(&self, email: &str, role: Role) -> Uuid {
        let user_id = Uuid::now_v7();
        let event = IdentityEvent::UserRegistered {
            user_id,
            email: Email::try_from(email.to_owned()).expect("a valid email"),
            name: PersonName::try_from("Ann Buyer".to_owned()).expect("a valid name"),
            role,
            password_hash: "$argon2id$not-a-real-hash".to_owned(),
        };
        append(&self.identity, StreamId::new("user", user_id), &event).await;
        user_id
    }

    pub async fn order_event(&self, event: &OrdersEvent) -> RecordedEvent {
        let order_id = match event {
            OrdersEvent::OrderConfirmed { order_id, .. }
            | OrdersEvent::OrderRejected { order_id, .. }
            | OrdersEvent::OrderCancelled { order_id, .. } => *order_id,
            other => panic!("not used in these tests: {other:?}"),
        };
        append(&self.orders, StreamId::new("order", order_id), event).await
    }

    pub async fn shipping_event(&self, event: &ShippingEvent) -> RecordedEvent {
        let shipment_id = match event {
            ShippingEvent::ShipmentDispatched { shipment_id, .. }
            | ShippingEvent::ShipmentDelivered { shipment_id, .. } => *shipment_id,
            other => panic!("not used in these tests: {other:?}"),
        };
        append(&self.shipping, StreamId::new("shipment", shipment_id), event).await
    }

    pub async fn low_stock(&self, product_id: Uuid, available: u64, threshold: u64) -> RecordedEvent {
        let event = InventoryEvent::LowStockDetected { product_id, available, threshold };
        append(&self.inventory, StreamId::new("stock", product_id), &event).await
    }

    pub async fn list(
        &self,
        user_id: Uuid,
        unread_only: bool,
        limit: u32,
        cursor: Option<String>,
    ) -> Page<Notification> {
        let request = ListNotifications { user_id, unread_only, page: PageRequest { limit, cursor } };
        call(&*self.bus, &request, MessageContext::new_transaction(Some(user_id)), TIMEOUT).await.expect("lists")
    }

    /// The user's notifications, newest first (the first page of 100).
    pub async fn notifications_of(&self, user_id: Uuid) -> Vec<Notification> {
        self.list(user_id, false, 100, None).await.items
    }

    /// Waits until the user has `count` notifications, and answers them newest first.
    pub async fn wait_for_notifications(&self, user_id: Uuid, count: usize) -> Vec<Notification> {
        eventually(|| async {
            let items = self.notifications_of(user_id).await;
            (items.len() >= count).then_some(items)
        })
        .await
    }

    pub async fn mark_read(&self, user_id: Uuid, notification_id: Uuid) -> Result<Notification, CallError> {
        let request = MarkNotificationRead { user_id, notification_id };
        call(&*self.bus, &request, MessageContext::new_transaction(Some(user_id)), TIMEOUT).await
    }

    /// The events of a notification's stream.
    pub async fn stream(&self, notification_id: Uuid) -> Vec<NotificationsEvent> {
        let recorded =
            self.store.read_stream(&StreamId::new("notification", notification_id), 0).await.expect("stream reads");
        recorded.iter().map(|event| EventCodec::new().decode(event).expect("event decodes")).collect()
    }

    /// How many notification streams the store holds.
    pub async fn notification_count(&self) -> usize {
        let events = self.store.read_all(eventshop_core::Position::START, 100_000).await.expect("reads");
        events.iter().filter(|event| event.event_type == "NotificationSent").count()
    }
}

/// Appends `event` as its service would, in a transaction of its own; answers it recorded.
pub async fn append<E: DomainEvent>(store: &InMemoryEventStore, stream_id: StreamId, event: &E) -> RecordedEvent {
    let new_event = EventCodec::new().encode(event, Metadata::new_transaction(None)).expect("event encodes");
    let appended = store.append(&stream_id, ExpectedVersion::Any, vec![new_event]).await.expect("appends");
    let recorded = store.read_stream(&stream_id, appended.version - 1).await.expect("reads");
    recorded.into_iter().next().expect("the event just appended")
}

pub fn line(quantity: u32, amount: i64) -> OrderLine {
    OrderLine { product_id: Uuid::now_v7(), name: "Saga Mug".to_owned(), quantity, unit_price: Money::eur(amount) }
}

pub fn confirmed(order_id: Uuid, user_id: Uuid) -> OrdersEvent {
    OrdersEvent::OrderConfirmed {
        order_id,
        user_id,
        shipping_address: serde_json::from_value(serde_json::json!({
            "name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"
        }))
        .expect("a valid address"),
        lines: vec![line(2, 1_000)],
    }
}

/// Polls `probe` until it answers, for at most [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(probe: F) -> T
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
