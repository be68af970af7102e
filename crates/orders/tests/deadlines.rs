//! The payment deadline: orders left waiting longer than `orders.payment_timeout` are
//! rejected with reason `timeout`, also after a restart.

mod support;

use std::time::{Duration, Instant};

use contracts::orders::{OrderStatus, PAYMENT_TIMEOUT_SETTING, RejectionReason};
use contracts::payments::{PaymentsEvent, payment_id};
use contracts::values::Money;
use eventshop_core::settings::{LocalSettings, Settings};
use uuid::Uuid;

use support::{Harness, item, place, product};

fn timeout(value: &str) -> LocalSettings {
    LocalSettings::new([(PAYMENT_TIMEOUT_SETTING.to_owned(), value.to_owned())])
}

#[tokio::test]
async fn an_order_left_waiting_is_rejected_for_timeout_in_its_transaction() {
    let harness = Harness::start_with_settings(timeout("200ms")).await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let placed_at = Instant::now();
    let order_id = harness.call(&place(Uuid::now_v7(), vec![item(kettle.id, 1)])).await.expect("placed").order_id;

    let order = harness.wait_for_status(order_id, OrderStatus::Rejected).await;

    assert!(placed_at.elapsed() >= Duration::from_millis(200), "not before the timeout");
    assert_eq!(order.reason, Some(RejectionReason::Timeout));
    let events = harness.order_events(order_id).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].correlation_id, events[0].correlation_id);
    assert_eq!(events[1].causation_id, events[0].event_id, "caused by the placement");
    harness.stop().await;
}

#[tokio::test]
async fn a_confirmed_order_is_not_rejected_and_the_timeout_is_read_live() {
    let harness = Harness::start_with_settings(timeout("1h")).await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let user_id = Uuid::now_v7();
    let confirmed = harness.call(&place(user_id, vec![item(kettle.id, 1)])).await.expect("placed").order_id;
    let waiting = harness.call(&place(user_id, vec![item(kettle.id, 1)])).await.expect("placed").order_id;
    let capture = PaymentsEvent::PaymentCaptured {
        payment_id: payment_id(confirmed),
        order_id: confirmed,
        user_id,
        amount: Money::eur(1_999),
        balance: None,
    };
    harness.payments_records(confirmed, capture).await;
    harness.wait_for_status(confirmed, OrderStatus::Confirmed).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(harness.get(waiting).await.status, OrderStatus::Pending, "an hour has not passed");

    harness.settings.set(PAYMENT_TIMEOUT_SETTING, "100ms").await.expect("set");
    harness.wait_for_status(waiting, OrderStatus::Rejected).await;

    assert_eq!(harness.get(confirmed).await.status, OrderStatus::Confirmed);
    harness.stop().await;
}

#[tokio::test]
async fn a_restarted_service_still_rejects_on_time() {
    let mut harness = Harness::start_with_settings(timeout("200ms")).await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let order_id = harness.call(&place(Uuid::now_v7(), vec![item(kettle.id, 1)])).await.expect("placed").order_id;
    harness.stop_service().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(harness.get_stopped_status(order_id).await, OrderStatus::Pending, "nobody rejected it while down");

    harness.start_service().await;
    let started = Instant::now();
    let order = harness.wait_for_status(order_id, OrderStatus::Rejected).await;

    assert_eq!(order.reason, Some(RejectionReason::Timeout));
    assert!(started.elapsed() < Duration::from_secs(1), "an overdue order is rejected at the first ticks");
    harness.stop().await;
}
