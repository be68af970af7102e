//! Reviews, ratings and recommendations end to end through HTTP: the verified-purchase
//! badge learned from a real order's delivery, one review per user and product, the
//! catalog's rating and its sort, recommendations from confirmed co-purchases, and the same
//! answers after the shop restarts on its data (every view rebuilt by replay). Flows run
//! on the embedded deployment and on PostgreSQL + NATS.

#[macro_use]
mod support;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{TestShop, eventually, send};
use uuid::Uuid;

on_both_deployments!(
    reviews_are_verified_rated_and_removed_only_by_their_authors,
    the_listing_sorts_by_rating_then_review_count,
    co_purchases_become_recommendations,
);

const PRICE: i64 = 1_000;

fn address() -> Value {
    json!({"name": "Ann Buyer", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// A product of `category` at 10.00 EUR with 20 units in stock; answers its id.
async fn stocked(shop: &TestShop, admin: &str, name: &str, category: &str) -> String {
    let sku = format!("R-{}", Uuid::now_v7().simple());
    let product = shop.product(admin, &sku, name, PRICE, category).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let path = format!("/api/inventory/{id}/restock");
    let (status, _) = send(shop.request(Method::POST, &path).bearer_auth(admin).json(&json!({"quantity": 20}))).await;
    assert_eq!(status, StatusCode::OK);
    id
}

/// A new customer with 100.00 EUR in their wallet: (email, token).
async fn shopper(shop: &TestShop, name: &str) -> (String, String) {
    let (email, token) = shop.customer(name).await;
    let body = json!({"amount": {"amount": 100 * PRICE, "currency": "EUR"}});
    let (status, _) = send(shop.request(Method::POST, "/api/wallet/deposits").bearer_auth(&token).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    (email, token)
}

/// Orders one unit of each product with the wallet and waits until the order is
/// confirmed; answers its id.
async fn buy(shop: &TestShop, token: &str, products: &[&str]) -> String {
    let items: Vec<Value> = products.iter().map(|product| json!({"product_id": product, "quantity": 1})).collect();
    let body = json!({"items": items, "shipping_address": address(), "payment_method": {"type": "wallet"}});
    let (status, accepted) = send(shop.request(Method::POST, "/api/orders").bearer_auth(token).json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let order_id = accepted["order_id"].as_str().unwrap().to_owned();
    let order = settled(shop, token, &order_id, &["confirmed", "rejected"]).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    order_id
}

async fn settled(shop: &TestShop, token: &str, order: &str, statuses: &[&str]) -> Value {
    eventually(&format!("order {order} to reach {statuses:?}"), || async {
        let (_, order) = send(shop.request(Method::GET, &format!("/api/orders/{order}")).bearer_auth(token)).await;
        statuses.contains(&order["status"].as_str().unwrap_or("")).then_some(order)
    })
    .await
}

/// Dispatches and delivers the order's shipment as an administrator, and waits until the
/// order is delivered.
async fn deliver(shop: &TestShop, admin: &str, buyer: &str, order_id: &str) {
    eventually("the shipment", || async {
        let (status, _) =
            send(shop.request(Method::GET, &format!("/api/shipments/{order_id}")).bearer_auth(admin)).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    let dispatch =
        json!({"carrier": "DHL", "tracking_number": format!("JJD{}", &Uuid::now_v7().simple().to_string()[..12])});
    let path = format!("/api/shipments/{order_id}/dispatch");
    let (status, body) = send(shop.request(Method::POST, &path).bearer_auth(admin).json(&dispatch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/api/shipments/{order_id}/deliver");
    let (status, body) = send(shop.request(Method::POST, &path).bearer_auth(admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    settled(shop, buyer, order_id, &["delivered"]).await;
}

async fn post_review(shop: &TestShop, token: &str, product: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/products/{product}/reviews");
    send(shop.request(Method::POST, &path).bearer_auth(token).json(&body)).await
}

/// Posts a review that must be accepted; answers it.
async fn review(shop: &TestShop, token: &str, product: &str, rating: u8, title: &str) -> Value {
    let body = json!({"rating": rating, "title": title, "body": "Used it every day for a week."});
    let (status, review) = post_review(shop, token, product, body).await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    review
}

async fn reviews(shop: &TestShop, product: &str) -> Value {
    let (status, page) = send(shop.request(Method::GET, &format!("/api/products/{product}/reviews"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

async fn product(shop: &TestShop, product: &str) -> Value {
    let (status, product) = send(shop.request(Method::GET, &format!("/api/products/{product}"))).await;
    assert_eq!(status, StatusCode::OK, "{product}");
    product
}

/// Waits until the product shows `review_count` reviews; answers it.
async fn rated(shop: &TestShop, id: &str, review_count: u64) -> Value {
    eventually(&format!("product {id} to show {review_count} reviews"), || async {
        let product = product(shop, id).await;
        (product["review_count"] == review_count).then_some(product)
    })
    .await
}

fn field_errors(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map_or_else(Vec::new, |errors| errors.iter().filter_map(|error| error["field"].as_str()).collect())
}

async fn reviews_are_verified_rated_and_removed_only_by_their_authors(shop: &TestShop) {
    let admin = shop.admin().await;
    let mug = stocked(shop, &admin, "Review Mug", "kitchen").await;
    let (_, buyer) = shopper(shop, "Ann").await;
    let (_, browser) = shop.customer("Bob").await;
    let order = buy(shop, &buyer, &[&mug]).await;

    // Before delivery nobody is verified, the buyer included.
    let early = review(shop, &buyer, &mug, 5, "Great mug").await;
    assert_eq!(early["product_id"], mug.as_str());
    assert_eq!((early["rating"].as_u64(), early["verified_purchase"].as_bool()), (Some(5), Some(false)));
    assert_eq!(early["title"], "Great mug");
    for field in ["id", "user_id", "body", "created_at"] {
        assert!(!early[field].is_null(), "{field} in {early}");
    }
    let other = review(shop, &browser, &mug, 2, "Chipped").await;

    // One review per user and product.
    let (status, problem) = post_review(shop, &buyer, &mug, json!({"rating": 4, "title": "Again", "body": ""})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // Bad input names its field.
    for (body, field) in [
        (json!({"rating": 0, "title": "Zero", "body": ""}), "rating"),
        (json!({"rating": 6, "title": "Six", "body": ""}), "rating"),
        (json!({"rating": 4.5, "title": "Half", "body": ""}), "rating"),
        (json!({"rating": 4, "title": "  ", "body": ""}), "title"),
        (json!({"rating": 4, "title": "No body"}), "body"),
    ] {
        let (status, problem) = post_review(shop, &browser, &mug, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        assert_eq!(field_errors(&problem), [field], "{body}: {problem}");
    }
    let nowhere = Uuid::now_v7();
    let (status, _) =
        post_review(shop, &buyer, &nowhere.to_string(), json!({"rating": 3, "title": "?", "body": ""})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(shop.request(Method::GET, &format!("/api/products/{nowhere}/reviews"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let anonymous = shop.request(Method::POST, &format!("/api/products/{mug}/reviews"));
    let (status, _) = send(anonymous.json(&json!({"rating": 3, "title": "Anon", "body": ""}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The delivery verifies the buyer's review, written before it; not the browser's.
    deliver(shop, &admin, &buyer, &order).await;
    let page = eventually("the buyer's review to be verified", || async {
        let page = reviews(shop, &mug).await;
        (page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["id"] == early["id"] && item["verified_purchase"] == true))
        .then_some(page)
    })
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], other["id"], "newest first");
    assert_eq!(items[0]["verified_purchase"], false, "the browser bought nothing");
    assert_eq!((page["rating"].as_f64(), page["review_count"].as_u64()), (Some(3.5), Some(2)));
    assert!(page["next_cursor"].is_null());

    // The catalog shows the rating.
    let shown = rated(shop, &mug, 2).await;
    assert_eq!(shown["rating"].as_f64(), Some(3.5));

    // Only the author (or an administrator) removes a review.
    let early_path = format!("/api/products/{mug}/reviews/{}", early["id"].as_str().unwrap());
    let other_path = format!("/api/products/{mug}/reviews/{}", other["id"].as_str().unwrap());
    let (status, _) = send(shop.request(Method::DELETE, &early_path).bearer_auth(&browser)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, single) = send(shop.request(Method::GET, &early_path)).await;
    assert_eq!((status, single["verified_purchase"].as_bool()), (StatusCode::OK, Some(true)), "{single}");
    let (status, _) = send(shop.request(Method::DELETE, &other_path).bearer_auth(&browser)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(shop.request(Method::GET, &other_path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let page = reviews(shop, &mug).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!((page["rating"].as_f64(), page["review_count"].as_u64()), (Some(5.0), Some(1)));
    assert_eq!(rated(shop, &mug, 1).await["rating"].as_f64(), Some(5.0));

    // Removed, the browser may review again; an administrator removes any review.
    let again = review(shop, &browser, &mug, 3, "Second thoughts").await;
    assert_ne!(again["id"], other["id"]);
    let again_path = format!("/api/products/{mug}/reviews/{}", again["id"].as_str().unwrap());
    let (status, _) = send(shop.request(Method::DELETE, &again_path).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn the_listing_sorts_by_rating_then_review_count(shop: &TestShop) {
    let admin = shop.admin().await;
    let category = format!("rated{}", &Uuid::now_v7().simple().to_string()[20..]);
    let mut products = Vec::new();
    for name in ["Well Liked", "Best Liked", "Liked Once"] {
        let sku = format!("S-{}", Uuid::now_v7().simple());
        products.push(shop.product(&admin, &sku, name, PRICE, &category).await["id"].as_str().unwrap().to_owned());
    }
    let (well, best, once) = (&products[0], &products[1], &products[2]);
    let (_, ann) = shop.customer("Ann").await;
    let (_, bob) = shop.customer("Bob").await;
    review(shop, &ann, well, 4, "Good").await;
    review(shop, &bob, well, 4, "Good too").await;
    review(shop, &ann, best, 5, "Best").await;
    review(shop, &ann, once, 4, "Good once").await;
    rated(shop, well, 2).await;
    rated(shop, best, 1).await;
    rated(shop, once, 1).await;

    let listing = |cursor: Option<String>| {
        let mut path = format!("/api/products?category={category}&sort=rating&limit=1");
        if let Some(cursor) = cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        async move { send(shop.request(Method::GET, &path)).await }
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let (status, page) = listing(cursor).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let item = &page["items"][0];
        seen.push((item["id"].as_str().unwrap().to_owned(), item["rating"].as_f64().unwrap()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected = vec![(best.clone(), 5.0), (well.clone(), 4.0), (once.clone(), 4.0)];
    assert_eq!(seen, expected, "by rating, then by review count");
}

async fn co_purchases_become_recommendations(shop: &TestShop) {
    let admin = shop.admin().await;
    let mug = stocked(shop, &admin, "Rec Mug", "kitchen").await;
    let beans = stocked(shop, &admin, "Coffee Beans", "pantry").await;
    let kettle = stocked(shop, &admin, "Kettle", "kitchen").await;
    let (_, ann) = shopper(shop, "Ann").await;
    let (_, bob) = shopper(shop, "Bob").await;
    let (_, carl) = shopper(shop, "Carl").await;
    buy(shop, &ann, &[&mug, &beans]).await;
    buy(shop, &bob, &[&mug, &beans]).await;
    buy(shop, &carl, &[&kettle]).await;

    let path = format!("/api/products/{mug}/recommendations");
    let page = eventually("the co-purchases to be counted", || async {
        let (status, page) = send(shop.request(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        (items.len() == 2 && items[0]["score"] == 2 && items[0]["name"].is_string()).then_some(page)
    })
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[0]["product_id"], beans.as_str(), "{page}");
    assert_eq!((items[0]["reason"].as_str(), items[0]["score"].as_u64()), (Some("bought_together"), Some(2)));
    assert_eq!(items[0]["name"], "Coffee Beans");
    assert_eq!(items[0]["price"], json!({"amount": PRICE, "currency": "EUR"}));
    assert_eq!(items[1]["product_id"], kettle.as_str());
    assert_eq!(items[1]["reason"], "popular_in_category");
    assert!(page["next_cursor"].is_null());

    // For Ann: what goes with her purchases, never her purchases.
    let (status, mine) = send(shop.request(Method::GET, "/api/recommendations").bearer_auth(&ann)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let ids: Vec<&str> =
        mine["items"].as_array().unwrap().iter().map(|item| item["product_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [kettle.as_str()], "{mine}");
    assert_eq!(mine["items"][0]["reason"], "popular_in_category");

    let (status, _) = send(shop.request(Method::GET, "/api/recommendations")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = send(shop.request(Method::GET, &format!("{path}?limit=0"))).await;
    assert_eq!((status, field_errors(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["limit"]));
    let (status, _) =
        send(shop.request(Method::GET, &format!("/api/products/{}/recommendations", Uuid::now_v7()))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the shop answers about reviews, ratings and recommendations, as a client sees it.
async fn answers(shop: &TestShop, token: &str, products: &[&str]) -> Vec<Value> {
    let mut answers = Vec::new();
    for id in products {
        answers.push(reviews(shop, id).await);
        answers.push(product(shop, id).await);
        answers.push(send(shop.request(Method::GET, &format!("/api/products/{id}/recommendations"))).await.1);
    }
    answers.push(send(shop.request(Method::GET, "/api/products?sort=rating")).await.1);
    answers.push(send(shop.request(Method::GET, "/api/recommendations").bearer_auth(token)).await.1);
    answers
}

/// Builds reviews, ratings and recommendations, kills the shop, starts it again on the
/// same data (`extra` names the deployment) and compares every answer.
async fn the_answers_are_the_same_after_a_restart(extra: Vec<String>) {
    let arguments: Vec<&str> = extra.iter().map(String::as_str).collect();
    let shop = TestShop::start_embedded_in(tempfile::tempdir().unwrap(), &arguments).await;
    let admin = shop.admin().await;
    let mug = stocked(&shop, &admin, "Restart Mug", "kitchen").await;
    let beans = stocked(&shop, &admin, "Restart Beans", "pantry").await;
    let kettle = stocked(&shop, &admin, "Restart Kettle", "kitchen").await;
    let (ann_email, ann) = shopper(&shop, "Ann").await;
    let (_, bob) = shopper(&shop, "Bob").await;
    let order = buy(&shop, &ann, &[&mug, &beans]).await;
    buy(&shop, &bob, &[&mug, &beans, &kettle]).await;
    deliver(&shop, &admin, &ann, &order).await;
    let verified = review(&shop, &ann, &mug, 5, "Verified").await;
    review(&shop, &bob, &beans, 3, "Fine").await;
    let removed = review(&shop, &bob, &kettle, 1, "Removed").await;
    // Seen by the catalog before it is removed, so that "no reviews" below is the end.
    rated(&shop, &kettle, 1).await;
    let path = format!("/api/products/{kettle}/reviews/{}", removed["id"].as_str().unwrap());
    let (status, _) = send(shop.request(Method::DELETE, &path).bearer_auth(&bob)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Everything settled: the badge, the catalog's stock and ratings, the co-purchases
    // with the catalog's names.
    eventually("the badge", || async {
        (reviews(&shop, &mug).await["items"][0]["verified_purchase"] == true).then_some(())
    })
    .await;
    assert_eq!(reviews(&shop, &mug).await["items"][0]["id"], verified["id"]);
    for (id, review_count, available) in [(&mug, 1, 18), (&beans, 1, 18), (&kettle, 0, 19)] {
        eventually(&format!("product {id} settled"), || async {
            let product = product(&shop, id).await;
            (product["review_count"] == review_count && product["available"] == available).then_some(())
        })
        .await;
    }
    for id in [&mug, &beans, &kettle] {
        let path = format!("/api/products/{id}/recommendations");
        eventually(&format!("what goes with {id}"), || async {
            let page = send(shop.request(Method::GET, &path)).await.1;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            (items.len() == 2 && items.iter().all(|item| item["name"].is_string())).then_some(())
        })
        .await;
    }
    let path = format!("/api/products/{mug}/recommendations");
    let page = send(shop.request(Method::GET, &path)).await.1;
    assert_eq!((page["items"][0]["score"].as_u64(), page["items"][1]["score"].as_u64()), (Some(2), Some(1)), "{page}");
    let (_, mine) = send(shop.request(Method::GET, "/api/recommendations").bearer_auth(&ann)).await;
    assert_eq!(mine["items"][0]["product_id"], kettle.as_str(), "{mine}");
    let products = [mug.as_str(), beans.as_str(), kettle.as_str()];
    let before = answers(&shop, &ann, &products).await;

    let directory = shop.kill().await;
    let shop = TestShop::start_embedded_in(directory, &arguments).await;
    let ann = shop.token(&ann_email, support::PASSWORD).await.access;
    let after = answers(&shop, &ann, &products).await;

    assert_eq!(after, before);
    let response = shop.request(Method::GET, &format!("/api/products/{mug}")).send().await.unwrap();
    assert!(response.headers().contains_key(header::ETAG));
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_answers_are_the_same_after_a_restart() {
    the_answers_are_the_same_after_a_restart(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn distributed_answers_are_the_same_after_a_restart() {
    if let Some(extra) = distributed_arguments().await {
        the_answers_are_the_same_after_a_restart(extra).await;
    }
}

/// `--store`, `--bus` and `--namespace` of a new PostgreSQL database and NATS namespace, to
/// start a shop on more than once; None (skipping, outside CI) when either is unreachable.
async fn distributed_arguments() -> Option<Vec<String>> {
    use sqlx::Connection;
    const PREFIX: &str = "it";
    let url = store_postgres::testing::test_database_url().await?;
    bus_nats::testing::connect(PREFIX).await?;
    let name = format!("eventshop_it_{}", Uuid::now_v7().simple());
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("the test database answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await.expect("CREATE DATABASE");
    let (server, _) = url.rsplit_once('/').expect("a database URL");
    let namespace = bus_nats::testing::fresh_namespace(PREFIX);
    Some(vec![
        "--store".to_owned(),
        format!("{server}/{name}"),
        "--bus".to_owned(),
        bus_nats::testing::test_url(),
        "--namespace".to_owned(),
        namespace.as_str().to_owned(),
    ])
}
