//! The email outbox against a real SMTP server on a loopback port (`testing::SmtpSink`):
//! retries with backoff while the server refuses or is down, one delivery recorded and
//! never repeated, by a restart or by a second instance.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::notifications::{EmailStatus, NotificationsEvent, SMTP_FROM_SETTING, SMTP_URL_SETTING};
use contracts::orders::OrdersEvent;
use contracts::values::Role;
use eventshop_core::settings::Settings;
use notifications::email::OutboxPolicy;
use notifications::testing::SmtpSink;
use support::{Harness, confirmed, eventually, quick_policy};
use uuid::Uuid;

/// Long enough for several ticks of the quick outbox.
const SETTLE: Duration = Duration::from_millis(600);

async fn sink() -> SmtpSink {
    SmtpSink::start().await.expect("the SMTP sink listens")
}

fn types(events: &[NotificationsEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| match event {
            NotificationsEvent::NotificationSent { .. } => "NotificationSent",
            NotificationsEvent::NotificationRead { .. } => "NotificationRead",
            NotificationsEvent::EmailDeliveryStarted { .. } => "EmailDeliveryStarted",
            NotificationsEvent::EmailDelivered { .. } => "EmailDelivered",
            NotificationsEvent::EmailFailed { .. } => "EmailFailed",
            NotificationsEvent::RecipientRegistered { .. } => "RecipientRegistered",
            NotificationsEvent::RecipientRenamed { .. } => "RecipientRenamed",
        })
        .collect()
}

/// The `retry_at` of each failure on the stream, and when its attempt started.
fn failures(events: &[NotificationsEvent]) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut started = None;
    let mut failures = Vec::new();
    for event in events {
        match event {
            NotificationsEvent::EmailDeliveryStarted { started_at, .. } => started = Some(*started_at),
            NotificationsEvent::EmailFailed { retry_at, .. } => {
                failures.push((started.expect("a failure follows its start"), *retry_at));
            }
            _ => {}
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_refused_twice_is_retried_with_backoff_and_delivered_once() {
    let sink = sink().await;
    sink.refuse_next(2, "451 4.3.0 Mailbox busy, try again later");
    let settings = [(SMTP_URL_SETTING, sink.url()), (SMTP_FROM_SETTING, "Shop <shop@shop.test>".to_owned())];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let mut harness = Harness::start(1, &settings, quick_policy()).await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    let order_id = Uuid::now_v7();

    harness.order_event(&confirmed(order_id, ann)).await;

    let received = sink.wait_for(1, support::TIMEOUT).await;
    assert_eq!(received.len(), 1, "delivered after two refusals");
    let mail = &received[0];
    assert_eq!((mail.from.as_str(), mail.to.as_slice()), ("shop@shop.test", &["ann@shop.test".to_owned()][..]));
    assert_eq!(mail.subject(), Some(format!("Your order {order_id} is confirmed")));
    assert!(mail.body().contains("2 items for 20.00 EUR"), "{}", mail.body());
    assert_eq!(sink.refused(), 2);

    let notification = eventually(|| async {
        let notifications = harness.notifications_of(ann).await;
        notifications.into_iter().find(|notification| notification.email == EmailStatus::Delivered)
    })
    .await;
    assert_eq!(mail.header("Message-ID"), Some(format!("<{}@eventshop>", notification.id)));
    let events = harness.stream(notification.id).await;
    assert_eq!(
        types(&events),
        [
            "NotificationSent",
            "EmailDeliveryStarted",
            "EmailFailed",
            "EmailDeliveryStarted",
            "EmailFailed",
            "EmailDeliveryStarted",
            "EmailDelivered",
        ]
    );
    // The retries waited: 100 ms after the first failure, 200 ms after the second.
    let failures = failures(&events);
    for ((started, retry_at), backoff) in failures.iter().zip([100, 200]) {
        let retry_at = retry_at.expect("a retry is due");
        assert!(retry_at - *started >= chrono::Duration::milliseconds(backoff), "{failures:?}");
    }

    // Nothing more is sent: not by the next ticks, not after a restart.
    tokio::time::sleep(SETTLE).await;
    harness.stop_instances().await;
    harness.start_instance().await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.received().len(), 1, "sent exactly once");
    assert_eq!(harness.stream(notification.id).await.len(), events.len());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_stays_down_is_retried_until_the_email_is_given_up() {
    // A port that nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("an address");
    let url = format!("smtp://{closed}");
    let policy = OutboxPolicy { max_attempts: 3, ..quick_policy() };
    let harness = Harness::start(1, &[(SMTP_URL_SETTING, &url)], policy).await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;

    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;

    let notification = eventually(|| async {
        let notifications = harness.notifications_of(ann).await;
        notifications.into_iter().find(|notification| notification.email == EmailStatus::Failed)
    })
    .await;
    let events = harness.stream(notification.id).await;
    let failures = failures(&events);
    assert_eq!(failures.len(), 3, "{events:?}");
    assert!(failures[..2].iter().all(|(_, retry_at)| retry_at.is_some()));
    assert_eq!(failures[2].1, None, "given up after the last attempt");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_waits_for_its_recipients_address() {
    let sink = sink().await;
    let harness = Harness::start(1, &[(SMTP_URL_SETTING, &sink.url())], quick_policy()).await;
    // The order's event is handled before identity's registration of its buyer.
    let ann = Uuid::now_v7();
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    harness.wait_for_notifications(ann, 1).await;
    tokio::time::sleep(SETTLE).await;
    assert!(sink.received().is_empty());

    let registered = support::append(
        &harness.identity,
        eventshop_core::StreamId::new("user", ann),
        &contracts::identity::IdentityEvent::UserRegistered {
            user_id: ann,
            email: contracts::values::Email::try_from("late@shop.test".to_owned()).expect("valid"),
            name: contracts::values::PersonName::try_from("Late Comer".to_owned()).expect("valid"),
            role: Role::Customer,
            password_hash: "$argon2id$not-a-real-hash".to_owned(),
        },
    )
    .await;
    assert_eq!(registered.event_type, "UserRegistered");

    let received = sink.wait_for(1, support::TIMEOUT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["late@shop.test"]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_send_each_email_once() {
    let sink = sink().await;
    let harness = Harness::start(2, &[(SMTP_URL_SETTING, &sink.url())], quick_policy()).await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    for _ in 0..6 {
        harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;
    }

    let received = sink.wait_for(6, support::TIMEOUT).await;
    tokio::time::sleep(SETTLE).await;
    let received_later = sink.received();
    assert_eq!((received.len(), received_later.len()), (6, 6), "each email once");
    let mut ids: Vec<Option<String>> = received_later.iter().map(|mail| mail.header("Message-ID")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_made_without_smtp_are_never_emailed() {
    let sink = sink().await;
    let harness = Harness::start(1, &[], quick_policy()).await;
    let ann = harness.register("ann@shop.test", Role::Customer).await;
    harness.order_event(&confirmed(Uuid::now_v7(), ann)).await;
    let before = harness.wait_for_notifications(ann, 1).await;
    assert_eq!(before[0].email, EmailStatus::NotSent);

    // SMTP configured later: only what is made from then on is emailed.
    harness.settings.set(SMTP_URL_SETTING, &sink.url()).await.expect("set");
    harness.order_event(&OrdersEvent::OrderCancelled { order_id: Uuid::now_v7(), user_id: ann }).await;
    let received = sink.wait_for(1, support::TIMEOUT).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(sink.received().len(), 1);
    assert!(received[0].subject().is_some_and(|subject| subject.ends_with("is cancelled")));
    harness.stop().await;
}
