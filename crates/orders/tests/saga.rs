//! The orders side of the checkout saga: events recorded in fake inventory, payments and
//! shipping stores, consumed by the real service over the in-process bus.

mod support;

use std::time::Duration;

use contracts::inventory::{InventoryEvent, ReservedLine};
use contracts::orders::{OrderStatus, RejectionReason, ShipOrder};
use contracts::payments::{PaymentsEvent, payment_id};
use contracts::shipping::{ShippingEvent, shipment_id};
use contracts::values::{Money, PaymentMethod};
use uuid::Uuid;

use support::{Harness, item, place, product};

async fn placed_order(harness: &Harness) -> (Uuid, Uuid) {
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let user_id = Uuid::now_v7();
    let order_id = harness.call(&place(user_id, vec![item(kettle.id, 2)])).await.expect("placed").order_id;
    (order_id, user_id)
}

fn reserved(order_id: Uuid, user_id: Uuid) -> InventoryEvent {
    InventoryEvent::StockReservedForOrder {
        order_id,
        user_id,
        lines: vec![ReservedLine { product_id: Uuid::now_v7(), quantity: 2 }],
        total: Money::eur(3_998),
        payment_method: PaymentMethod::Wallet,
    }
}

fn captured(order_id: Uuid, user_id: Uuid) -> PaymentsEvent {
    PaymentsEvent::PaymentCaptured {
        payment_id: payment_id(order_id),
        order_id,
        user_id,
        amount: Money::eur(3_998),
        balance: Some(Money::eur(2)),
    }
}

fn declined(order_id: Uuid, user_id: Uuid) -> PaymentsEvent {
    PaymentsEvent::PaymentDeclined {
        payment_id: payment_id(order_id),
        order_id,
        user_id,
        amount: Money::eur(3_998),
        reason: "insufficient_funds".into(),
    }
}

/// Lets the consumers handle whatever was recorded, when the test expects no change.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn reserved_then_captured_confirms_the_order_in_its_transaction() {
    let harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;

    harness.inventory_records(order_id, reserved(order_id, user_id)).await;
    harness.wait_for_status(order_id, OrderStatus::StockReserved).await;
    let capture = harness.payments_records(order_id, captured(order_id, user_id)).await;
    let order = harness.wait_for_status(order_id, OrderStatus::Confirmed).await;

    let statuses: Vec<OrderStatus> = order.history.iter().map(|change| change.status).collect();
    assert_eq!(
        statuses,
        vec![OrderStatus::Pending, OrderStatus::StockReserved, OrderStatus::Paid, OrderStatus::Confirmed]
    );
    let events = harness.order_events(order_id).await;
    assert_eq!(events.len(), 4);
    let correlation = events[0].correlation_id;
    assert!(events.iter().all(|event| event.correlation_id == correlation), "one transaction");
    assert_eq!(events[2].causation_id, capture.event_id, "paid because of the capture");
    assert_eq!(events[2].position.0 + 1, events[3].position.0, "paid and confirmed in one append");
    let confirmed: serde_json::Value = events[3].payload.to_value().expect("json");
    assert_eq!(confirmed["user_id"], user_id.to_string());
    assert_eq!(confirmed["lines"][0]["quantity"], 2);
    harness.stop().await;
}

#[tokio::test]
async fn a_capture_may_arrive_before_the_reservation_and_a_second_one_changes_nothing() {
    let harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;

    harness.payments_records(order_id, captured(order_id, user_id)).await;
    harness.wait_for_status(order_id, OrderStatus::Confirmed).await;
    harness.inventory_records(order_id, reserved(order_id, user_id)).await;
    harness.payments_records(order_id, captured(order_id, user_id)).await;
    settle().await;

    assert_eq!(
        harness.order_event_types(order_id).await,
        vec!["OrderPlaced", "OrderPaid", "OrderConfirmed"],
        "a late reservation and a repeated capture are ignored"
    );
    harness.stop().await;
}

#[tokio::test]
async fn out_of_stock_rejects_and_a_late_capture_is_ignored() {
    let harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;
    let failed =
        InventoryEvent::StockReservationFailed { order_id, product_id: Uuid::now_v7(), requested: 2, available: 1 };

    harness.inventory_records(order_id, failed).await;
    let order = harness.wait_for_status(order_id, OrderStatus::Rejected).await;
    harness.payments_records(order_id, captured(order_id, user_id)).await;
    settle().await;

    assert_eq!(order.reason, Some(RejectionReason::OutOfStock));
    assert_eq!(harness.order_event_types(order_id).await, vec!["OrderPlaced", "OrderRejected"]);
    harness.stop().await;
}

#[tokio::test]
async fn a_declined_payment_rejects_the_order() {
    let harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;

    harness.inventory_records(order_id, reserved(order_id, user_id)).await;
    harness.payments_records(order_id, declined(order_id, user_id)).await;
    let order = harness.wait_for_status(order_id, OrderStatus::Rejected).await;

    assert_eq!(order.reason, Some(RejectionReason::PaymentDeclined));
    let statuses: Vec<OrderStatus> = order.history.iter().map(|change| change.status).collect();
    assert_eq!(statuses, vec![OrderStatus::Pending, OrderStatus::StockReserved, OrderStatus::Rejected]);
    harness.stop().await;
}

#[tokio::test]
async fn a_delivered_shipment_delivers_a_shipped_order_only() {
    let harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;
    let shipment_id = shipment_id(order_id);
    let delivered = || ShippingEvent::ShipmentDelivered { shipment_id, order_id, user_id };

    harness.payments_records(order_id, captured(order_id, user_id)).await;
    harness.wait_for_status(order_id, OrderStatus::Confirmed).await;
    // Delivered before shipped cannot happen in shipping; if it did, orders ignores it.
    harness.shipping_records(order_id, delivered()).await;
    settle().await;
    assert_eq!(harness.get(order_id).await.status, OrderStatus::Confirmed);
    let ship = ShipOrder { order_id, carrier: "DHL".into(), tracking_number: "JD0001".into() };
    harness.call(&ship).await.expect("ships");
    harness.shipping_records(order_id, delivered()).await;
    let order = harness.wait_for_status(order_id, OrderStatus::Delivered).await;

    assert!(order.status.is_terminal());
    assert_eq!(order.history.last().map(|change| change.status), Some(OrderStatus::Delivered));
    harness.stop().await;
}

#[tokio::test]
async fn a_restarted_service_handles_what_it_missed_once() {
    let mut harness = Harness::start().await;
    let (order_id, user_id) = placed_order(&harness).await;
    harness.inventory_records(order_id, reserved(order_id, user_id)).await;
    harness.wait_for_status(order_id, OrderStatus::StockReserved).await;

    harness.stop_service().await;
    harness.payments_records(order_id, captured(order_id, user_id)).await;
    harness.start_service().await;
    harness.wait_for_status(order_id, OrderStatus::Confirmed).await;
    settle().await;

    assert_eq!(
        harness.order_event_types(order_id).await,
        vec!["OrderPlaced", "OrderStockReserved", "OrderPaid", "OrderConfirmed"]
    );
    harness.stop().await;
}

#[tokio::test]
async fn events_of_other_orders_and_of_unknown_orders_do_not_block_the_saga() {
    let harness = Harness::start().await;
    let stranger = Uuid::now_v7();
    harness.payments_records(stranger, captured(stranger, Uuid::now_v7())).await;
    let (order_id, user_id) = placed_order(&harness).await;

    harness.payments_records(order_id, captured(order_id, user_id)).await;

    harness.wait_for_status(order_id, OrderStatus::Confirmed).await;
    assert!(harness.order_events(stranger).await.is_empty());
    harness.stop().await;
}
