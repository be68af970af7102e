//! Notifications made by the reactions to other services' events, and the operations that
//! list them and mark them read, on a real in-process bus.

mod support;

use std::sync::Arc;
use std::time::Duration;

use contracts::notifications::{EmailStatus, ListNotifications, NotificationKind, notification_id};
use contracts::orders::{OrdersEvent, RejectionReason};
use contracts::shipping::{ShippingEvent, shipment_id};
use contracts::values::{PageRequest, Role};
use eventshop_core::bus::{CallError, RejectionKind};
use eventshop_core::consumer::{ConsumerStorage, EventHandler};
use eventshop_core::{EventStore, Position};
use notifications::email::SmtpSettings;
use notifications::reactions::{Reactions, Source};
use notifications::view::NotificationsView;
use runtime::LiveView;
use support::{Harness, confirmed, eventually, quick_policy};
use uuid::Uuid;

async fn harness() -> Harness {
    Harness::start(1, &[], quick_policy()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirmed_order_notifies_its_buyer_and_no_one_else() {
    let harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    let eve = harness.register("eve@shop.test", Role::Customer).await;
    let order_id = Uuid::now_v7();

    let cause = harness.order_event(&confirmed(order_id, ann)).await;

    let notifications = harness.wait_for_notifications(ann, 1).await;
    let notification = &notifications[0];
    assert_eq!(notification.id, notification_id(cause.event_id, ann), "derived from the event and the recipient");
    assert_eq!((notification.kind, notification.order_id), (NotificationKind::OrderConfirmed, Some(order_id)));
    assert_eq!(notification.subject, format!("Your order {order_id} is confirmed"));
    assert!(notification.body.contains("2 items for 20.00 EUR"), "{}", notification.body);
    assert!(!notification.read);
    assert_eq!(notification.email, EmailStatus::NotSent, "no SMTP configured");
    assert!(harness.notifications_of(eve).await.is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejections_cancellations_and_shipments_tell_the_buyer_what_happened() {
    let harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    let (declined, cancelled, shipped) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let reason = RejectionReason::PaymentDeclined;
    harness.order_event(&OrdersEvent::OrderRejected { order_id: declined, user_id: ann, reason }).await;
    harness.wait_for_notifications(ann, 1).await;
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: cancelled, user_id: ann }).await;
    harness.wait_for_notifications(ann, 2).await;
    let shipment = shipment_id(shipped);
    let dispatched = ShippingEvent::ShipmentDispatched {
        shipment_id: shipment,
        order_id: shipped,
        user_id: ann,
        carrier: "DHL".to_owned(),
        tracking_number: "JJD000123".to_owned(),
    };
    harness.shipping_event(&dispatched).await;
    harness.wait_for_notifications(ann, 3).await;
    let delivered = ShippingEvent::ShipmentDelivered { shipment_id: shipment, order_id: shipped, user_id: ann };
    harness.shipping_event(&delivered).await;

    let notifications = harness.wait_for_notifications(ann, 4).await;
    let kinds: Vec<NotificationKind> = notifications.iter().map(|notification| notification.kind).collect();
    assert_eq!(
        kinds,
        [
            NotificationKind::ShipmentDelivered,
            NotificationKind::ShipmentDispatched,
            NotificationKind::OrderCancelled,
            NotificationKind::OrderRejected,
        ],
        "newest first"
    );
    let [delivered, dispatched, cancelled_notice, rejected] = &notifications[..] else { unreachable!() };
    assert_eq!(rejected.order_id, Some(declined));
    assert!(rejected.body.contains("the payment was declined"), "{}", rejected.body);
    assert_eq!(cancelled_notice.subject, format!("Your order {cancelled} is cancelled"));
    assert_eq!(dispatched.order_id, Some(shipped));
    assert!(dispatched.body.contains("DHL") && dispatched.body.contains("JJD000123"), "{}", dispatched.body);
    assert_eq!(delivered.subject, format!("Your order {shipped} was delivered"));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn low_stock_notifies_every_administrator() {
    let harness = harness().await;
    let first_admin = harness.register("boss@shop.test", Role::Admin).await;
    let second_admin = harness.register("deputy@shop.test", Role::Admin).await;
    let customer = harness.register("ann@shop.test", Role::Customer).await;
    let product_id = Uuid::now_v7();
    // Identity's events reach the view before the alert is handled.
    eventually(|| async { (recipients(&harness).await == 3).then_some(()) }).await;

    harness.low_stock(product_id, 4, 5).await;

    for admin in [first_admin, second_admin] {
        let notifications = harness.wait_for_notifications(admin, 1).await;
        let alert = &notifications[0];
        assert_eq!(
            (alert.kind, alert.product_id, alert.order_id),
            (NotificationKind::LowStock, Some(product_id), None)
        );
        assert_eq!(alert.user_id, admin);
        assert!(alert.body.contains("Only 4 units") && alert.body.contains("threshold of 5"), "{}", alert.body);
    }
    assert!(harness.notifications_of(customer).await.is_empty());
    assert_eq!(harness.notification_count().await, 2);
    harness.stop().await;
}

/// How many recipients the store has recorded.
async fn recipients(harness: &Harness) -> usize {
    let events = harness.store.read_all(Position::START, 10_000).await.expect("reads");
    events.iter().filter(|event| event.event_type == "RecipientRegistered").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_handled_twice_creates_one_notification() {
    // No service runs: the handler is called by hand, as a bus that redelivers would.
    let harness = Harness::start(0, &[], quick_policy()).await;
    let ann = Uuid::now_v7();
    let (view, follower) =
        LiveView::<NotificationsView>::start("test", harness.store.clone()).await.expect("the view starts");
    let smtp = Arc::new(SmtpSettings::follow(harness.settings.clone()).await);
    let reactions = Reactions::new(Source::Orders, harness.store.clone(), view.clone(), smtp);
    let cause = harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;

    reactions.handle(&cause).await.expect("handled");
    reactions.handle(&cause).await.expect("handled again");

    assert_eq!(harness.notification_count().await, 1);
    let head = harness.store.head_position().await.expect("head");
    let request = ListNotifications { user_id: ann, unread_only: false, page: PageRequest::default() };
    let listed = view.read_after(head, |view| view.list(&request)).await.expect("lists");
    assert_eq!(listed.items.len(), 1);
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_delivered_again_after_a_lost_position_change_nothing() {
    let mut harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    let before = harness.wait_for_notifications(ann, 2).await;

    // As after a crash that lost every consumer's position: everything comes again.
    harness.stop_instances().await;
    for source in Source::ALL {
        harness.store.save_consumer_position(source.consumer(), Position::START).await.expect("position saves");
    }
    harness.start_instance().await;
    let head = harness.orders.head_position().await.expect("head");
    eventually(|| async {
        let position = harness.store.consumer_position(Source::Orders.consumer()).await.expect("position reads");
        (position >= head).then_some(())
    })
    .await;

    assert_eq!(harness.notifications_of(ann).await, before);
    assert_eq!(harness.notification_count().await, 2);
    assert_eq!(recipients(&harness).await, 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_is_marked_read_by_its_recipient_only() {
    let harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    let eve = harness.register("eve@shop.test", Role::Customer).await;
    harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    let notifications = harness.wait_for_notifications(ann, 2).await;
    let (newest, oldest) = (&notifications[0], &notifications[1]);

    let read = harness.mark_read(ann, oldest.id).await.expect("marked read");
    assert!(read.read && read.read_at.is_some(), "{read:?}");
    assert_eq!((read.id, read.version), (oldest.id, oldest.version + 1));
    // Read your writes: the list shows it read at once.
    let listed = harness.notifications_of(ann).await;
    assert!(listed[1].read && !listed[0].read);
    let unread = harness.list(ann, true, 20, None).await.items;
    assert_eq!(unread.iter().map(|notification| notification.id).collect::<Vec<_>>(), [newest.id]);

    let again = harness.mark_read(ann, oldest.id).await.expect("marked read again");
    assert_eq!(again, read, "a second mark answers the same");

    for (user, id) in [(eve, newest.id), (ann, Uuid::now_v7())] {
        match harness.mark_read(user, id).await {
            Err(CallError::Rejected(rejection)) => assert_eq!(rejection.kind, RejectionKind::NotFound),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(!harness.notifications_of(ann).await[0].read, "another user's mark changed nothing");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_come_in_pages_and_refuse_bad_limits_and_cursors() {
    let harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    for _ in 0..5 {
        harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    }
    let all = harness.wait_for_notifications(ann, 5).await;

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = harness.list(ann, false, 2, cursor).await;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|notification| notification.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, all.iter().map(|notification| notification.id).collect::<Vec<_>>());

    for (limit, cursor, field) in [(0, None, "limit"), (101, None, "limit"), (20, Some("bogus"), "cursor")] {
        let request = ListNotifications {
            user_id: ann,
            unread_only: false,
            page: PageRequest { limit, cursor: cursor.map(Into::into) },
        };
        let answer = eventshop_core::bus::call(
            &*harness.bus,
            &request,
            eventshop_core::bus::MessageContext::new_transaction(None),
            Duration::from_secs(5),
        )
        .await;
        match answer {
            Err(CallError::Rejected(rejection)) => {
                assert_eq!(rejection.kind, RejectionKind::Invalid);
                let details = rejection.details.expect("details");
                assert_eq!(details["errors"][0]["field"], field);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_service_lists_the_same_notifications() {
    let mut harness = harness().await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    let notifications = harness.wait_for_notifications(ann, 2).await;
    harness.mark_read(ann, notifications[1].id).await.expect("marked read");
    let before = harness.notifications_of(ann).await;

    harness.stop_instances().await;
    harness.start_instance().await;

    assert_eq!(harness.notifications_of(ann).await, before, "the view replayed into the same answers");
    assert_eq!(harness.list(ann, true, 20, None).await.items, before[..1]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_answers_its_health_check() {
    let harness = harness().await;
    let answer: Result<serde_json::Value, _> = eventshop_core::bus::call(
        &*harness.bus,
        &HealthCheck,
        eventshop_core::bus::MessageContext::new_transaction(None),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(answer.expect("healthy")["store"], "ok");
    harness.stop().await;
}

/// The health check every service answers, as the gateway's readiness sends it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HealthCheck;

impl eventshop_core::bus::Operation for HealthCheck {
    const SERVICE: &'static str = contracts::notifications::SERVICE;
    const NAME: &'static str = eventshop_core::bus::CHECK_HEALTH;
    type Reply = serde_json::Value;
}
