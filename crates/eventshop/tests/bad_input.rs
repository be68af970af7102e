//! Every route answers bad input with a 4xx problem+json that names what is wrong, and
//! changes nothing: the state read back after the whole table is the state before it.

mod support;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use support::{TestShop, send};

enum Who {
    Anyone,
    Customer,
    Admin,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    who: Who,
    body: Body,
    idempotency_key: Option<String>,
}

fn case(name: &'static str, method: Method, path: impl Into<String>, who: Who, body: Body) -> Case {
    Case { name, method, path: path.into(), who, body, idempotency_key: None }
}

fn json_body(value: Value) -> Body {
    Body::Json(value)
}

fn raw(text: impl Into<String>) -> Body {
    Body::Raw("application/json", text.into())
}

fn money(amount: Value, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency})
}

fn cases(product: &str) -> Vec<Case> {
    use Method as M;
    use Who::*;
    let product_path = format!("/api/products/{product}");
    let restock = format!("/api/inventory/{product}/restock");
    let new_product = |field: &str, value: Value| {
        let mut body = json!({"sku": "NEW-1", "name": "New", "description": "d", "price": money(json!(100), "EUR"), "category": "c"});
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        json_body(body)
    };
    let mut cases = vec![
        case("malformed json", M::POST, "/api/users", Anyone, raw("{\"email\": ")),
        case("not json at all", M::POST, "/api/users", Anyone, raw("email=a@b.c")),
        case("wrong content type", M::POST, "/api/users", Anyone, Body::Raw("text/plain", "{}".into())),
        case("missing fields", M::POST, "/api/users", Anyone, json_body(json!({}))),
        case(
            "email of the wrong type",
            M::POST,
            "/api/users",
            Anyone,
            json_body(json!({"email": 5, "password": "long-enough", "name": "A"})),
        ),
        case(
            "invalid email",
            M::POST,
            "/api/users",
            Anyone,
            json_body(json!({"email": "nobody", "password": "long-enough", "name": "A"})),
        ),
        case(
            "short password",
            M::POST,
            "/api/users",
            Anyone,
            json_body(json!({"email": "a@b.co", "password": "short", "name": "A"})),
        ),
        case(
            "empty name",
            M::POST,
            "/api/users",
            Anyone,
            json_body(json!({"email": "a@b.co", "password": "long-enough", "name": " "})),
        ),
        case("array instead of object", M::POST, "/api/users", Anyone, json_body(json!([1, 2]))),
        case("profile name of the wrong type", M::PATCH, "/api/users/me", Customer, json_body(json!({"name": 42}))),
        case("profile name too long", M::PATCH, "/api/users/me", Customer, json_body(json!({"name": "n".repeat(500)}))),
        case(
            "address without city",
            M::POST,
            "/api/users/me/addresses",
            Customer,
            json_body(json!({"name": "A", "line1": "1 Street", "postal_code": "1", "country": "DE"})),
        ),
        case(
            "address with a country name",
            M::POST,
            "/api/users/me/addresses",
            Customer,
            json_body(
                json!({"name": "A", "line1": "1 Street", "city": "Berlin", "postal_code": "1", "country": "Germany"}),
            ),
        ),
        case("address id not a uuid", M::DELETE, "/api/users/me/addresses/42", Customer, Body::None),
        case("negative price", M::POST, "/api/products", Admin, new_product("price", money(json!(-1), "EUR"))),
        case("price as a float", M::POST, "/api/products", Admin, new_product("price", money(json!(9.99), "EUR"))),
        case("price as a string", M::POST, "/api/products", Admin, new_product("price", json!("9.99"))),
        case("unknown currency", M::POST, "/api/products", Admin, new_product("price", money(json!(100), "XYZ"))),
        case("missing sku", M::POST, "/api/products", Admin, new_product("sku", Value::Null)),
        case("sku with spaces", M::POST, "/api/products", Admin, new_product("sku", json!("A B"))),
        case("name too long", M::POST, "/api/products", Admin, new_product("name", json!("n".repeat(300)))),
        case("category of the wrong type", M::POST, "/api/products", Admin, new_product("category", json!(["a"]))),
        case(
            "patch with a negative price",
            M::PATCH,
            product_path.clone(),
            Admin,
            json_body(json!({"price": money(json!(-5), "EUR")})),
        ),
        case("patch malformed", M::PATCH, product_path.clone(), Admin, raw("{\"name\"")),
        case("patch a non-uuid product", M::PATCH, "/api/products/not-a-uuid", Admin, json_body(json!({"name": "x"}))),
        case("discontinue a non-uuid product", M::DELETE, "/api/products/not-a-uuid", Admin, Body::None),
        case("get a non-uuid product", M::GET, "/api/products/12345", Anyone, Body::None),
        case("limit zero", M::GET, "/api/products?limit=0", Anyone, Body::None),
        case("limit not a number", M::GET, "/api/products?limit=ten", Anyone, Body::None),
        case("limit over 100", M::GET, "/api/products?limit=1000", Anyone, Body::None),
        case("min price not a number", M::GET, "/api/products?min_price=cheap", Anyone, Body::None),
        case("negative min price", M::GET, "/api/products?min_price=-1", Anyone, Body::None),
        case("min above max", M::GET, "/api/products?min_price=500&max_price=100", Anyone, Body::None),
        case("unknown sort", M::GET, "/api/products?sort=random", Anyone, Body::None),
        case("garbage cursor", M::GET, "/api/products?cursor=%%%", Anyone, Body::None),
        case("negative restock", M::POST, restock.clone(), Admin, json_body(json!({"quantity": -1}))),
        case("zero restock", M::POST, restock.clone(), Admin, json_body(json!({"quantity": 0}))),
        case("fractional restock", M::POST, restock.clone(), Admin, json_body(json!({"quantity": 1.5}))),
        case("restock as a string", M::POST, restock.clone(), Admin, json_body(json!({"quantity": "5"}))),
        case("huge restock", M::POST, restock.clone(), Admin, json_body(json!({"quantity": 1_000_000_000_000_i64}))),
        case("restock without quantity", M::POST, restock.clone(), Admin, json_body(json!({}))),
        case(
            "restock a non-uuid product",
            M::POST,
            "/api/inventory/abc/restock",
            Admin,
            json_body(json!({"quantity": 1})),
        ),
        case("inventory of a non-uuid product", M::GET, "/api/inventory/abc", Admin, Body::None),
        case(
            "negative deposit",
            M::POST,
            "/api/wallet/deposits",
            Customer,
            json_body(json!({"amount": money(json!(-100), "EUR")})),
        ),
        case(
            "zero deposit",
            M::POST,
            "/api/wallet/deposits",
            Customer,
            json_body(json!({"amount": money(json!(0), "EUR")})),
        ),
        case(
            "fractional deposit",
            M::POST,
            "/api/wallet/deposits",
            Customer,
            json_body(json!({"amount": money(json!(0.5), "EUR")})),
        ),
        case(
            "deposit in another currency",
            M::POST,
            "/api/wallet/deposits",
            Customer,
            json_body(json!({"amount": money(json!(100), "USD")})),
        ),
        case("deposit as a bare number", M::POST, "/api/wallet/deposits", Customer, json_body(json!({"amount": 100}))),
        case(
            "huge deposit",
            M::POST,
            "/api/wallet/deposits",
            Customer,
            json_body(json!({"amount": money(json!(i64::MAX), "EUR")})),
        ),
        case("transactions limit not a number", M::GET, "/api/wallet/transactions?limit=x", Customer, Body::None),
        case("transactions garbage cursor", M::GET, "/api/wallet/transactions?cursor=zzz", Customer, Body::None),
    ];
    let mut long_key = case(
        "idempotency key too long",
        M::POST,
        "/api/wallet/deposits",
        Customer,
        json_body(json!({"amount": money(json!(100), "EUR")})),
    );
    long_key.idempotency_key = Some("k".repeat(300));
    cases.push(long_key);
    cases
}

/// What a client can read of the shop's state.
async fn state(shop: &TestShop, admin: &str, customer: &str, product: &str) -> Value {
    let get = |path: String, token: Option<&str>| {
        let mut request = shop.request(Method::GET, &path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { send(request).await.1 }
    };
    json!({
        "products": get("/api/products?limit=100".into(), None).await,
        "product": get(format!("/api/products/{product}"), None).await,
        "inventory": get(format!("/api/inventory/{product}"), Some(admin)).await,
        "me": get("/api/users/me".into(), Some(customer)).await,
        "wallet": get("/api/wallet".into(), Some(customer)).await,
        "transactions": get("/api/wallet/transactions".into(), Some(customer)).await,
    })
}

/// Sends a request whose declared body is `declared` bytes over a raw connection, writing
/// only a little more than the limit (a client library would fail writing the rest once
/// the server has answered and closed), and answers the status line and the body.
async fn oversized_request(shop: &TestShop, declared: usize) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = shop.base.trim_start_matches("http://");
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n{{\"name\": \""
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    let filler = vec![b'a'; 64 * 1024];
    for _ in 0..(1024 * 1024 / filler.len() + 2) {
        if connection.write_all(&filler).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), connection.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_one_mebibyte_is_refused() {
    let shop = TestShop::embedded().await;
    let (head, body) = oversized_request(&shop, 2 * 1024 * 1024).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.to_lowercase().contains("content-type: application/problem+json"), "{head}");
    assert!(body.contains("too large"), "{body}");
    let (_, users) = send(shop.request(Method::GET, "/health/live")).await;
    assert_eq!(users["status"], "ok", "the shop still answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_a_problem_and_changes_nothing() {
    let shop = TestShop::embedded().await;
    let admin = shop.admin().await;
    let (_, customer) = shop.customer("Bea").await;
    let product = shop.product(&admin, "KEEP-1", "Kept", 500, "misc").await;
    let product = product["id"].as_str().unwrap().to_owned();
    let before = state(&shop, &admin, &customer, &product).await;

    let mut failures = Vec::new();
    for case in cases(&product) {
        let mut request = shop.request(case.method.clone(), &case.path);
        request = match case.who {
            Who::Anyone => request,
            Who::Customer => request.bearer_auth(&customer),
            Who::Admin => request.bearer_auth(&admin),
        };
        if let Some(key) = &case.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request = match case.body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw(content_type, text) => request.header(header::CONTENT_TYPE, content_type).body(text),
        };
        let response = request.send().await.expect("the shop answers");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let named =
            body["errors"].as_array().is_some_and(|errors| errors.iter().all(|error| error["field"].is_string()));
        let ok = status.is_client_error()
            && content_type.starts_with("application/problem+json")
            && body["status"].as_u64() == Some(u64::from(status.as_u16()))
            && body["title"].is_string()
            && (status != StatusCode::UNPROCESSABLE_ENTITY || named);
        if !ok {
            failures.push(format!("{}: {} {} -> {status} {content_type} {body}", case.name, case.method, case.path));
        }
    }
    assert!(failures.is_empty(), "badly answered:\n{}", failures.join("\n"));

    let after = state(&shop, &admin, &customer, &product).await;
    assert_eq!(before, after, "bad input changed the state");
}
