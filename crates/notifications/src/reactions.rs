//! What notifications reacts to (SPEC §2.7), one consumer per source service:
//!
//! - orders (`OrderConfirmed`, `OrderRejected`, `OrderCancelled`) and shipping
//!   (`ShipmentDispatched`, `ShipmentDelivered`): a notification to the buyer, whom every
//!   one of these events names, so no order→buyer table is needed;
//! - inventory (`LowStockDetected`): a notification to every administrator known;
//! - identity (`UserRegistered`, `UserProfileChanged`): the recipient's email, name and
//!   role, recorded as `RecipientRegistered` / `RecipientRenamed` on the recipient's own
//!   stream, which the view folds (where emails go, who the administrators are).
//!
//! A notification's id is derived from the event and the recipient
//! (`contracts::notifications::notification_id`), and every reaction appends its effect
//! with the event's inbox row (`record_reaction`): an event delivered again creates no
//! second notification. Whether a notification is to be emailed is decided when it is
//! created, from the SMTP setting of that moment.

use std::sync::Arc;

use async_trait::async_trait;
use contracts::identity::{self, IdentityEvent};
use contracts::inventory::{self, InventoryEvent};
use contracts::notifications::{NotificationKind, NotificationsEvent, notification_id};
use contracts::orders::{self, OrdersEvent};
use contracts::shipping::{self, ShippingEvent};
use eventshop_core::bus::{Bus, BusError};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler, HandlerError};
use eventshop_core::{Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, RecordedEvent, StreamId};
use runtime::{LiveView, Recorded, caused_append, record_reaction};
use uuid::Uuid;

use crate::domain::{NewNotification, Notification, NotificationCommand};
use crate::email::SmtpSettings;
use crate::templates::{self, Values, render_kind};
use crate::view::NotificationsView;

/// How many times a reaction is decided again when a notification's stream changed under
/// it, before the consumer's own retries take over.
const MAX_ATTEMPTS: u32 = 5;

/// The category of the streams where notifications records what it learned of a user.
pub const RECIPIENT_CATEGORY: &str = "recipient";

pub fn recipient_stream(user_id: Uuid) -> StreamId {
    StreamId::new(RECIPIENT_CATEGORY, user_id)
}

/// The services notifications listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Orders,
    Shipping,
    Inventory,
    Identity,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Identity, Source::Orders, Source::Shipping, Source::Inventory];

    /// The consumer's name, which is also its inbox key.
    pub fn consumer(self) -> &'static str {
        match self {
            Source::Orders => "notifications.orders",
            Source::Shipping => "notifications.shipping",
            Source::Inventory => "notifications.inventory",
            Source::Identity => "notifications.identity",
        }
    }

    pub fn service(self) -> &'static str {
        match self {
            Source::Orders => orders::SERVICE,
            Source::Shipping => shipping::SERVICE,
            Source::Inventory => inventory::SERVICE,
            Source::Identity => identity::SERVICE,
        }
    }

    pub fn event_types(self) -> &'static [&'static str] {
        match self {
            Source::Orders => &["OrderConfirmed", "OrderRejected", "OrderCancelled"],
            Source::Shipping => &["ShipmentDispatched", "ShipmentDelivered"],
            Source::Inventory => &["LowStockDetected"],
            Source::Identity => &["UserRegistered", "UserProfileChanged"],
        }
    }

    pub fn definition(self) -> ConsumerDefinition {
        ConsumerDefinition::new(self.consumer(), self.service(), self.event_types())
    }
}

/// A notification to make for an event: its kind, the values of its template, and what
/// it is about.
#[derive(Debug)]
struct Notice {
    kind: NotificationKind,
    values: Values,
    order_id: Option<Uuid>,
    product_id: Option<Uuid>,
}

impl Notice {
    fn about_order(kind: NotificationKind, order_id: Uuid, values: Values) -> Self {
        Notice { kind, values: values.with("order_id", order_id), order_id: Some(order_id), product_id: None }
    }
}

/// The reactions to one source's events.
#[derive(Debug)]
pub struct Reactions {
    source: Source,
    store: Arc<dyn EventStore>,
    notifications: CommandHandler<Notification>,
    view: LiveView<NotificationsView>,
    smtp: Arc<SmtpSettings>,
    codec: EventCodec<NotificationsEvent>,
    orders_codec: EventCodec<OrdersEvent>,
    shipping_codec: EventCodec<ShippingEvent>,
    inventory_codec: EventCodec<InventoryEvent>,
    identity_codec: EventCodec<IdentityEvent>,
}

impl Reactions {
    pub fn new(
        source: Source,
        store: Arc<dyn EventStore>,
        view: LiveView<NotificationsView>,
        smtp: Arc<SmtpSettings>,
    ) -> Self {
        Reactions {
            source,
            notifications: CommandHandler::new(store.clone()),
            store,
            view,
            smtp,
            codec: EventCodec::new(),
            orders_codec: EventCodec::new(),
            shipping_codec: EventCodec::new(),
            inventory_codec: EventCodec::new(),
            identity_codec: EventCodec::new(),
        }
    }

    /// The notice a buyer gets for an orders event, if any.
    fn order_notice(event: OrdersEvent) -> Option<(Uuid, Notice)> {
        Some(match event {
            OrdersEvent::OrderConfirmed { order_id, user_id, lines, .. } => {
                let values = Values::new()
                    .with("items", templates::items(&lines))
                    .with("total", templates::money(templates::total(&lines)));
                (user_id, Notice::about_order(NotificationKind::OrderConfirmed, order_id, values))
            }
            OrdersEvent::OrderRejected { order_id, user_id, reason } => {
                let values = Values::new().with("reason", templates::reason(reason));
                (user_id, Notice::about_order(NotificationKind::OrderRejected, order_id, values))
            }
            OrdersEvent::OrderCancelled { order_id, user_id } => {
                (user_id, Notice::about_order(NotificationKind::OrderCancelled, order_id, Values::new()))
            }
            _ => return None,
        })
    }

    /// The notice a buyer gets for a shipping event, if any.
    fn shipping_notice(event: ShippingEvent) -> Option<(Uuid, Notice)> {
        Some(match event {
            ShippingEvent::ShipmentDispatched { order_id, user_id, carrier, tracking_number, .. } => {
                let values = Values::new().with("carrier", carrier).with("tracking_number", tracking_number);
                (user_id, Notice::about_order(NotificationKind::ShipmentDispatched, order_id, values))
            }
            ShippingEvent::ShipmentDelivered { order_id, user_id, .. } => {
                (user_id, Notice::about_order(NotificationKind::ShipmentDelivered, order_id, Values::new()))
            }
            _ => return None,
        })
    }

    /// Every administrator recorded so far: the view is read once it has caught up with
    /// the store, so an administrator this instance (or another) already recorded counts.
    async fn admins(&self) -> Result<Vec<Uuid>, HandlerError> {
        let head = self.store.head_position().await.map_err(HandlerError::transient)?;
        Ok(self.view.read_after(head, NotificationsView::admins).await)
    }

    /// Creates `notice` for each recipient, with the inbox row of `cause`, in one append.
    async fn notify(&self, cause: &RecordedEvent, recipients: &[Uuid], notice: Notice) -> Result<(), HandlerError> {
        let rendered = render_kind(notice.kind, &notice.values).map_err(HandlerError::permanent)?;
        let by_email = self.smtp.url().await.is_some();
        for _attempt in 0..MAX_ATTEMPTS {
            let mut appends = Vec::with_capacity(recipients.len());
            for &user_id in recipients {
                let id = notification_id(cause.event_id, user_id);
                let loaded = self.notifications.load(id).await.map_err(HandlerError::transient)?;
                let send = NotificationCommand::Send(NewNotification {
                    notification_id: id,
                    user_id,
                    kind: notice.kind,
                    subject: rendered.subject.clone(),
                    body: rendered.body.clone(),
                    order_id: notice.order_id,
                    product_id: notice.product_id,
                    by_email,
                });
                let events = loaded.state.decide(&send).map_err(HandlerError::permanent)?;
                if !events.is_empty() {
                    let stream_id = CommandHandler::<Notification>::stream_id(id);
                    let expected = ExpectedVersion::after(loaded.version);
                    appends.push(caused_append(&self.codec, cause, stream_id, expected, &events)?);
                }
            }
            if record_reaction(&*self.store, self.source.consumer(), cause, appends).await? == Recorded::Done {
                return Ok(());
            }
        }
        Err(HandlerError::transient(format!("the notifications of event {} kept changing", cause.event_id)))
    }

    /// Records what identity says of a user on the recipient's stream. Any version: the
    /// bus hands a user's events over in order, and the view keeps the latest.
    async fn learn(&self, cause: &RecordedEvent, user_id: Uuid, event: NotificationsEvent) -> Result<(), HandlerError> {
        let append = caused_append(&self.codec, cause, recipient_stream(user_id), ExpectedVersion::Any, &[event])?;
        record_reaction(&*self.store, self.source.consumer(), cause, vec![append]).await?;
        Ok(())
    }
}

#[async_trait]
impl EventHandler for Reactions {
    #[tracing::instrument(skip_all, fields(consumer = self.source.consumer(), event_id = %event.event_id))]
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError> {
        let noticed = match self.source {
            Source::Orders => Self::order_notice(self.orders_codec.decode(event).map_err(HandlerError::permanent)?)
                .map(|(buyer, notice)| (vec![buyer], notice)),
            Source::Shipping => {
                Self::shipping_notice(self.shipping_codec.decode(event).map_err(HandlerError::permanent)?)
                    .map(|(buyer, notice)| (vec![buyer], notice))
            }
            Source::Inventory => match self.inventory_codec.decode(event).map_err(HandlerError::permanent)? {
                InventoryEvent::LowStockDetected { product_id, available, threshold } => {
                    let values = Values::new()
                        .with("product_id", product_id)
                        .with("available", available)
                        .with("threshold", threshold);
                    let notice = Notice {
                        kind: NotificationKind::LowStock,
                        values,
                        order_id: None,
                        product_id: Some(product_id),
                    };
                    Some((self.admins().await?, notice))
                }
                _ => None,
            },
            Source::Identity => {
                return match self.identity_codec.decode(event).map_err(HandlerError::permanent)? {
                    IdentityEvent::UserRegistered { user_id, email, name, role, .. } => {
                        self.learn(
                            event,
                            user_id,
                            NotificationsEvent::RecipientRegistered { user_id, email, name, role },
                        )
                        .await
                    }
                    IdentityEvent::UserProfileChanged { user_id, name } => {
                        self.learn(event, user_id, NotificationsEvent::RecipientRenamed { user_id, name }).await
                    }
                    _ => Ok(()),
                };
            }
        };
        match noticed {
            Some((recipients, notice)) => {
                if recipients.is_empty() {
                    tracing::warn!(kind = ?notice.kind, "no administrator is known to notify");
                }
                self.notify(event, &recipients, notice).await
            }
            // Filtered out by the definition; nothing to do should one arrive.
            None => Ok(()),
        }
    }
}

/// Starts one consumer per source. Their services' events must be published on the bus
/// first, since the in-process bus refuses a consumer whose source it does not know.
pub async fn start(
    bus: &dyn Bus,
    store: Arc<dyn EventStore>,
    consumers: Arc<dyn ConsumerStorage>,
    view: LiveView<NotificationsView>,
    smtp: Arc<SmtpSettings>,
) -> Result<Vec<ConsumerHandle>, BusError> {
    let mut handles = Vec::with_capacity(Source::ALL.len());
    for source in Source::ALL {
        let reactions = Arc::new(Reactions::new(source, store.clone(), view.clone(), smtp.clone()));
        match bus.consume(source.definition(), reactions, consumers.clone()).await {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                for handle in handles {
                    handle.stop().await;
                }
                return Err(error);
            }
        }
    }
    Ok(handles)
}
