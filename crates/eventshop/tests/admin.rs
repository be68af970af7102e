//! The admin routes end to end (SPEC §4, §6): traces of a saga across services, the event
//! browser, projections and their rebuild, services, consumers and dead letters, on the
//! embedded deployment and on PostgreSQL + NATS.

#[macro_use]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestShop, eventually, send};

on_both_deployments!(
    a_confirmed_order_is_traced_through_every_service,
    a_declined_card_is_traced_with_its_failure_and_compensation,
    the_event_browser_filters_and_pages,
    projections_list_and_rebuild_to_the_same_answers,
    services_consumers_and_dead_letters_are_listed,
    only_an_admin_may_look_and_bad_input_is_named,
);

fn order_body(product: &str, payment: Value) -> Value {
    json!({
        "items": [{"product_id": product, "quantity": 1}],
        "shipping_address": {"name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": payment,
    })
}

/// A product with stock; answers its id.
async fn stocked_product(shop: &TestShop, admin: &str) -> String {
    let sku = format!("A-{}", uuid::Uuid::now_v7().simple());
    let product = shop.product(admin, &sku, "Admin Mug", 1_000, "kitchen").await;
    let id = product["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        shop.request(Method::POST, &format!("/api/inventory/{id}/restock"))
            .bearer_auth(admin)
            .json(&json!({"quantity": 10})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    id
}

/// Places an order and waits until it settles; answers the order and the correlation id of
/// the request that placed it, which the whole saga carries.
async fn settled_order(shop: &TestShop, buyer: &str, product: &str, payment: Value) -> (Value, String) {
    let response =
        shop.request(Method::POST, "/api/orders").bearer_auth(buyer).json(&order_body(product, payment)).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let correlation_id = response.headers()["x-correlation-id"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let order_id = accepted["order_id"].as_str().unwrap().to_owned();
    let order = eventually("the order to settle", || async {
        let (_, order) = send(shop.request(Method::GET, &format!("/api/orders/{order_id}")).bearer_auth(buyer)).await;
        ["confirmed", "rejected"].contains(&order["status"].as_str().unwrap_or("")).then_some(order)
    })
    .await;
    (order, correlation_id)
}

/// The trace once it holds every event type of `expected`.
async fn trace_with(shop: &TestShop, admin: &str, correlation_id: &str, expected: &[&str]) -> Value {
    eventually(&format!("the trace to show {expected:?}"), || async {
        let (status, trace) =
            send(shop.request(Method::GET, &format!("/api/admin/traces/{correlation_id}")).bearer_auth(admin)).await;
        (status == StatusCode::OK && expected.iter().all(|wanted| !positions_of(&trace, wanted).is_empty()))
            .then_some(trace)
    })
    .await
}

fn positions_of(trace: &Value, event_type: &str) -> Vec<usize> {
    let items = trace["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    items.iter().enumerate().filter(|(_, item)| item["type"] == event_type).map(|(index, _)| index).collect()
}

fn first(trace: &Value, event_type: &str) -> usize {
    positions_of(trace, event_type)[0]
}

/// No event comes before the event that caused it.
fn assert_causal(trace: &Value) {
    let items = trace["items"].as_array().unwrap();
    for (index, item) in items.iter().enumerate() {
        if let Some(cause) = items.iter().position(|other| other["event_id"] == item["causation_id"]) {
            assert!(cause < index, "{} comes before its cause {}", item["type"], items[cause]["type"]);
        }
    }
}

async fn a_confirmed_order_is_traced_through_every_service(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin).await;
    let (_, buyer) = shop.customer("Tracy").await;
    let (order, correlation_id) =
        settled_order(shop, &buyer, &product, json!({"type": "card", "token": "tok_visa"})).await;
    assert_eq!(order["status"], "confirmed", "{order}");

    let expected = ["OrderPlaced", "StockReserved", "PaymentCaptured", "OrderConfirmed", "ShipmentCreated"];
    let trace = trace_with(shop, &admin, &correlation_id, &expected).await;
    assert_eq!(trace["correlation_id"], correlation_id.as_str());
    for service in ["orders", "inventory", "payments", "shipping"] {
        assert!(trace["services"].as_array().unwrap().contains(&json!(service)), "{service} in {}", trace["services"]);
    }
    let steps: Vec<usize> = expected.iter().map(|event_type| first(&trace, event_type)).collect();
    assert!(steps.windows(2).all(|pair| pair[0] < pair[1]), "causal order {steps:?}: {trace}");
    assert_causal(&trace);
    assert_eq!(trace["failed"], false);
    let placed = &trace["items"][steps[0]];
    assert_eq!((placed["service"].as_str(), placed["kind"].as_str()), (Some("orders"), Some("step")));
    for field in ["position", "event_id", "stream_id", "version", "schema_version", "recorded_at", "causation_id"] {
        assert!(!placed[field].is_null(), "{field} in {placed}");
    }
    assert_eq!(placed["payload"]["order_id"], order["id"], "{placed}");

    // The command that placed the order comes before the event it caused, which names it
    // as its cause.
    let trace = trace_with(shop, &admin, &correlation_id, &["PlaceOrder", "OrderPlaced"]).await;
    let (command, event) = (first(&trace, "PlaceOrder"), first(&trace, "OrderPlaced"));
    assert!(command < event, "PlaceOrder before OrderPlaced: {trace}");
    let place = &trace["items"][command];
    assert_eq!((place["kind"].as_str(), place["service"].as_str()), (Some("command"), Some("orders")), "{place}");
    assert_eq!((place["outcome"].as_str(), place["failed"].as_bool()), (Some("ok"), Some(false)), "{place}");
    assert_eq!(trace["items"][event]["causation_id"], place["message_id"], "{trace}");
    assert_eq!(place["correlation_id"], correlation_id.as_str());
    assert!(place.get("body").is_none() && !place.to_string().contains("tok_visa"), "no request body: {place}");
    assert_eq!(trace["failed"], false, "{trace}");
}

async fn a_declined_card_is_traced_with_its_failure_and_compensation(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin).await;
    let (_, buyer) = shop.customer("Dee").await;
    let card = json!({"type": "card", "token": "tok_chargeDeclined"});
    let (order, correlation_id) = settled_order(shop, &buyer, &product, card).await;
    assert_eq!(order["status"], "rejected", "{order}");

    let expected = ["OrderPlaced", "StockReserved", "PaymentDeclined", "StockReleased", "OrderRejected"];
    let trace = trace_with(shop, &admin, &correlation_id, &expected).await;
    assert_causal(&trace);
    assert_eq!((trace["failed"].as_bool(), trace["compensated"].as_bool()), (Some(true), Some(true)));
    let kind = |event_type: &str| trace["items"][first(&trace, event_type)]["kind"].as_str().unwrap().to_owned();
    assert_eq!(kind("PaymentDeclined"), "failure");
    assert_eq!(kind("OrderRejected"), "failure");
    assert_eq!(kind("StockReleased"), "compensation");
    assert!(first(&trace, "PaymentDeclined") < first(&trace, "StockReleased"));
}

async fn the_event_browser_filters_and_pages(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin).await;
    let (_, buyer) = shop.customer("Bea").await;
    let (_, correlation_id) = settled_order(shop, &buyer, &product, json!({"type": "card", "token": "tok_visa"})).await;
    let trace = trace_with(shop, &admin, &correlation_id, &["OrderConfirmed"]).await;
    let stream = trace["items"][first(&trace, "OrderPlaced")]["stream_id"].as_str().unwrap().to_owned();

    let get = |query: String| {
        let admin = admin.clone();
        async move { send(shop.request(Method::GET, &format!("/api/admin/events?{query}")).bearer_auth(&admin)).await }
    };
    let (status, placed) = get("type=OrderPlaced&limit=100".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    let items = placed["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|event| event["type"] == "OrderPlaced" && event["service"] == "orders"), "{placed}");

    let (_, of_stream) = get(format!("stream={stream}&limit=100")).await;
    let types: Vec<&str> =
        of_stream["items"].as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"OrderPlaced"), "{of_stream}");
    assert!(types.contains(&"OrderConfirmed"), "{types:?}");
    assert!(of_stream["items"].as_array().unwrap().iter().all(|event| event["stream_id"] == stream.as_str()));

    let (_, correlated) = get(format!("correlation_id={correlation_id}&limit=100")).await;
    let correlated = correlated["items"].as_array().unwrap().clone();
    // The trace holds the same events, and the commands beside them.
    let traced_events = trace["items"].as_array().unwrap().iter().filter(|item| item["kind"] != "command").count();
    assert_eq!(correlated.len(), traced_events, "{trace}");

    // Paging one event at a time walks the same events.
    let mut cursor: Option<String> = None;
    let mut walked = Vec::new();
    for _ in 0..100 {
        let query = match &cursor {
            Some(cursor) => format!("correlation_id={correlation_id}&limit=1&cursor={}", urlencode(cursor)),
            None => format!("correlation_id={correlation_id}&limit=1"),
        };
        let (status, page) = get(query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        walked.extend(page["items"].as_array().unwrap().iter().map(|event| event["event_id"].clone()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let all: Vec<Value> = correlated.iter().map(|event| event["event_id"].clone()).collect();
    assert_eq!(walked, all);

    // `after` is a position of one service's store.
    let (status, problem) = get("after=3".to_owned()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "after");
    let (status, after) = get("service=orders&after=1&limit=100".to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(after["items"].as_array().unwrap().iter().all(|event| event["position"].as_u64().unwrap() > 1));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn projections_list_and_rebuild_to_the_same_answers(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin).await;
    let (_, buyer) = shop.customer("Pia").await;
    settled_order(shop, &buyer, &product, json!({"type": "card", "token": "tok_visa"})).await;
    let (status, projections) = send(shop.request(Method::GET, "/api/admin/projections").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{projections}");
    let items = projections["items"].as_array().unwrap();
    let orders = items.iter().find(|projection| projection["name"] == "orders.orders").expect("the orders view");
    assert_eq!((orders["service"].as_str(), orders["status"].as_str()), (Some("orders"), Some("live")));
    assert!(orders["lag"].as_u64().is_some() && orders["position"].as_u64().unwrap() > 0, "{orders}");
    assert!(items.len() >= 5, "{projections}");

    let (_, before) = send(shop.request(Method::GET, "/api/orders?limit=100").bearer_auth(&admin)).await;
    let (status, rebuilding) =
        send(shop.request(Method::POST, "/api/admin/projections/orders.orders/rebuild").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{rebuilding}");
    assert_eq!(rebuilding["status"], "rebuilding");
    eventually("the rebuild to finish", || async {
        let (_, projections) = send(shop.request(Method::GET, "/api/admin/projections").bearer_auth(&admin)).await;
        let items = projections["items"].as_array()?.clone();
        items
            .iter()
            .any(|projection| projection["name"] == "orders.orders" && projection["status"] == "live")
            .then_some(())
    })
    .await;
    let (_, after) = send(shop.request(Method::GET, "/api/orders?limit=100").bearer_auth(&admin)).await;
    assert_eq!(before, after, "a rebuilt view answers the same");

    let (status, problem) =
        send(shop.request(Method::POST, "/api/admin/projections/no.such.view/rebuild").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("no.such.view"));
}

async fn services_consumers_and_dead_letters_are_listed(shop: &TestShop) {
    let admin = shop.admin().await;
    let (status, services) = send(shop.request(Method::GET, "/api/admin/services").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{services}");
    let items = services["items"].as_array().unwrap();
    for name in [
        "identity",
        "catalog",
        "inventory",
        "cart",
        "orders",
        "payments",
        "shipping",
        "reviews",
        "notifications",
        "recommendations",
    ] {
        let instance = items.iter().find(|instance| instance["name"] == name).unwrap_or_else(|| panic!("{name}"));
        for field in ["id", "version", "started_at", "uptime_seconds", "requests"] {
            assert!(!instance[field].is_null(), "{field} of {instance}");
        }
    }
    let identity = items.iter().find(|instance| instance["name"] == "identity").unwrap();
    assert!(identity["requests"].as_u64().unwrap() > 0, "the admin's login was a request: {identity}");

    let (status, consumers) = send(shop.request(Method::GET, "/api/admin/consumers").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{consumers}");
    for consumer in consumers["items"].as_array().unwrap() {
        assert!(consumer["position"].as_u64().is_some() && consumer["dead_letters"].as_u64().is_some(), "{consumer}");
    }
    let (status, letters) = send(shop.request(Method::GET, "/api/admin/dead-letters").bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{letters}");
    assert!(letters["items"].as_array().unwrap().is_empty(), "a healthy shop has none: {letters}");
    let unknown = uuid::Uuid::now_v7();
    for action in ["retry", "discard"] {
        let path = format!("/api/admin/dead-letters/{unknown}/{action}");
        let (status, _) = send(shop.request(Method::POST, &path).bearer_auth(&admin)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
}

async fn only_an_admin_may_look_and_bad_input_is_named(shop: &TestShop) {
    let (_, customer) = shop.customer("Carl").await;
    for path in ["/api/admin/services", "/api/admin/events", "/api/admin/projections", "/api/admin/consumers"] {
        let (status, _) = send(shop.request(Method::GET, path).bearer_auth(&customer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let (status, _) = send(shop.request(Method::GET, path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) =
        send(shop.request(Method::POST, "/api/admin/projections/orders.orders/rebuild").bearer_auth(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let admin = shop.admin().await;
    let bad = [
        ("/api/admin/traces/not-a-uuid", "correlation_id"),
        ("/api/admin/events?limit=0", "limit"),
        ("/api/admin/events?limit=101", "limit"),
        ("/api/admin/events?correlation_id=nope", "correlation_id"),
        ("/api/admin/events?cursor=garbage", "cursor"),
        ("/api/admin/dead-letters?limit=x", "limit"),
    ];
    for (path, field) in bad {
        let response = shop.request(Method::GET, path).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
        let (status, problem) = support::split(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    let unknown = uuid::Uuid::now_v7();
    let (status, _) =
        send(shop.request(Method::GET, &format!("/api/admin/traces/{unknown}")).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
