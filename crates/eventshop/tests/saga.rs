//! The checkout saga end to end through HTTP (SPEC §2, §3): every path, the races, and a
//! crash. Flows run on the embedded deployment and on PostgreSQL + NATS.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use futures::future::join_all;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{TestShop, eventually, send};

on_both_deployments!(
    a_wallet_order_is_confirmed_shipped_and_delivered,
    an_order_beyond_the_stock_is_rejected,
    a_declined_card_releases_the_stock,
    a_wallet_without_funds_declines,
    cancelling_refunds_and_releases,
    a_cart_checks_out_and_empties,
    the_last_units_go_to_exactly_as_many_buyers,
    one_idempotency_key_places_one_order,
);

const PRICE: i64 = 1_000;

fn address() -> Value {
    json!({"name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

fn card(token: &str) -> Value {
    json!({"type": "card", "token": token})
}

fn wallet() -> Value {
    json!({"type": "wallet"})
}

/// A product at 10.00 EUR with `stock` units; answers its id.
async fn stocked_product(shop: &TestShop, admin: &str, stock: i64) -> String {
    let sku = format!("P-{}", uuid::Uuid::now_v7().simple());
    let product = shop.product(admin, &sku, "Saga Mug", PRICE, "kitchen").await;
    let id = product["id"].as_str().unwrap().to_owned();
    if stock > 0 {
        let path = format!("/api/inventory/{id}/restock");
        let (status, _) =
            send(shop.request(Method::POST, &path).bearer_auth(admin).json(&json!({"quantity": stock}))).await;
        assert_eq!(status, StatusCode::OK);
    }
    id
}

async fn deposit(shop: &TestShop, token: &str, amount: i64) {
    let body = json!({"amount": {"amount": amount, "currency": "EUR"}});
    let (status, _) = send(shop.request(Method::POST, "/api/wallet/deposits").bearer_auth(token).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn balance(shop: &TestShop, token: &str) -> i64 {
    let (_, wallet) = send(shop.request(Method::GET, "/api/wallet").bearer_auth(token)).await;
    wallet["balance"]["amount"].as_i64().unwrap()
}

async fn stock(shop: &TestShop, admin: &str, product: &str) -> Value {
    send(shop.request(Method::GET, &format!("/api/inventory/{product}")).bearer_auth(admin)).await.1
}

/// Places an order and checks the 202 answer; answers the order id.
async fn place(shop: &TestShop, token: &str, product: &str, quantity: i64, payment: Value) -> String {
    let body = json!({"items": [{"product_id": product, "quantity": quantity}], "shipping_address": address(), "payment_method": payment});
    let response = shop.request(Method::POST, "/api/orders").bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers().get(header::LOCATION).expect("a Location").to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["order_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/orders/{id}"));
    id
}

/// Waits until the order reaches one of `statuses`, and answers it.
async fn settled(shop: &TestShop, token: &str, order: &str, statuses: &[&str]) -> Value {
    eventually(&format!("order {order} to reach {statuses:?}"), || async {
        let (_, order) = send(shop.request(Method::GET, &format!("/api/orders/{order}")).bearer_auth(token)).await;
        statuses.contains(&order["status"].as_str().unwrap_or("")).then_some(order)
    })
    .await
}

fn statuses(order: &Value) -> Vec<&str> {
    order["history"].as_array().unwrap().iter().map(|change| change["status"].as_str().unwrap()).collect()
}

async fn a_wallet_order_is_confirmed_shipped_and_delivered(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 5).await;
    let (_, buyer) = shop.customer("Ann").await;
    deposit(shop, &buyer, 5_000).await;

    let order_id = place(shop, &buyer, &product, 2, wallet()).await;
    let order = settled(shop, &buyer, &order_id, &["confirmed", "rejected"]).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(statuses(&order), ["pending", "stock_reserved", "paid", "confirmed"]);
    assert_eq!(order["total"], json!({"amount": 2 * PRICE, "currency": "EUR"}));
    assert_eq!(order["items"][0]["unit_price"]["amount"], PRICE, "the price at placement is recorded");
    assert_eq!(balance(shop, &buyer).await, 5_000 - 2 * PRICE);
    let levels = eventually("the stock to be committed", || async {
        let levels = stock(shop, &admin, &product).await;
        (levels["on_hand"] == 3).then_some(levels)
    })
    .await;
    assert_eq!(levels, json!({"product_id": product, "on_hand": 3, "reserved": 0, "available": 3}));

    // Another user cannot see it.
    let (_, stranger) = shop.customer("Eve").await;
    let (status, _) = send(shop.request(Method::GET, &format!("/api/orders/{order_id}")).bearer_auth(&stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, mine) = send(shop.request(Method::GET, "/api/orders").bearer_auth(&buyer)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = send(shop.request(Method::GET, "/api/orders").bearer_auth(&stranger)).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let listed = |page: &Value| page["items"].as_array().unwrap().iter().any(|order| order["id"] == order_id.as_str());
    let (_, confirmed) =
        send(shop.request(Method::GET, "/api/orders?status=confirmed&limit=100").bearer_auth(&admin)).await;
    assert!(listed(&confirmed), "an admin sees every order, by status");
    let (_, rejected) =
        send(shop.request(Method::GET, "/api/orders?status=rejected&limit=100").bearer_auth(&admin)).await;
    assert!(!listed(&rejected));

    // Shipping: the shipment appears, is dispatched, then cancelling is too late.
    let shipment = eventually("the shipment", || async {
        let (status, shipment) =
            send(shop.request(Method::GET, &format!("/api/shipments/{order_id}")).bearer_auth(&buyer)).await;
        (status == StatusCode::OK).then_some(shipment)
    })
    .await;
    assert_eq!(shipment["status"], "pending");
    let shipment_id = shipment["id"].as_str().unwrap();
    let dispatch = json!({"carrier": "DHL", "tracking_number": "JJD000123"});
    let (status, _) = send(
        shop.request(Method::POST, &format!("/api/shipments/{shipment_id}/dispatch"))
            .bearer_auth(&buyer)
            .json(&dispatch),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, dispatched) = send(
        shop.request(Method::POST, &format!("/api/shipments/{shipment_id}/dispatch"))
            .bearer_auth(&admin)
            .json(&dispatch),
    )
    .await;
    assert_eq!((status, dispatched["status"].as_str()), (StatusCode::OK, Some("dispatched")), "{dispatched}");
    settled(shop, &buyer, &order_id, &["shipped"]).await;
    let (status, _) =
        send(shop.request(Method::POST, &format!("/api/orders/{order_id}/cancel")).bearer_auth(&buyer)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, _) =
        send(shop.request(Method::POST, &format!("/api/shipments/{shipment_id}/deliver")).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let order = settled(shop, &buyer, &order_id, &["delivered"]).await;
    assert_eq!(statuses(&order), ["pending", "stock_reserved", "paid", "confirmed", "shipped", "delivered"]);
}

async fn an_order_beyond_the_stock_is_rejected(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 3).await;
    let (_, buyer) = shop.customer("Bob").await;
    deposit(shop, &buyer, 50_000).await;
    let order_id = place(shop, &buyer, &product, 4, wallet()).await;
    let order = settled(shop, &buyer, &order_id, &["rejected", "confirmed"]).await;
    assert_eq!((order["status"].as_str(), order["reason"].as_str()), (Some("rejected"), Some("out_of_stock")));
    assert_eq!(balance(shop, &buyer).await, 50_000);
    assert_eq!(stock(shop, &admin, &product).await["available"], 3);
}

async fn a_declined_card_releases_the_stock(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 3).await;
    let (_, buyer) = shop.customer("Cid").await;
    let order_id = place(shop, &buyer, &product, 2, card("tok_chargeDeclined")).await;
    let order = settled(shop, &buyer, &order_id, &["rejected", "confirmed"]).await;
    assert_eq!(order["reason"], "payment_declined", "{order}");
    eventually("the reservation to be released", || async {
        let levels = stock(shop, &admin, &product).await;
        (levels["available"] == 3 && levels["reserved"] == 0).then_some(())
    })
    .await;

    // The order's own event stream tells the story and ends.
    let response =
        shop.request(Method::GET, &format!("/api/orders/{order_id}/events")).bearer_auth(&buyer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), response.text())
        .await
        .expect("the stream closes at a terminal status")
        .unwrap();
    assert!(text.contains("pending") && text.contains("rejected"), "{text}");

    let (status, problem) = send(shop.request(Method::POST, "/api/orders").bearer_auth(&buyer).json(&json!({
        "items": [{"product_id": product, "quantity": 1}], "shipping_address": address(), "payment_method": card("tok_unknown")
    })))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

async fn a_wallet_without_funds_declines(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 3).await;
    let (_, buyer) = shop.customer("Dee").await;
    deposit(shop, &buyer, PRICE / 2).await;
    let order_id = place(shop, &buyer, &product, 1, wallet()).await;
    let order = settled(shop, &buyer, &order_id, &["rejected", "confirmed"]).await;
    assert_eq!(order["reason"], "payment_declined");
    assert_eq!(balance(shop, &buyer).await, PRICE / 2, "never below zero, nothing taken");
    eventually("the reservation to be released", || async {
        (stock(shop, &admin, &product).await["available"] == 3).then_some(())
    })
    .await;
}

async fn cancelling_refunds_and_releases(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 4).await;
    let (_, buyer) = shop.customer("Fay").await;
    deposit(shop, &buyer, 10_000).await;
    let order_id = place(shop, &buyer, &product, 3, wallet()).await;
    settled(shop, &buyer, &order_id, &["confirmed"]).await;
    assert_eq!(balance(shop, &buyer).await, 10_000 - 3 * PRICE);

    let (status, _) =
        send(shop.request(Method::POST, &format!("/api/orders/{order_id}/cancel")).bearer_auth(&buyer)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let order = settled(shop, &buyer, &order_id, &["cancelled"]).await;
    assert_eq!(order["status"], "cancelled");
    eventually("the refund", || async { (balance(shop, &buyer).await == 10_000).then_some(()) }).await;
    eventually("the stock back", || async {
        let levels = stock(shop, &admin, &product).await;
        (levels["on_hand"] == 4 && levels["available"] == 4).then_some(())
    })
    .await;
    let (_, transactions) = send(shop.request(Method::GET, "/api/wallet/transactions").bearer_auth(&buyer)).await;
    let kinds: Vec<&str> =
        transactions["items"].as_array().unwrap().iter().map(|item| item["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["refund", "capture", "deposit"]);
    eventually("the shipment cancelled", || async {
        let (_, shipment) =
            send(shop.request(Method::GET, &format!("/api/shipments/{order_id}")).bearer_auth(&admin)).await;
        (shipment["status"] == "cancelled").then_some(())
    })
    .await;
}

async fn a_cart_checks_out_and_empties(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 10).await;
    let (_, buyer) = shop.customer("Gus").await;
    let (status, cart) = send(
        shop.request(Method::PUT, &format!("/api/cart/items/{product}"))
            .bearer_auth(&buyer)
            .json(&json!({"quantity": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(cart["items"][0]["line_total"]["amount"], 3 * PRICE);
    assert_eq!(cart["total"]["amount"], 3 * PRICE);
    let (status, _) = send(
        shop.request(Method::PUT, &format!("/api/cart/items/{}", uuid::Uuid::now_v7()))
            .bearer_auth(&buyer)
            .json(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let checkout = json!({"shipping_address": address(), "payment_method": card("tok_visa")});
    let response =
        shop.request(Method::POST, "/api/cart/checkout").bearer_auth(&buyer).json(&checkout).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let order_id = accepted["order_id"].as_str().unwrap();
    settled(shop, &buyer, order_id, &["confirmed"]).await;
    eventually("the cart to empty", || async {
        let (_, cart) = send(shop.request(Method::GET, "/api/cart").bearer_auth(&buyer)).await;
        cart["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
}

async fn the_last_units_go_to_exactly_as_many_buyers(shop: &TestShop) {
    const UNITS: i64 = 5;
    const BUYERS: usize = 12;
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, UNITS).await;
    let buyers = join_all((0..BUYERS).map(|_| shop.customer("Buyer"))).await;
    let orders = join_all(buyers.iter().map(|(_, token)| place(shop, token, &product, 1, card("tok_visa")))).await;
    let mut outcomes = BTreeMap::new();
    for ((_, token), order) in buyers.iter().zip(&orders) {
        let order = settled(shop, token, order, &["confirmed", "rejected"]).await;
        *outcomes.entry(order["status"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(outcomes.get("confirmed"), Some(&(UNITS as usize)), "{outcomes:?}");
    assert_eq!(outcomes.get("rejected"), Some(&(BUYERS - UNITS as usize)), "{outcomes:?}");
    let levels = eventually("every confirmed order committed", || async {
        let levels = stock(shop, &admin, &product).await;
        (levels["reserved"] == 0).then_some(levels)
    })
    .await;
    assert_eq!((levels["on_hand"].as_i64(), levels["available"].as_i64()), (Some(0), Some(0)));
}

async fn one_idempotency_key_places_one_order(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 10).await;
    let (_, buyer) = shop.customer("Hal").await;
    deposit(shop, &buyer, 10_000).await;
    let body = json!({"items": [{"product_id": product, "quantity": 1}], "shipping_address": address(), "payment_method": wallet()});
    let answers = join_all((0..8).map(|_| {
        send(
            shop.request(Method::POST, "/api/orders")
                .bearer_auth(&buyer)
                .header("Idempotency-Key", "order-once")
                .json(&body),
        )
    }))
    .await;
    let ids: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|(status, accepted)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{accepted}");
            accepted["order_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let order_id = *ids.iter().next().unwrap();
    settled(shop, &buyer, order_id, &["confirmed"]).await;
    let (_, mine) = send(shop.request(Method::GET, "/api/orders").bearer_auth(&buyer)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(balance(shop, &buyer).await, 10_000 - PRICE, "charged once");
}

/// A shop killed with SIGKILL while orders flow finishes every accepted order after a
/// restart, and the stock and money add up.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loses_no_accepted_order() {
    const UNITS: i64 = 20;
    const BUYERS: usize = 4;
    let shop = TestShop::embedded().await;
    let admin = shop.admin().await;
    let product = stocked_product(&shop, &admin, UNITS).await;
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        let (email, token) = shop.customer("Ida").await;
        deposit(&shop, &token, 100_000).await;
        buyers.push((email, token));
    }

    // Each buyer places orders one after another until the shop dies under them; an order
    // counts as accepted once its 202 arrived.
    let body = json!({"items": [{"product_id": product, "quantity": 1}], "shipping_address": address(), "payment_method": wallet()});
    let placing = buyers.iter().map(|(_, token)| {
        let request = shop.request(Method::POST, "/api/orders").bearer_auth(token).json(&body);
        async move {
            let mut accepted = Vec::new();
            while let Some(attempt) = request.try_clone() {
                match attempt.send().await {
                    Ok(response) if response.status() == StatusCode::ACCEPTED => {
                        let answer: Value = response.json().await.unwrap_or(Value::Null);
                        if let Some(id) = answer["order_id"].as_str() {
                            accepted.push(id.to_owned());
                        }
                    }
                    _ => break,
                }
            }
            accepted
        }
    });
    let placing = tokio::spawn(join_all(placing));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let directory = shop.kill().await;
    let accepted = placing.await.unwrap();
    assert!(accepted.iter().map(Vec::len).sum::<usize>() > 0, "orders were flowing when the shop was killed");

    let shop = TestShop::start_embedded_in(directory, &[]).await;
    let admin = shop.admin().await;
    let mut confirmed = 0;
    let mut spent = 0;
    for ((email, _), orders) in buyers.iter().zip(&accepted) {
        let token = shop.token(email, support::PASSWORD).await.access;
        let mut bought = 0;
        for order in orders {
            let order = settled(&shop, &token, order, &["confirmed", "rejected"]).await;
            if order["status"] == "confirmed" {
                bought += 1;
            } else {
                assert_eq!(order["reason"], "out_of_stock", "{order}");
            }
        }
        // Orders placed but not yet answered when the shop died may have gone through too;
        // the wallet shows everything that was charged.
        let charged = 100_000 - balance(&shop, &token).await;
        assert!(charged >= bought * PRICE, "every confirmed order was charged");
        assert_eq!(charged % PRICE, 0);
        confirmed += bought;
        spent += charged;
    }
    let accepted_count: usize = accepted.iter().map(Vec::len).sum();
    eprintln!(
        "{accepted_count} orders accepted before the crash, {confirmed} confirmed, {} units charged",
        spent / PRICE
    );
    assert!(confirmed <= UNITS, "never oversold");
    let levels = eventually("the stock settled", || async {
        let levels = stock(&shop, &admin, &product).await;
        (levels["reserved"] == 0).then_some(levels)
    })
    .await;
    assert_eq!(levels["on_hand"].as_i64(), Some(UNITS - spent / PRICE), "units sold = money taken");
}

/// With a payment timeout shorter than the saga, deadlines race every step: an order may
/// time out before its stock is held, before it is charged, or after it was charged (a
/// late capture, refunded). Whatever won each race, every order ends confirmed or
/// rejected for the timeout, and stock and money add up exactly.
#[tokio::test(flavor = "multi_thread")]
async fn deadlines_compensate_whatever_step_they_interrupt() {
    const ORDERS: usize = 30;
    const UNITS: i64 = 100;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("eventshop.toml"), "[settings.orders]\npayment_timeout = \"1ms\"\n").unwrap();
    let shop = TestShop::start_embedded_in(directory, &[]).await;
    let admin = shop.admin().await;
    let product = stocked_product(&shop, &admin, UNITS).await;
    let (_, buyer) = shop.customer("Jo").await;
    deposit(&shop, &buyer, 1_000_000).await;

    let orders = join_all((0..ORDERS).map(|_| place(&shop, &buyer, &product, 1, wallet()))).await;
    let mut confirmed = 0;
    for order in &orders {
        let order = settled(&shop, &buyer, order, &["confirmed", "rejected", "cancelled"]).await;
        match order["status"].as_str() {
            Some("confirmed") => confirmed += 1,
            Some("rejected") => assert_eq!(order["reason"], "timeout", "{order}"),
            _ => panic!("unexpected outcome: {order}"),
        }
    }
    eprintln!("{confirmed} of {ORDERS} orders confirmed before their deadline");
    let expected_balance = 1_000_000 - confirmed * PRICE;
    eventually("every late capture refunded", || async {
        (balance(&shop, &buyer).await == expected_balance).then_some(())
    })
    .await;
    let levels = eventually("every reservation settled", || async {
        let levels = stock(&shop, &admin, &product).await;
        (levels["reserved"] == 0).then_some(levels)
    })
    .await;
    assert_eq!(levels["on_hand"].as_i64(), Some(UNITS - confirmed));
}
