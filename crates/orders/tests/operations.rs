//! The orders service's operations, called over a real in-process bus against in-memory
//! stores, with a fake catalog pricing the products.

mod support;

use contracts::orders::{CancelOrder, GetOrder, ListOrders, OrderLine, OrderStatus, ShipOrder};
use contracts::payments::PaymentsEvent;
use contracts::values::{Money, PageRequest};
use eventshop_core::bus::RejectionKind;
use uuid::Uuid;

use support::{Harness, item, place, product};

fn list(user_id: Option<Uuid>, status: Option<OrderStatus>, limit: u32, cursor: Option<String>) -> ListOrders {
    ListOrders { user_id, status, page: PageRequest { limit, cursor } }
}

/// Confirms an order the way the saga does: payments captured it.
async fn confirm(harness: &Harness, order_id: Uuid, user_id: Uuid) {
    let payment_id = contracts::payments::payment_id(order_id);
    let captured =
        PaymentsEvent::PaymentCaptured { payment_id, order_id, user_id, amount: Money::eur(1), balance: None };
    harness.payments_records(order_id, captured).await;
    harness.wait_for_status(order_id, OrderStatus::Confirmed).await;
}

#[tokio::test]
async fn an_order_is_placed_pending_with_catalog_prices_and_merged_lines() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let mug = harness.catalog.add(product("Mug", 500, false));
    let user_id = Uuid::now_v7();
    let request = place(user_id, vec![item(kettle.id, 1), item(mug.id, 3), item(kettle.id, 2)]);

    let accepted = harness.call(&request).await.expect("placing answers");

    assert_eq!((accepted.order_id, accepted.status), (request.order_id, OrderStatus::Pending));
    let order = harness.call(&GetOrder { order_id: request.order_id, viewer: Some(user_id) }).await.expect("get");
    assert_eq!(
        order.items,
        vec![
            OrderLine { product_id: kettle.id, name: "Kettle".into(), quantity: 3, unit_price: Money::eur(1_999) },
            OrderLine { product_id: mug.id, name: "Mug".into(), quantity: 3, unit_price: Money::eur(500) },
        ]
    );
    assert_eq!(order.total, Money::eur(3 * 1_999 + 3 * 500));
    assert_eq!((order.status, order.reason, order.version), (OrderStatus::Pending, None, 1));
    assert_eq!(order.user_id, user_id);
    assert_eq!(order.history.len(), 1);
    assert_eq!((order.history[0].status, order.history[0].at), (OrderStatus::Pending, order.created_at));
    assert_eq!(order.shipping_address, request.shipping_address);
    assert_eq!(order.payment_method, request.payment_method);
    harness.stop().await;
}

#[tokio::test]
async fn placing_again_answers_the_order_as_it_is_and_appends_nothing() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let user_id = Uuid::now_v7();
    let request = place(user_id, vec![item(kettle.id, 1)]);
    harness.call(&request).await.expect("placing answers");
    // The catalog's price changes: a retry must not re-price the order.
    harness.catalog.add(contracts::catalog::Product { price: Money::eur(1), ..kettle.clone() });
    harness.call(&CancelOrder { order_id: request.order_id, viewer: Some(user_id) }).await.expect("cancels");

    let again = harness.call(&request).await.expect("the retry answers");

    assert_eq!(again.status, OrderStatus::Cancelled, "the retry answers the order's status now");
    assert_eq!(harness.order_event_types(request.order_id).await.len(), 3, "OrderPlaced and the cancellation only");
    assert_eq!(harness.get(request.order_id).await.total, Money::eur(1_999));
    let mut stolen = request.clone();
    stolen.user_id = Uuid::now_v7();
    assert_eq!(harness.rejection(&stolen).await.kind, RejectionKind::Conflict, "another user's order id");
    harness.stop().await;
}

#[tokio::test]
async fn unknown_and_discontinued_products_are_invalid_and_named_by_their_line() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let retired = harness.catalog.add(product("Retired", 100, true));
    let request = place(Uuid::now_v7(), vec![item(kettle.id, 1), item(Uuid::now_v7(), 1), item(retired.id, 1)]);

    let rejection = harness.rejection(&request).await;

    assert_eq!(rejection.kind, RejectionKind::Invalid);
    let details = rejection.details.expect("the rejection names the fields");
    assert_eq!(details["errors"][0]["field"], "items[1].product_id");
    assert_eq!(details["errors"][1]["field"], "items[2].product_id");
    assert!(harness.order_events(request.order_id).await.is_empty(), "nothing was placed");
    harness.stop().await;
}

#[tokio::test]
async fn an_order_has_between_one_and_fifty_products() {
    let harness = Harness::start().await;
    let products: Vec<_> = (0..51).map(|n| harness.catalog.add(product(&format!("P{n}"), 100, false))).collect();
    let user_id = Uuid::now_v7();

    let empty = harness.rejection(&place(user_id, vec![])).await;
    let too_many = harness.rejection(&place(user_id, products.iter().map(|p| item(p.id, 1)).collect())).await;
    let fifty = harness.call(&place(user_id, products[..50].iter().map(|p| item(p.id, 1)).collect())).await;
    // 60 lines naming one product are one product.
    let repeated = harness.call(&place(user_id, (0..60).map(|_| item(products[0].id, 1)).collect())).await;

    for rejection in [empty, too_many] {
        assert_eq!(rejection.kind, RejectionKind::Invalid);
        assert_eq!(rejection.details.expect("details")["errors"][0]["field"], "items");
    }
    assert_eq!(fifty.expect("fifty products are fine").status, OrderStatus::Pending);
    let repeated = repeated.expect("one product repeated is fine");
    assert_eq!(harness.get(repeated.order_id).await.items[0].quantity, 60);
    harness.stop().await;
}

#[tokio::test]
async fn another_users_order_is_not_found_and_an_admin_sees_every_order() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let owner = Uuid::now_v7();
    let request = place(owner, vec![item(kettle.id, 1)]);
    harness.call(&request).await.expect("placing answers");

    let stranger = harness.rejection(&GetOrder { order_id: request.order_id, viewer: Some(Uuid::now_v7()) }).await;
    let missing = harness.rejection(&GetOrder { order_id: Uuid::now_v7(), viewer: None }).await;
    let stranger_cancel =
        harness.rejection(&CancelOrder { order_id: request.order_id, viewer: Some(Uuid::now_v7()) }).await;

    assert_eq!(stranger.kind, RejectionKind::NotFound);
    assert_eq!(missing.kind, RejectionKind::NotFound);
    assert_eq!(stranger_cancel.kind, RejectionKind::NotFound);
    assert_eq!(harness.get(request.order_id).await.status, OrderStatus::Pending, "nothing was cancelled");
    harness.stop().await;
}

#[tokio::test]
async fn orders_are_listed_newest_first_by_user_and_status_in_pages() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut placed = Vec::new();
    for user_id in [ann, bob, ann, ann, bob] {
        placed.push(harness.call(&place(user_id, vec![item(kettle.id, 1)])).await.expect("placed").order_id);
    }
    harness.call(&CancelOrder { order_id: placed[2], viewer: None }).await.expect("cancels");

    let everyone = harness.call(&list(None, None, 100, None)).await.expect("lists");
    let anns: Vec<Uuid> =
        harness.call(&list(Some(ann), None, 100, None)).await.expect("lists").items.iter().map(|o| o.id).collect();
    let cancelled = harness.call(&list(None, Some(OrderStatus::Cancelled), 100, None)).await.expect("lists");
    let anns_pending = harness.call(&list(Some(ann), Some(OrderStatus::Pending), 100, None)).await.expect("lists");

    let newest_first: Vec<Uuid> = placed.iter().rev().copied().collect();
    assert_eq!(everyone.items.iter().map(|order| order.id).collect::<Vec<_>>(), newest_first);
    assert_eq!(everyone.next_cursor, None);
    assert_eq!(anns, vec![placed[3], placed[2], placed[0]]);
    assert_eq!(cancelled.items.iter().map(|order| order.id).collect::<Vec<_>>(), vec![placed[2]]);
    assert_eq!(cancelled.items[0].status, OrderStatus::Cancelled, "the list reads the cancellation at once");
    assert_eq!(anns_pending.items.iter().map(|order| order.id).collect::<Vec<_>>(), vec![placed[3], placed[0]]);

    let first = harness.call(&list(None, None, 2, None)).await.expect("lists");
    let second = harness.call(&list(None, None, 2, first.next_cursor.clone())).await.expect("lists");
    let third = harness.call(&list(None, None, 2, second.next_cursor.clone())).await.expect("lists");
    let paged: Vec<Uuid> = [first.items, second.items, third.items].concat().iter().map(|order| order.id).collect();
    assert_eq!(paged, newest_first);
    assert_eq!(third.next_cursor, None, "the last page has no cursor");
    let exactly = harness.call(&list(None, None, 5, None)).await.expect("lists");
    assert_eq!(exactly.next_cursor, None, "no empty last page");
    harness.stop().await;
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_invalid_and_named() {
    let harness = Harness::start().await;
    for (request, field) in [
        (list(None, None, 0, None), "limit"),
        (list(None, None, 101, None), "limit"),
        (list(None, None, 10, Some("not a cursor".into())), "cursor"),
        (list(None, None, 10, Some("o".into())), "cursor"),
        (list(None, None, 10, Some("o-1".into())), "cursor"),
    ] {
        let rejection = harness.rejection(&request).await;
        assert_eq!(rejection.kind, RejectionKind::Invalid);
        assert_eq!(rejection.details.expect("details")["errors"][0]["field"], field);
    }
    harness.stop().await;
}

#[tokio::test]
async fn cancelling_records_who_asked_and_answers_the_cancelled_order_again() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let owner = Uuid::now_v7();
    let request = place(owner, vec![item(kettle.id, 1)]);
    harness.call(&request).await.expect("placing answers");

    let cancelled =
        harness.call(&CancelOrder { order_id: request.order_id, viewer: Some(owner) }).await.expect("cancels");
    let again = harness.call(&CancelOrder { order_id: request.order_id, viewer: Some(owner) }).await.expect("again");

    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let statuses: Vec<OrderStatus> = cancelled.history.iter().map(|change| change.status).collect();
    assert_eq!(statuses, vec![OrderStatus::Pending, OrderStatus::Cancelled]);
    assert_eq!(cancelled.version, 3);
    assert_eq!(again, cancelled, "cancelling again answers the same order");
    assert_eq!(
        harness.order_event_types(request.order_id).await,
        vec!["OrderPlaced", "OrderCancellationRequested", "OrderCancelled"]
    );
    let events = harness.order_events(request.order_id).await;
    let requested: serde_json::Value = events[1].payload.to_value().expect("json");
    assert_eq!(requested["requested_by"], owner.to_string());
    harness.stop().await;
}

#[tokio::test]
async fn a_confirmed_order_ships_once_and_then_cannot_be_cancelled() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let owner = Uuid::now_v7();
    let order_id = harness.call(&place(owner, vec![item(kettle.id, 1)])).await.expect("placed").order_id;
    let ship =
        |tracking_number: &str| ShipOrder { order_id, carrier: "DHL".into(), tracking_number: tracking_number.into() };

    let too_early = harness.rejection(&ship("JD0001")).await;
    confirm(&harness, order_id, owner).await;
    let shipped = harness.call(&ship("JD0001")).await.expect("ships");
    let retried = harness.call(&ship("JD0001")).await.expect("the same dispatch answers again");
    let other = harness.rejection(&ship("JD0002")).await;
    let cancel = harness.rejection(&CancelOrder { order_id, viewer: Some(owner) }).await;
    let blank = harness.rejection(&ShipOrder { order_id, carrier: " ".into(), tracking_number: "X".into() }).await;
    let unknown = harness.rejection(&ShipOrder { order_id: Uuid::now_v7(), ..ship("JD0001") }).await;

    assert_eq!(too_early.kind, RejectionKind::Conflict, "a pending order does not ship");
    assert_eq!(shipped.status, OrderStatus::Shipped);
    assert_eq!(retried, shipped);
    assert_eq!(other.kind, RejectionKind::Conflict);
    assert_eq!(cancel.kind, RejectionKind::Conflict);
    assert_eq!(cancel.message, "the order has been dispatched");
    assert_eq!(blank.kind, RejectionKind::Invalid);
    assert_eq!(blank.details.expect("details")["errors"][0]["field"], "carrier");
    assert_eq!(unknown.kind, RejectionKind::NotFound);
    harness.stop().await;
}

#[tokio::test]
async fn a_rejected_order_cannot_be_cancelled() {
    let harness = Harness::start().await;
    let kettle = harness.catalog.add(product("Kettle", 1_999, false));
    let owner = Uuid::now_v7();
    let order_id = harness.call(&place(owner, vec![item(kettle.id, 1)])).await.expect("placed").order_id;
    let failed = contracts::inventory::InventoryEvent::StockReservationFailed {
        order_id,
        product_id: kettle.id,
        requested: 1,
        available: 0,
    };
    harness.inventory_records(order_id, failed).await;
    harness.wait_for_status(order_id, OrderStatus::Rejected).await;

    let rejection = harness.rejection(&CancelOrder { order_id, viewer: None }).await;

    assert_eq!(rejection.kind, RejectionKind::Conflict);
    harness.stop().await;
}
