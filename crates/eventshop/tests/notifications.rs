//! Notifications end to end through HTTP (SPEC §2.7, §4): the buyer hears of each step of
//! an order, administrators of low stock, each user only of their own; and with SMTP
//! configured in the shop's config file, the buyer gets the email once, from a real SMTP
//! server that the test runs.

#[macro_use]
mod support;

use std::time::Duration;

use notifications::testing::SmtpSink;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestShop, eventually, send};

on_both_deployments!(
    a_confirmed_and_shipped_order_notifies_its_buyer_only,
    a_rejected_order_tells_the_buyer_why,
    a_notification_is_marked_read_by_its_owner_only,
    low_stock_notifies_the_administrator,
);

const PRICE: i64 = 1_000;

fn address() -> Value {
    json!({"name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// A product at 10.00 EUR with `stock` units; answers its id.
async fn stocked_product(shop: &TestShop, admin: &str, stock: i64) -> String {
    let sku = format!("N-{}", uuid::Uuid::now_v7().simple());
    let product = shop.product(admin, &sku, "Notified Mug", PRICE, "kitchen").await;
    let id = product["id"].as_str().unwrap().to_owned();
    let path = format!("/api/inventory/{id}/restock");
    let (status, _) =
        send(shop.request(Method::POST, &path).bearer_auth(admin).json(&json!({"quantity": stock}))).await;
    assert_eq!(status, StatusCode::OK);
    id
}

async fn deposit(shop: &TestShop, token: &str, amount: i64) {
    let body = json!({"amount": {"amount": amount, "currency": "EUR"}});
    let (status, _) = send(shop.request(Method::POST, "/api/wallet/deposits").bearer_auth(token).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
}

/// Places an order; answers its id.
async fn place(shop: &TestShop, token: &str, product: &str, quantity: i64, payment: Value) -> String {
    let body = json!({"items": [{"product_id": product, "quantity": quantity}], "shipping_address": address(), "payment_method": payment});
    let (status, accepted) = send(shop.request(Method::POST, "/api/orders").bearer_auth(token).json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    accepted["order_id"].as_str().unwrap().to_owned()
}

async fn settled(shop: &TestShop, token: &str, order: &str, statuses: &[&str]) -> Value {
    eventually(&format!("order {order} to reach {statuses:?}"), || async {
        let (_, order) = send(shop.request(Method::GET, &format!("/api/orders/{order}")).bearer_auth(token)).await;
        statuses.contains(&order["status"].as_str().unwrap_or("")).then_some(order)
    })
    .await
}

/// The user's notifications, newest first (first page of 100).
async fn notifications(shop: &TestShop, token: &str) -> Vec<Value> {
    let (status, page) = send(shop.request(Method::GET, "/api/notifications?limit=100").bearer_auth(token)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Waits for the user's notification of `kind` (about `order`, if given) and answers it.
async fn notification(shop: &TestShop, token: &str, kind: &str, order: Option<&str>) -> Value {
    eventually(&format!("a {kind} notification"), || async {
        notifications(shop, token).await.into_iter().find(|notification| {
            notification["kind"] == kind && order.is_none_or(|order| notification["order_id"] == order)
        })
    })
    .await
}

fn has_the_fields_of_a_notification(notification: &Value) {
    for field in ["id", "kind", "subject", "body", "order_id", "created_at", "read"] {
        assert!(notification.get(field).is_some(), "{field} is missing from {notification}");
    }
}

async fn a_confirmed_and_shipped_order_notifies_its_buyer_only(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 10).await;
    let (_, buyer) = shop.customer("Ann").await;
    let (_, stranger) = shop.customer("Eve").await;
    deposit(shop, &buyer, 5_000).await;

    let order_id = place(shop, &buyer, &product, 2, json!({"type": "wallet"})).await;
    settled(shop, &buyer, &order_id, &["confirmed"]).await;

    let confirmed = notification(shop, &buyer, "order_confirmed", Some(&order_id)).await;
    has_the_fields_of_a_notification(&confirmed);
    assert_eq!(confirmed["subject"], format!("Your order {order_id} is confirmed"));
    assert!(confirmed["body"].as_str().unwrap().contains("2 items for 20.00 EUR"), "{confirmed}");
    assert_eq!((confirmed["read"].as_bool(), confirmed["email"].as_str()), (Some(false), Some("not_sent")));

    let dispatch = json!({"carrier": "DHL", "tracking_number": "JJD000123"});
    let path = format!("/api/shipments/{order_id}/dispatch");
    let shipment = eventually("the shipment to be dispatched", || async {
        let (status, shipment) = send(shop.request(Method::POST, &path).bearer_auth(&admin).json(&dispatch)).await;
        (status == StatusCode::OK).then_some(shipment)
    })
    .await;
    let shipment_id = shipment["id"].as_str().unwrap();
    let dispatched = notification(shop, &buyer, "shipment_dispatched", Some(&order_id)).await;
    let body = dispatched["body"].as_str().unwrap();
    assert!(body.contains("DHL") && body.contains("JJD000123"), "{dispatched}");
    let (status, _) =
        send(shop.request(Method::POST, &format!("/api/shipments/{shipment_id}/deliver")).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    notification(shop, &buyer, "shipment_delivered", Some(&order_id)).await;

    let kinds: Vec<Value> = notifications(shop, &buyer).await.into_iter().map(|item| item["kind"].clone()).collect();
    assert_eq!(kinds, ["shipment_delivered", "shipment_dispatched", "order_confirmed"], "newest first, once each");
    assert!(notifications(shop, &stranger).await.is_empty(), "another user hears nothing of it");
    let (status, _) = send(shop.request(Method::GET, "/api/notifications")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn a_rejected_order_tells_the_buyer_why(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 10).await;
    let (_, buyer) = shop.customer("Cid").await;

    let declined = place(shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_chargeDeclined"})).await;
    settled(shop, &buyer, &declined, &["rejected"]).await;
    let rejected = notification(shop, &buyer, "order_rejected", Some(&declined)).await;
    has_the_fields_of_a_notification(&rejected);
    assert_eq!(rejected["subject"], format!("Your order {declined} could not be completed"));
    assert!(rejected["body"].as_str().unwrap().contains("the payment was declined"), "{rejected}");

    let too_many = place(shop, &buyer, &product, 11, json!({"type": "card", "token": "tok_visa"})).await;
    settled(shop, &buyer, &too_many, &["rejected"]).await;
    let out_of_stock = notification(shop, &buyer, "order_rejected", Some(&too_many)).await;
    assert!(out_of_stock["body"].as_str().unwrap().contains("out of stock"), "{out_of_stock}");
    assert_eq!(notifications(shop, &buyer).await.len(), 2);
}

async fn a_notification_is_marked_read_by_its_owner_only(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 10).await;
    let (_, buyer) = shop.customer("Fay").await;
    let (_, stranger) = shop.customer("Eve").await;
    let first = place(shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_visa"})).await;
    let second = place(shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_chargeDeclined"})).await;
    let confirmed = notification(shop, &buyer, "order_confirmed", Some(&first)).await;
    notification(shop, &buyer, "order_rejected", Some(&second)).await;
    let id = confirmed["id"].as_str().unwrap();
    let path = format!("/api/notifications/{id}/read");

    let (status, _) = send(shop.request(Method::POST, &path).bearer_auth(&stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's notification is not found");
    let (status, read) = send(shop.request(Method::POST, &path).bearer_auth(&buyer)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!((read["id"].as_str(), read["read"].as_bool()), (Some(id), Some(true)));
    assert!(read["read_at"].is_string());
    let (status, again) = send(shop.request(Method::POST, &path).bearer_auth(&buyer)).await;
    assert_eq!((status, &again), (StatusCode::OK, &read), "marking again answers the same");

    // Read at once in the list; the unread filter leaves it out.
    let listed = notifications(shop, &buyer).await;
    assert!(listed.iter().any(|item| item["id"] == id && item["read"] == true));
    let (_, unread) = send(shop.request(Method::GET, "/api/notifications?unread=true").bearer_auth(&buyer)).await;
    let unread: Vec<&Value> = unread["items"].as_array().unwrap().iter().collect();
    assert_eq!(unread.len(), 1);
    assert_eq!(unread[0]["order_id"], second.as_str());

    let (_, page) = send(shop.request(Method::GET, "/api/notifications?limit=1").bearer_auth(&buyer)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = send(
        shop.request(Method::GET, "/api/notifications")
            .query(&[("limit", "1"), ("cursor", cursor)])
            .bearer_auth(&buyer),
    )
    .await;
    assert_eq!(rest["next_cursor"], Value::Null);
    // The two orders' notifications came in whichever order the saga finished them.
    let paged = [&page["items"][0]["id"], &rest["items"][0]["id"]];
    let newest_first: Vec<&Value> = listed.iter().map(|item| &item["id"]).collect();
    assert_eq!(paged[..], newest_first[..], "one page after the other, newest first");

    for (query, field) in [("unread=maybe", "unread"), ("limit=0", "limit"), ("cursor=bogus", "cursor")] {
        let (status, problem) =
            send(shop.request(Method::GET, &format!("/api/notifications?{query}")).bearer_auth(&buyer)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) =
        send(shop.request(Method::POST, "/api/notifications/not-a-uuid/read").bearer_auth(&buyer)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = send(shop.request(Method::POST, &path)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn low_stock_notifies_the_administrator(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = stocked_product(shop, &admin, 6).await;
    let (_, buyer) = shop.customer("Gus").await;

    // 6 units, 2 sold: 4 left, under the default threshold of 5.
    let order = place(shop, &buyer, &product, 2, json!({"type": "card", "token": "tok_visa"})).await;
    settled(shop, &buyer, &order, &["confirmed"]).await;

    let alert = eventually("the low-stock alert", || async {
        notifications(shop, &admin).await.into_iter().find(|item| item["product_id"] == product.as_str())
    })
    .await;
    has_the_fields_of_a_notification(&alert);
    assert_eq!((alert["kind"].as_str(), &alert["order_id"]), (Some("low_stock"), &Value::Null));
    assert_eq!(alert["subject"], format!("Low stock: product {product}"));
    assert!(alert["body"].as_str().unwrap().contains("Only 4 units"), "{alert}");

    // Once per crossing: one more sale while low alerts no one again.
    let another = place(shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_visa"})).await;
    settled(shop, &buyer, &another, &["confirmed"]).await;
    notification(shop, &buyer, "order_confirmed", Some(&another)).await;
    let alerts = notifications(shop, &admin).await.into_iter().filter(|item| item["product_id"] == product.as_str());
    assert_eq!(alerts.count(), 1);
    let kinds: Vec<Value> = notifications(shop, &buyer).await.into_iter().map(|item| item["kind"].clone()).collect();
    assert_eq!(kinds, ["order_confirmed", "order_confirmed"], "the buyer hears nothing of the stock");
}

/// With `[settings.notifications]` in the shop's config file, a confirmed order's
/// notification reaches the buyer's mailbox on a real SMTP server, once, and the API says
/// it was delivered.
#[tokio::test(flavor = "multi_thread")]
async fn the_buyer_gets_the_email_once_through_the_configured_smtp_server() {
    let sink = SmtpSink::start().await.expect("the SMTP sink listens");
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("shop.toml");
    let settings = format!(
        "[settings.notifications]\nsmtp_url = \"{}\"\nsmtp_from = \"eventshop <shop@shop.test>\"\n",
        sink.url()
    );
    std::fs::write(&config, settings).unwrap();
    let shop = TestShop::start_embedded_in(directory, &["--config", config.to_str().unwrap()]).await;
    let admin = shop.admin().await;
    let product = stocked_product(&shop, &admin, 10).await;
    let (email, buyer) = shop.customer("Ida").await;

    let order_id = place(&shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_visa"})).await;
    settled(&shop, &buyer, &order_id, &["confirmed"]).await;

    let subject = format!("Your order {order_id} is confirmed");
    let delivered = eventually("the email to be recorded delivered", || async {
        let notification = notification(&shop, &buyer, "order_confirmed", Some(&order_id)).await;
        (notification["email"] == "delivered").then_some(notification)
    })
    .await;
    let to_buyer = |received: &[notifications::testing::ReceivedMail]| {
        received.iter().filter(|mail| mail.to == [email.clone()]).cloned().collect::<Vec<_>>()
    };
    // Past a few rounds of the outbox: nothing is sent twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = to_buyer(&sink.received());
    assert_eq!(mails.len(), 1, "exactly one email to the buyer: {mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.subject().as_deref(), Some(subject.as_str()));
    assert_eq!(mail.from, "shop@shop.test");
    assert!(mail.body().contains(&format!("Order {order_id} is confirmed")), "{}", mail.body());
    assert_eq!(mail.header("Message-ID"), Some(format!("<{}@eventshop>", delivered["id"].as_str().unwrap())));
    assert_eq!(sink.refused(), 0);

    // A restart replays the outbox from the store and sends nothing again. It is given
    // another server in the environment, which wins over the file: later emails go there.
    let directory = shop.kill().await;
    let second_sink = SmtpSink::start().await.expect("the second SMTP sink listens");
    let data = directory.path().join("data").to_str().unwrap().to_owned();
    let arguments = ["--listen", "127.0.0.1:0", "--data-dir", &data, "--config", config.to_str().unwrap()];
    let shop = TestShop::start_in(directory, &arguments, &[("EVENTSHOP_SMTP_URL", &second_sink.url())]).await;
    let buyer = shop.token(&email, support::PASSWORD).await.access;
    assert_eq!(notification(&shop, &buyer, "order_confirmed", Some(&order_id)).await["email"], "delivered");

    let later = place(&shop, &buyer, &product, 1, json!({"type": "card", "token": "tok_visa"})).await;
    settled(&shop, &buyer, &later, &["confirmed"]).await;
    let received = second_sink.wait_for(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later_mails = to_buyer(&second_sink.received());
    assert_eq!(later_mails.len(), 1, "{received:?}");
    assert_eq!(later_mails[0].subject(), Some(format!("Your order {later} is confirmed")));
    assert_eq!(to_buyer(&sink.received()).len(), 1, "still one email through the first server after a restart");
}
