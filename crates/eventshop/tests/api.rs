//! The shop driven through HTTP as a client would: `eventshop run` started for real.
//! Each flow runs on the embedded deployment, and again on PostgreSQL + NATS (skipped
//! outside CI when those are not reachable).

#[macro_use]
mod support;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{TestShop, eventually, send, split};

on_both_deployments!(identity, catalog, inventory_and_listing, wallet);

fn is_problem(response_content_type: Option<&header::HeaderValue>) -> bool {
    response_content_type
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/problem+json"))
}

async fn identity(shop: &TestShop) {
    let email = format!("ann-{}@shop.test", uuid::Uuid::now_v7().simple());
    let registration = json!({"email": email, "password": support::PASSWORD, "name": "Ann"});
    let (status, user) = send(shop.request(Method::POST, "/api/users").json(&registration)).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["email"], email);
    assert_eq!(user["role"], "customer");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none(), "{user}");

    // One account per address, whatever its case.
    let shouting = json!({"email": email.to_uppercase(), "password": support::PASSWORD, "name": "Ann"});
    let response = shop.request(Method::POST, "/api/users").json(&shouting).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(is_problem(response.headers().get(header::CONTENT_TYPE)));

    // Registered users can log in at once; refresh tokens rotate.
    let tokens = shop.token(&email, support::PASSWORD).await;
    let refresh = |token: String| {
        shop.request(Method::POST, "/oauth/token")
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
            .send()
    };
    let (status, renewed) = split(refresh(tokens.refresh.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["token_type"], "Bearer");
    let (status, reused) = split(refresh(tokens.refresh.clone()).await.unwrap()).await;
    assert_eq!((status, reused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    let wrong = shop.request(Method::POST, "/oauth/token").form(&[
        ("grant_type", "password"),
        ("username", email.as_str()),
        ("password", "not-the-password"),
    ]);
    let (status, body) = send(wrong).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, body) = send(shop.request(Method::POST, "/oauth/token").form(&[("grant_type", "magic")])).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));

    // The profile, with optimistic concurrency over HTTP.
    let (status, _) = send(shop.request(Method::GET, "/api/users/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(shop.request(Method::GET, "/api/users/me").bearer_auth("not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let access = renewed["access_token"].as_str().unwrap();
    let response = shop.request(Method::GET, "/api/users/me").bearer_auth(access).send().await.unwrap();
    let etag = response.headers().get(header::ETAG).expect("an ETag").to_str().unwrap().to_owned();
    let (status, me) = split(response).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some(email.as_str())));
    let rename = |if_match: &str, name: &str| {
        shop.request(Method::PATCH, "/api/users/me")
            .bearer_auth(access)
            .header(header::IF_MATCH, if_match)
            .json(&json!({"name": name}))
    };
    let (status, renamed) = send(rename(&etag, "Ann Smith")).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Ann Smith")), "{renamed}");
    let (status, _) = send(rename(&etag, "Ann Jones")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);

    // Addresses.
    let address = json!({"name": "Ann Smith", "line1": "1 Market Street", "city": "Berlin", "postal_code": "10115", "country": "de"});
    let (status, added) =
        send(shop.request(Method::POST, "/api/users/me/addresses").bearer_auth(access).json(&address)).await;
    assert_eq!((status, added["country"].as_str()), (StatusCode::CREATED, Some("DE")), "{added}");
    let (_, listed) = send(shop.request(Method::GET, "/api/users/me/addresses").bearer_auth(access)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let path = format!("/api/users/me/addresses/{}", added["id"].as_str().unwrap());
    let (status, _) = send(shop.request(Method::DELETE, &path).bearer_auth(access)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(shop.request(Method::DELETE, &path).bearer_auth(access)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn catalog(shop: &TestShop) {
    let admin = shop.admin().await;
    let (_, customer) = shop.customer("Cara").await;
    let body = json!({"sku": "X-1", "name": "X", "description": "", "price": {"amount": 1, "currency": "EUR"}, "category": "misc"});
    let (status, _) = send(shop.request(Method::POST, "/api/products").bearer_auth(&customer).json(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(shop.request(Method::POST, "/api/products").json(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let shoes = shop.product(&admin, "SHOE-1", "Blue Running Shoes", 8999, "shoes").await;
    shop.product(&admin, "SHOE-2", "Red Boots", 12900, "shoes").await;
    shop.product(&admin, "BOOK-1", "Event Sourcing Explained", 3900, "books").await;
    let (status, _) = send(shop.request(Method::POST, "/api/products").bearer_auth(&admin).json(&json!({
        "sku": "shoe-1", "name": "Copy", "description": "", "price": {"amount": 1, "currency": "EUR"}, "category": "shoes"
    })))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "skus are unique whatever their case");

    let path = format!("/api/products/{}", shoes["id"].as_str().unwrap());
    let response = shop.request(Method::GET, &path).send().await.unwrap();
    let etag = response.headers().get(header::ETAG).expect("an ETag").to_str().unwrap().to_owned();
    let (_, product) = split(response).await;
    for field in ["id", "sku", "name", "description", "price", "category", "available", "rating", "review_count"] {
        assert!(product.get(field).is_some(), "product lacks {field}: {product}");
    }

    // A rename shows at once, in the product and in the listing; a stale If-Match is refused.
    let patch = |if_match: &str, body: Value| {
        shop.request(Method::PATCH, &path).bearer_auth(&admin).header(header::IF_MATCH, if_match).json(&body)
    };
    let (status, renamed) =
        send(patch(&etag, json!({"name": "Blue Trail Shoes", "price": {"amount": 7999, "currency": "EUR"}}))).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Blue Trail Shoes")), "{renamed}");
    let (status, _) = send(patch(&etag, json!({"name": "Stale"}))).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (_, found) = send(shop.request(Method::GET, "/api/products?q=trail")).await;
    let names: Vec<&str> =
        found["items"].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Blue Trail Shoes"]);

    // Filters, sorts and pages.
    let list = |query: &str| send(shop.request(Method::GET, &format!("/api/products?{query}")));
    let skus = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|item| item["sku"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(skus(&list("category=shoes&sort=price_asc").await.1), ["SHOE-1", "SHOE-2"]);
    assert_eq!(skus(&list("sort=price_desc").await.1), ["SHOE-2", "SHOE-1", "BOOK-1"]);
    assert_eq!(skus(&list("min_price=5000&max_price=9000").await.1), ["SHOE-1"]);
    assert_eq!(skus(&list("sort=newest").await.1), ["BOOK-1", "SHOE-2", "SHOE-1"]);
    assert_eq!(skus(&list("q=event%20sourc").await.1), ["BOOK-1"]);
    let (_, first) = list("sort=price_asc&limit=2").await;
    assert_eq!(skus(&first), ["BOOK-1", "SHOE-1"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = list(&format!("sort=price_asc&limit=2&cursor={cursor}")).await;
    assert_eq!(skus(&second), ["SHOE-2"]);
    assert!(second["next_cursor"].is_null());
    let (status, _) = list("sort=cheapest").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = list("limit=101").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Discontinued products leave the listing; their page stays.
    let (status, _) = send(shop.request(Method::DELETE, &path).bearer_auth(&admin)).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(skus(&list("category=shoes").await.1), ["SHOE-2"]);
    let (status, _) = send(shop.request(Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, problem) = send(shop.request(Method::GET, &format!("/api/products/{}", uuid::Uuid::now_v7()))).await;
    assert_eq!((status, problem["status"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
    let response = shop.request(Method::GET, "/api/no-such-thing").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(is_problem(response.headers().get(header::CONTENT_TYPE)));
}

async fn inventory_and_listing(shop: &TestShop) {
    let admin = shop.admin().await;
    let product = shop.product(&admin, "MUG-1", "Stoneware Mug", 1299, "kitchen").await;
    let id = product["id"].as_str().unwrap();
    assert_eq!(product["available"], 0);

    let restock = |key: &str, quantity: i64| {
        shop.request(Method::POST, &format!("/api/inventory/{id}/restock"))
            .bearer_auth(&admin)
            .header("Idempotency-Key", key)
            .json(&json!({"quantity": quantity}))
    };
    let (status, levels) = send(restock("first", 10)).await;
    assert_eq!(status, StatusCode::OK, "{levels}");
    assert_eq!(levels, json!({"product_id": id, "on_hand": 10, "reserved": 0, "available": 10}));
    let (_, repeated) = send(restock("first", 10)).await;
    assert_eq!(repeated["on_hand"], 10, "a retried restock counts once");
    let (_, levels) = send(restock("second", 5)).await;
    assert_eq!(levels["available"], 15);
    let (status, _) = send(restock("third", 0)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, customer) = shop.customer("Ivo").await;
    let (status, _) = send(shop.request(Method::GET, &format!("/api/inventory/{id}")).bearer_auth(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, levels) = send(shop.request(Method::GET, &format!("/api/inventory/{id}")).bearer_auth(&admin)).await;
    assert_eq!((status, levels["on_hand"].as_u64()), (StatusCode::OK, Some(15)));
    let unknown = format!("/api/inventory/{}/restock", uuid::Uuid::now_v7());
    let (status, _) =
        send(shop.request(Method::POST, &unknown).bearer_auth(&admin).json(&json!({"quantity": 1}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Stock reaches the catalog through inventory's events.
    eventually("the listing to show the stock", || async {
        let (_, product) = send(shop.request(Method::GET, &format!("/api/products/{id}"))).await;
        (product["available"] == 15).then_some(())
    })
    .await;
    let (_, page) = send(shop.request(Method::GET, "/api/products?category=kitchen")).await;
    assert_eq!(page["items"][0]["available"], 15);
}

async fn wallet(shop: &TestShop) {
    let (_, customer) = shop.customer("Wes").await;
    let (status, wallet) = send(shop.request(Method::GET, "/api/wallet").bearer_auth(&customer)).await;
    assert_eq!(status, StatusCode::OK, "{wallet}");
    assert_eq!(wallet["balance"], json!({"amount": 0, "currency": "EUR"}));

    let deposit = |key: &str, amount: Value| {
        shop.request(Method::POST, "/api/wallet/deposits")
            .bearer_auth(&customer)
            .header("Idempotency-Key", key)
            .json(&json!({"amount": amount}))
    };
    let (status, first) = send(deposit("d1", json!({"amount": 5000, "currency": "EUR"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["balance"]["amount"], 5000);
    let (status, again) = send(deposit("d1", json!({"amount": 5000, "currency": "EUR"}))).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first), "a retry answers the first answer");
    send(deposit("d2", json!({"amount": 250, "currency": "EUR"}))).await;
    for bad in [
        json!({"amount": -5, "currency": "EUR"}),
        json!({"amount": 0, "currency": "EUR"}),
        json!({"amount": 1.5, "currency": "EUR"}),
        json!({"amount": 5, "currency": "USD"}),
    ] {
        let (status, problem) = send(deposit(&format!("bad-{bad}"), bad.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
    }
    let (_, wallet) = send(shop.request(Method::GET, "/api/wallet").bearer_auth(&customer)).await;
    assert_eq!(wallet["balance"]["amount"], 5250);

    let (_, page) = send(shop.request(Method::GET, "/api/wallet/transactions?limit=1").bearer_auth(&customer)).await;
    assert_eq!(page["items"][0]["amount"]["amount"], 250, "newest first: {page}");
    assert_eq!(page["items"][0]["kind"], "deposit");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = send(
        shop.request(Method::GET, &format!("/api/wallet/transactions?limit=1&cursor={cursor}")).bearer_auth(&customer),
    )
    .await;
    assert_eq!(rest["items"][0]["amount"]["amount"], 5000);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero() {
    let shop = TestShop::embedded().await;
    let (status, _) = send(shop.request(Method::GET, "/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(shop.terminate().await, "eventshop exits 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_endpoints() {
    let shop = TestShop::embedded().await;
    let (status, live) = send(shop.request(Method::GET, "/health/live")).await;
    assert_eq!((status, live["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, document) = send(shop.request(Method::GET, "/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(document["paths"]["/api/products"].is_object());
    let response = shop.request(Method::GET, "/docs").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("<html"));
    let response = shop
        .request(Method::GET, "/api/products")
        .header("x-correlation-id", "0190c6a8-7a2b-7cde-8f00-0123456789ab")
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["x-correlation-id"], "0190c6a8-7a2b-7cde-8f00-0123456789ab");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let metrics = shop.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited() {
    let shop = TestShop::embedded().await;
    let (email, _) = shop.customer("Lou").await;
    let attempt = || {
        shop.request(Method::POST, "/oauth/token")
            .form(&[("grant_type", "password"), ("username", email.as_str()), ("password", "wrong-password")])
            .send()
    };
    let mut limited = None;
    for _ in 0..10 {
        let response = attempt().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let limited = limited.expect("repeated failed logins are limited");
    let retry_after: u64 = limited.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0);
}
