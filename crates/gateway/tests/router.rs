//! The router's HTTP mapping, against fake services on a real in-process bus: statuses,
//! problem documents, headers, tokens, the login limit and what reaches the bus.
//!
//! The fakes answer just enough to exercise the gateway; the real services are tested
//! end to end by the binary's tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request as HttpRequest, StatusCode, header};
use chrono::Utc;
use contracts::cart::{Cart, CartLine, CheckoutCart, SetCartItem};
use contracts::catalog::{GetProduct, Product, UpdateProduct};
use contracts::identity::{AddressInput, LogIn, RegisterUser, Session, User};
use contracts::inventory::{Inventory, Restock, StockLevels};
use contracts::orders::{
    CancelOrder, GetOrder, ListOrders, Order, OrderAccepted, OrderLine, OrderStatus, PlaceOrder, RejectionReason,
    StatusChange,
};
use contracts::shipping::{DispatchShipment, GetShipment, Shipment, ShipmentStatus, shipment_id};
use contracts::values::{CardToken, Category, Description, Email, PersonName, ProductName, Sku};
use contracts::{Money, Page, PaymentMethod, Role};
use eventshop_core::bus::{
    Rejection, RejectionKind, Reply, Request, RequestBus, RequestHandler, Running, ServiceDefinition, reply_body,
    request_body,
};
use gateway::GatewayConfig;
use runtime::InProcessBus;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// The one product the fake catalog knows, at version 2.
const KNOWN_PRODUCT: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
const PASSWORD: &str = "correct horse battery";

/// The one order the fake orders service knows, owned by ann@example.com. Each read of
/// it shows one more status: pending, stock_reserved, then rejected (out of stock).
const KNOWN_ORDER: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0002);
/// An order the fake orders service knows as shipped: cancelling it is a conflict.
const SHIPPED_ORDER: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0003);

/// Fake identity, catalog, inventory, payments, cart, orders and shipping in one handler,
/// remembering every request it was sent.
#[derive(Debug, Default)]
struct FakeServices {
    received: Mutex<Vec<Request>>,
    order_reads: AtomicUsize,
}

impl FakeServices {
    fn received(&self, operation: &str) -> Vec<Request> {
        let received = self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        received.iter().filter(|request| request.operation == operation).cloned().collect()
    }
}

fn user(id: Uuid, email: &str, role: Role) -> User {
    User {
        id,
        email: Email::try_from(email.to_owned()).expect("email"),
        name: PersonName::try_from("Ann".to_owned()).expect("name"),
        role,
        addresses: Vec::new(),
        created_at: Utc::now(),
        version: 1,
    }
}

fn product(id: Uuid) -> Product {
    Product {
        id,
        sku: Sku::try_from("SKU-1".to_owned()).expect("sku"),
        name: ProductName::try_from("Shirt".to_owned()).expect("name"),
        description: Description::try_from(String::new()).expect("description"),
        price: Money::eur(1999),
        category: Category::try_from("shirts".to_owned()).expect("category"),
        available: 3,
        rating: 4.5,
        review_count: 2,
        discontinued: false,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        version: 2,
    }
}

/// The user id the fake identity gives the account `email`.
fn user_id_of(email: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, email.as_bytes())
}

fn address() -> AddressInput {
    serde_json::from_value(address_json()).expect("an address")
}

fn address_json() -> Value {
    json!({"name": "Ann Smith", "line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// The known order after `reads` reads: one more status each time, up to rejected.
fn order(id: Uuid, reads: usize) -> Order {
    let statuses = [OrderStatus::Pending, OrderStatus::StockReserved, OrderStatus::Rejected];
    let reached = &statuses[..reads.clamp(1, statuses.len())];
    let status = *reached.last().expect("at least pending");
    Order {
        id,
        user_id: user_id_of("ann@example.com"),
        status,
        reason: (status == OrderStatus::Rejected).then_some(RejectionReason::OutOfStock),
        items: vec![OrderLine {
            product_id: KNOWN_PRODUCT,
            name: "Shirt".to_owned(),
            quantity: 2,
            unit_price: Money::eur(1999),
        }],
        total: Money::eur(3998),
        shipping_address: address(),
        payment_method: PaymentMethod::Card { token: CardToken::Visa },
        history: reached.iter().map(|status| StatusChange { status: *status, at: Utc::now() }).collect(),
        created_at: Utc::now(),
        version: reached.len() as u64,
    }
}

fn shipment(order_id: Uuid, status: ShipmentStatus) -> Shipment {
    Shipment {
        id: shipment_id(order_id),
        order_id,
        user_id: user_id_of("ann@example.com"),
        status,
        carrier: None,
        tracking_number: None,
        address: address(),
        version: 1,
    }
}

#[async_trait]
impl RequestHandler for FakeServices {
    async fn handle(&self, request: Request) -> Reply {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(request.clone());
        match request.operation.as_str() {
            "CheckHealth" => reply_body(&json!({"store": "ok", "head_position": 0})),
            "RegisterUser" => {
                let command: RegisterUser = request_body(&request)?;
                if command.email.as_str() == "taken@example.com" {
                    return Err(Rejection::new(RejectionKind::Conflict, "the email is taken"));
                }
                reply_body(&user(command.user_id, command.email.as_str(), command.role))
            }
            "LogIn" => {
                let command: LogIn = request_body(&request)?;
                if command.password.expose() != PASSWORD {
                    return Err(Rejection::new(RejectionKind::Invalid, "wrong email or password"));
                }
                let role = if command.email.as_str().starts_with("admin") { Role::Admin } else { Role::Customer };
                let user_id = user_id_of(command.email.as_str());
                reply_body(&Session { user_id, email: command.email, role, refresh_token: "refresh-1".to_owned() })
            }
            "GetUser" => {
                let query: contracts::identity::GetUser = request_body(&request)?;
                reply_body(&user(query.user_id, "ann@example.com", Role::Customer))
            }
            "GetProduct" => {
                let query: GetProduct = request_body(&request)?;
                if query.product_id != KNOWN_PRODUCT {
                    return Err(Rejection::new(RejectionKind::NotFound, "no such product"));
                }
                reply_body(&product(query.product_id))
            }
            "UpdateProduct" => {
                let command: UpdateProduct = request_body(&request)?;
                if command.expected_version.is_some_and(|expected| expected != 2) {
                    return Err(Rejection::new(RejectionKind::PreconditionFailed, "the product is at version 2"));
                }
                reply_body(&product(command.product_id))
            }
            "ListProducts" => reply_body(&Page { items: vec![product(KNOWN_PRODUCT)], next_cursor: None }),
            "Restock" => {
                let command: Restock = request_body(&request)?;
                let quantity = u64::from(command.quantity.get());
                let levels = StockLevels { on_hand: quantity, reserved: 0, available: quantity };
                reply_body(&Inventory { product_id: command.product_id, levels, version: 1 })
            }
            "GetWallet" => {
                // Slow enough for the gateway's deadline in the timeout test.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err(Rejection::new(RejectionKind::Internal, "unreachable"))
            }
            "GetCart" | "SetCartItem" => {
                let user_id = request_body::<contracts::cart::GetCart>(&request)?.user_id;
                let line = CartLine {
                    product_id: KNOWN_PRODUCT,
                    name: "Shirt".to_owned(),
                    quantity: 1,
                    unit_price: Money::eur(1999),
                    line_total: Money::eur(1999),
                    available: true,
                };
                if request.operation == "SetCartItem" {
                    let command: SetCartItem = request_body(&request)?;
                    if command.expected_version.is_some_and(|expected| expected != 4) {
                        return Err(Rejection::new(RejectionKind::PreconditionFailed, "the cart is at version 4"));
                    }
                }
                reply_body(&Cart { user_id, items: vec![line], total: Money::eur(1999), version: 4 })
            }
            "PlaceOrder" => {
                let command: PlaceOrder = request_body(&request)?;
                reply_body(&OrderAccepted { order_id: command.order_id, status: OrderStatus::Pending })
            }
            "CheckoutCart" => {
                let command: CheckoutCart = request_body(&request)?;
                reply_body(&OrderAccepted { order_id: command.order_id, status: OrderStatus::Pending })
            }
            "GetOrder" => {
                let query: GetOrder = request_body(&request)?;
                let reads = self.order_reads.fetch_add(1, Ordering::SeqCst) + 1;
                let order = order(query.order_id, reads);
                if query.order_id != KNOWN_ORDER || query.viewer.is_some_and(|viewer| viewer != order.user_id) {
                    return Err(Rejection::new(RejectionKind::NotFound, "no such order"));
                }
                reply_body(&order)
            }
            "ListOrders" => reply_body(&Page { items: vec![order(KNOWN_ORDER, 1)], next_cursor: None }),
            "CancelOrder" => {
                let command: CancelOrder = request_body(&request)?;
                if command.order_id == SHIPPED_ORDER {
                    return Err(Rejection::new(RejectionKind::Conflict, "the order has been dispatched"));
                }
                let mut cancelled = order(command.order_id, 1);
                cancelled.status = OrderStatus::Cancelled;
                reply_body(&cancelled)
            }
            "GetShipment" => {
                let query: GetShipment = request_body(&request)?;
                reply_body(&shipment(query.order_id, ShipmentStatus::Pending))
            }
            "DispatchShipment" => {
                let command: DispatchShipment = request_body(&request)?;
                if command.shipment_id != shipment_id(KNOWN_ORDER) {
                    return Err(Rejection::new(RejectionKind::NotFound, "no such shipment"));
                }
                let mut dispatched = shipment(KNOWN_ORDER, ShipmentStatus::Dispatched);
                dispatched.carrier = Some(command.carrier);
                dispatched.tracking_number = Some(command.tracking_number);
                reply_body(&dispatched)
            }
            other => Err(Rejection::new(RejectionKind::NotFound, format!("the fake has no {other}"))),
        }
    }
}

struct Gateway {
    router: Router,
    services: Arc<FakeServices>,
    bus: InProcessBus,
    _served: Vec<Box<dyn Running>>,
}

async fn serve_fakes(bus: &InProcessBus, services: &Arc<FakeServices>, names: &[&str]) -> Vec<Box<dyn Running>> {
    let operations = [
        "CheckHealth",
        "RegisterUser",
        "LogIn",
        "GetUser",
        "GetProduct",
        "UpdateProduct",
        "ListProducts",
        "Restock",
        "GetWallet",
        "GetCart",
        "SetCartItem",
        "CheckoutCart",
        "PlaceOrder",
        "GetOrder",
        "ListOrders",
        "CancelOrder",
        "GetShipment",
        "DispatchShipment",
    ];
    let mut served = Vec::new();
    for name in names {
        let definition = ServiceDefinition {
            name: (*name).to_owned(),
            version: "test".to_owned(),
            description: "fake".to_owned(),
            operations: operations.iter().map(|operation| (*operation).to_owned()).collect(),
        };
        served.push(bus.serve(definition, services.clone()).await.expect("serves"));
    }
    served
}

async fn gateway_serving(names: &[&str]) -> Gateway {
    let bus = InProcessBus::new();
    let services = Arc::new(FakeServices::default());
    let served = serve_fakes(&bus, &services, names).await;
    let config = GatewayConfig { request_timeout: Duration::from_millis(300), ..GatewayConfig::default() };
    let router = gateway::router(Arc::new(bus.clone()), config);
    Gateway { router, services, bus, _served: served }
}

async fn gateway() -> Gateway {
    gateway_serving(&["identity", "catalog", "inventory", "cart", "orders", "shipping"]).await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Gateway {
    async fn send(&self, request: HttpRequest<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("a body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn json(&self, method: Method, uri: &str, token: Option<&str>, body: Value) -> Answer {
        self.json_with(method, uri, token, &[], body).await
    }

    /// A JSON request with more headers (`Idempotency-Key`, `If-Match`).
    async fn json_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Answer {
        let mut request =
            HttpRequest::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body.to_string())).expect("a request")).await
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        let mut request = HttpRequest::builder().uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).expect("a request")).await
    }

    async fn token_request(&self, form: &str, client: Option<SocketAddr>) -> Answer {
        let mut request = HttpRequest::builder()
            .method(Method::POST)
            .uri("/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .expect("a request");
        if let Some(client) = client {
            request.extensions_mut().insert(ConnectInfo(client));
        }
        self.send(request).await
    }

    async fn log_in(&self, email: &str) -> String {
        let answer =
            self.token_request(&format!("grant_type=password&username={email}&password={PASSWORD}"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body["access_token"].as_str().expect("a token").to_owned()
    }
}

fn assert_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/problem+json", "{}", answer.text);
    assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.text);
    assert!(answer.body["title"].is_string() && answer.body["detail"].is_string(), "{}", answer.text);
}

fn field_names(answer: &Answer) -> Vec<String> {
    answer.body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|error| error["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let gateway = gateway().await;
    assert_problem(&gateway.get("/api/nothing-here", None).await, StatusCode::NOT_FOUND);
    let answer = gateway.json(Method::PUT, "/api/products", None, json!({})).await;
    assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.headers.contains_key(header::ALLOW), "405 keeps its Allow header");
}

#[tokio::test]
async fn every_answer_has_ids_and_security_headers() {
    let gateway = gateway().await;
    let correlation = Uuid::now_v7();
    let request = HttpRequest::builder()
        .uri("/api/products")
        .header("x-correlation-id", correlation.to_string())
        .header("x-request-id", "client-request-1")
        .body(Body::empty())
        .expect("a request");
    let answer = gateway.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers["x-correlation-id"], correlation.to_string().as_str());
    assert_eq!(answer.headers["x-request-id"], "client-request-1");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(answer.headers["x-frame-options"], "DENY");
    assert_eq!(answer.headers["referrer-policy"], "no-referrer");
    assert!(answer.headers.contains_key("content-security-policy"));
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let listed = gateway.services.received("ListProducts");
    assert_eq!(listed[0].context.correlation_id, correlation, "the bus request joins the client's transaction");

    let answer = gateway.get("/health/live", None).await;
    let request_id = answer.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(request_id.parse::<Uuid>().expect("a generated UUID").get_version_num(), 7);
    assert!(answer.headers["x-correlation-id"].to_str().expect("ascii").parse::<Uuid>().is_ok());
    assert_eq!(answer.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn registering_answers_201_and_a_retry_names_the_same_user() {
    let gateway = gateway().await;
    let register = || {
        HttpRequest::builder()
            .method(Method::POST)
            .uri("/api/users")
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "signup-1")
            .body(Body::from(json!({"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"}).to_string()))
            .expect("a request")
    };
    let first = gateway.send(register()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.headers[header::LOCATION], "/api/users/me");
    assert_eq!(first.body["email"], "ann@example.com");
    assert_eq!(first.body["role"], "customer");
    assert!(first.body.get("password").is_none() && first.body.get("version").is_none());
    let second = gateway.send(register()).await;
    assert_eq!(second.body["id"], first.body["id"], "the retry names the same user id");

    let taken = gateway
        .json(
            Method::POST,
            "/api/users",
            None,
            json!({"email": "taken@example.com", "password": PASSWORD, "name": "T"}),
        )
        .await;
    assert_problem(&taken, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bad_bodies_are_400_or_422_naming_the_field() {
    let gateway = gateway().await;
    let answer = gateway
        .json(Method::POST, "/api/users", None, json!({"email": "not-an-email", "password": PASSWORD, "name": "Ann"}))
        .await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_names(&answer), ["email"]);
    let answer = gateway.json(Method::POST, "/api/users", None, json!({"email": "a@example.com", "name": "Ann"})).await;
    assert_eq!(field_names(&answer), ["password"]);

    let malformed = HttpRequest::builder()
        .method(Method::POST)
        .uri("/api/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"email\":"))
        .expect("a request");
    assert_problem(&gateway.send(malformed).await, StatusCode::BAD_REQUEST);

    let not_json = HttpRequest::builder()
        .method(Method::POST)
        .uri("/api/users")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .expect("a request");
    assert_problem(&gateway.send(not_json).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = HttpRequest::builder()
        .method(Method::POST)
        .uri("/api/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{{\"name\": \"{}\"}}", "x".repeat(gateway::MAX_BODY_BYTES))))
        .expect("a request");
    let answer = gateway.send(huge).await;
    assert_problem(&answer, StatusCode::BAD_REQUEST);
    assert!(answer.body["detail"].as_str().is_some_and(|detail| detail.contains("too large")));

    let answer = gateway.get("/api/products?sort=cheapest&limit=500", None).await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_names(&answer), ["sort", "limit"]);
    let answer = gateway.get("/api/products/not-a-uuid", None).await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_names(&answer), ["id"]);
}

#[tokio::test]
async fn the_token_endpoint_speaks_rfc_6749() {
    let gateway = gateway().await;
    let answer =
        gateway.token_request(&format!("grant_type=password&username=ann@example.com&password={PASSWORD}"), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    assert_eq!(answer.body["refresh_token"], "refresh-1");
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");

    let cases = [
        ("grant_type=password&username=ann@example.com&password=wrong-password", "invalid_grant"),
        ("grant_type=password&username=ann@example.com", "invalid_request"),
        ("username=ann@example.com&password=x", "invalid_request"),
        ("grant_type=client_credentials", "unsupported_grant_type"),
        ("grant_type=password&grant_type=password&username=a@example.com&password=x", "invalid_request"),
    ];
    for (form, error) in cases {
        let answer = gateway.token_request(form, None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{form}: {}", answer.text);
        assert_eq!(answer.body["error"], error, "{form}");
        assert!(answer.body["error_description"].is_string());
    }
    let json_body = gateway.json(Method::POST, "/oauth/token", None, json!({"grant_type": "password"})).await;
    assert_eq!(json_body.body["error"], "invalid_request");
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_address() {
    let gateway = gateway().await;
    let wrong = |email: &str| format!("grant_type=password&username={email}&password=wrong-password");
    for _ in 0..5 {
        assert_eq!(gateway.token_request(&wrong("bob@example.com"), None).await.status, StatusCode::BAD_REQUEST);
    }
    let blocked = gateway.token_request(&wrong("bob@example.com"), None).await;
    assert_problem(&blocked, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = blocked.headers[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // Even the right password waits: the limit is checked before the password.
    let right = format!("grant_type=password&username=bob@example.com&password={PASSWORD}");
    assert_eq!(gateway.token_request(&right, None).await.status, StatusCode::TOO_MANY_REQUESTS);

    let client: SocketAddr = "192.0.2.7:4000".parse().expect("an address");
    for account in ["c1@example.com", "c2@example.com", "c3@example.com", "c4@example.com", "c5@example.com"] {
        assert_eq!(gateway.token_request(&wrong(account), Some(client)).await.status, StatusCode::BAD_REQUEST);
    }
    let fresh_account = format!("grant_type=password&username=c6@example.com&password={PASSWORD}");
    assert_eq!(gateway.token_request(&fresh_account, Some(client)).await.status, StatusCode::TOO_MANY_REQUESTS);
    let other_client: SocketAddr = "192.0.2.8:4000".parse().expect("an address");
    assert_eq!(gateway.token_request(&fresh_account, Some(other_client)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_guard_the_routes() {
    let gateway = gateway().await;
    let answer = gateway.get("/api/users/me", None).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED);
    assert!(answer.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii").starts_with("Bearer"));
    let answer = gateway.get("/api/users/me", Some("not.a.token")).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED);
    assert!(answer.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii").contains("invalid_token"));

    let customer = gateway.log_in("ann@example.com").await;
    let answer = gateway.get("/api/users/me", Some(&customer)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers[header::ETAG], "\"1\"");
    let user_id: Uuid = answer.body["id"].as_str().expect("an id").parse().expect("a UUID");
    let asked = gateway.services.received("GetUser");
    assert_eq!(asked.last().expect("asked").context.acting_user, Some(user_id), "the acting user reaches the bus");

    let create = json!({"sku": "x-1", "name": "X", "description": "", "price": {"amount": 1, "currency": "EUR"}, "category": "c"});
    let answer = gateway.json(Method::POST, "/api/products", Some(&customer), create).await;
    assert_problem(&answer, StatusCode::FORBIDDEN);

    let other_gateway = gateway_serving(&["identity"]).await;
    let answer = other_gateway.get("/api/users/me", Some(&customer)).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn if_match_reaches_the_service_and_a_stale_one_is_412() {
    let gateway = gateway().await;
    let admin = gateway.log_in("admin@example.com").await;
    let uri = format!("/api/products/{KNOWN_PRODUCT}");
    let answer = gateway.get(&uri, None).await;
    assert_eq!(answer.headers[header::ETAG], "\"2\"");
    assert_eq!(answer.body["price"], json!({"amount": 1999, "currency": "EUR"}));

    let patch = |if_match: &str| {
        HttpRequest::builder()
            .method(Method::PATCH)
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::IF_MATCH, if_match)
            .body(Body::from(json!({"name": "New"}).to_string()))
            .expect("a request")
    };
    assert_eq!(gateway.send(patch("\"2\"")).await.status, StatusCode::OK);
    assert_problem(&gateway.send(patch("\"1\"")).await, StatusCode::PRECONDITION_FAILED);
    assert_problem(&gateway.send(patch("yesterday")).await, StatusCode::PRECONDITION_FAILED);
    let sent: Vec<Option<u64>> = gateway
        .services
        .received("UpdateProduct")
        .iter()
        .map(|request| request_body::<UpdateProduct>(request).expect("decodes").expected_version)
        .collect();
    assert_eq!(sent, [Some(2), Some(1)], "a malformed If-Match never reaches the service");
}

#[tokio::test]
async fn restocking_checks_the_catalog_first() {
    let gateway = gateway().await;
    let admin = gateway.log_in("admin@example.com").await;
    let unknown = gateway
        .json(Method::POST, &format!("/api/inventory/{}/restock", Uuid::now_v7()), Some(&admin), json!({"quantity": 5}))
        .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND);
    assert!(gateway.services.received("Restock").is_empty());

    let uri = format!("/api/inventory/{KNOWN_PRODUCT}/restock");
    let answer = gateway.json(Method::POST, &uri, Some(&admin), json!({"quantity": 5})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body, json!({"product_id": KNOWN_PRODUCT, "on_hand": 5, "reserved": 0, "available": 5}));
    let answer = gateway.json(Method::POST, &uri, Some(&admin), json!({"quantity": 0})).await;
    assert_eq!(field_names(&answer), ["quantity"]);
}

#[tokio::test]
async fn bus_failures_are_503_and_504() {
    let gateway = gateway().await;
    let customer = gateway.log_in("ann@example.com").await;
    // No payments service runs.
    assert_problem(&gateway.get("/api/wallet", Some(&customer)).await, StatusCode::SERVICE_UNAVAILABLE);
    let _payments = serve_fakes(&gateway.bus, &gateway.services, &["payments"]).await;
    assert_problem(&gateway.get("/api/wallet", Some(&customer)).await, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn readiness_names_the_missing_services() {
    let gateway = gateway_serving(&[
        "identity",
        "catalog",
        "inventory",
        "cart",
        "orders",
        "reviews",
        "notifications",
        "recommendations",
    ])
    .await;
    let answer = gateway.get("/health/ready", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["missing"], json!(["payments", "shipping"]));
    let _shipping = serve_fakes(&gateway.bus, &gateway.services, &["shipping"]).await;
    let _payments = serve_fakes(&gateway.bus, &gateway.services, &["payments"]).await;
    assert_eq!(gateway.get("/health/ready", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_document_the_docs_and_the_metrics_are_served() {
    let gateway = gateway().await;
    let document = gateway.get("/api/openapi.json", None).await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(document.body["openapi"].as_str().is_some_and(|version| version.starts_with("3.1")));
    assert!(document.body["paths"]["/oauth/token"]["post"].is_object());

    let page = gateway.get("/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("/docs/app.js"));
    assert_eq!(gateway.get("/docs/app.js", None).await.status, StatusCode::OK);

    let metrics = gateway.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.text.contains("http_requests_total"), "{}", metrics.text);
    assert!(metrics.text.contains("route=\"/api/openapi.json\""), "{}", metrics.text);
}

fn order_request(payment_method: Value) -> Value {
    json!({
        "items": [{"product_id": KNOWN_PRODUCT, "quantity": 2}],
        "shipping_address": address_json(),
        "payment_method": payment_method,
    })
}

fn order_id_of(answer: &Answer) -> Uuid {
    answer.body["order_id"].as_str().expect("an order id").parse().expect("a UUID")
}

#[tokio::test]
async fn placing_an_order_answers_202_with_its_location_and_a_retry_names_the_same_order() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let bob = gateway.log_in("bob@example.com").await;
    let place = |token: &str, key: Option<&'static str>| {
        let token = token.to_owned();
        let gateway = &gateway;
        async move {
            let headers: Vec<(&str, &str)> = key.map(|key| ("idempotency-key", key)).into_iter().collect();
            let body = order_request(json!({"type": "card", "token": "tok_visa"}));
            gateway.json_with(Method::POST, "/api/orders", Some(&token), &headers, body).await
        }
    };

    let first = place(&ann, Some("order-1")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.body["status"], "pending");
    let order_id = order_id_of(&first);
    assert_eq!(first.headers[header::LOCATION], format!("/api/orders/{order_id}").as_str());

    assert_eq!(order_id_of(&place(&ann, Some("order-1")).await), order_id, "a retry names the same order");
    assert_ne!(order_id_of(&place(&bob, Some("order-1")).await), order_id, "keys are per user");
    assert_ne!(order_id_of(&place(&ann, Some("order-2")).await), order_id);
    let without_key = [order_id_of(&place(&ann, None).await), order_id_of(&place(&ann, None).await)];
    assert_ne!(without_key[0], without_key[1], "no key: a new order each time");

    let placed: PlaceOrder = request_body(&gateway.services.received("PlaceOrder")[0]).expect("decodes");
    assert_eq!((placed.order_id, placed.user_id), (order_id, user_id_of("ann@example.com")));
    assert_eq!(placed.payment_method, PaymentMethod::Card { token: CardToken::Visa });
    assert_eq!((placed.items[0].product_id, placed.items[0].quantity.get()), (KNOWN_PRODUCT, 2));
    assert_eq!(placed.shipping_address, address());
}

#[tokio::test]
async fn checking_out_the_cart_answers_202_with_the_order_location() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let body = json!({"shipping_address": address_json(), "payment_method": {"type": "wallet"}});
    let headers = [("idempotency-key", "checkout-1")];
    let first = gateway.json_with(Method::POST, "/api/cart/checkout", Some(&ann), &headers, body.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let order_id = order_id_of(&first);
    assert_eq!(first.headers[header::LOCATION], format!("/api/orders/{order_id}").as_str());
    let second = gateway.json_with(Method::POST, "/api/cart/checkout", Some(&ann), &headers, body).await;
    assert_eq!(order_id_of(&second), order_id);
    let checkout: CheckoutCart = request_body(&gateway.services.received("CheckoutCart")[0]).expect("decodes");
    assert_eq!((checkout.user_id, checkout.payment_method), (user_id_of("ann@example.com"), PaymentMethod::Wallet));
}

#[tokio::test]
async fn an_unknown_card_token_is_422_naming_it_and_reaches_no_service() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let cases = [
        (json!({"type": "card", "token": "tok_stolen"}), "payment_method.token"),
        (json!({"type": "card"}), "payment_method.token"),
        (json!({"type": "wallet", "token": "tok_visa"}), "payment_method.token"),
        (json!({"type": "cash"}), "payment_method.type"),
    ];
    for (payment_method, field) in cases {
        let answer = gateway.json(Method::POST, "/api/orders", Some(&ann), order_request(payment_method.clone())).await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field_names(&answer), [field], "{payment_method}");
    }
    let mut zero = order_request(json!({"type": "wallet"}));
    zero["items"][0]["quantity"] = json!(0);
    let answer = gateway.json(Method::POST, "/api/orders", Some(&ann), zero).await;
    assert_eq!(field_names(&answer), ["items[0].quantity"]);
    let checkout = json!({"shipping_address": address_json(), "payment_method": {"type": "card", "token": "tok_x"}});
    let answer = gateway.json(Method::POST, "/api/cart/checkout", Some(&ann), checkout).await;
    assert_eq!(field_names(&answer), ["payment_method.token"]);
    assert!(gateway.services.received("PlaceOrder").is_empty() && gateway.services.received("CheckoutCart").is_empty());
}

#[tokio::test]
async fn an_order_is_shown_to_its_owner_and_admins_and_is_404_for_anyone_else() {
    let gateway = gateway().await;
    let uri = format!("/api/orders/{KNOWN_ORDER}");
    let ann = gateway.log_in("ann@example.com").await;
    let answer = gateway.get(&uri, Some(&ann)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers[header::ETAG], "\"1\"");
    assert_eq!(answer.body["status"], "pending");
    assert_eq!(answer.body["reason"], Value::Null);
    assert_eq!(
        answer.body["items"],
        json!([{"product_id": KNOWN_PRODUCT, "name": "Shirt", "quantity": 2, "unit_price": {"amount": 1999, "currency": "EUR"}}])
    );
    assert_eq!(answer.body["total"], json!({"amount": 3998, "currency": "EUR"}));
    assert_eq!(answer.body["payment_method"], json!({"type": "card", "token": "tok_visa"}));
    assert_eq!(answer.body["shipping_address"]["city"], "Berlin");
    assert_eq!(answer.body["history"][0]["status"], "pending");
    assert!(answer.body["created_at"].is_string() && answer.body.get("version").is_none());

    let bob = gateway.log_in("bob@example.com").await;
    assert_problem(&gateway.get(&uri, Some(&bob)).await, StatusCode::NOT_FOUND);
    let admin = gateway.log_in("admin@example.com").await;
    assert_eq!(gateway.get(&uri, Some(&admin)).await.status, StatusCode::OK);
    let viewers: Vec<Option<Uuid>> = gateway
        .services
        .received("GetOrder")
        .iter()
        .map(|request| request_body::<GetOrder>(request).expect("decodes").viewer)
        .collect();
    assert_eq!(viewers, [Some(user_id_of("ann@example.com")), Some(user_id_of("bob@example.com")), None]);
    assert_problem(&gateway.get(&uri, None).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn listing_orders_is_own_for_customers_and_all_for_admins() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let admin = gateway.log_in("admin@example.com").await;
    let answer = gateway.get("/api/orders?limit=5", Some(&ann)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["items"][0]["id"], KNOWN_ORDER.to_string());
    assert_eq!(answer.body["next_cursor"], Value::Null);
    assert_eq!(gateway.get("/api/orders?status=rejected", Some(&admin)).await.status, StatusCode::OK);
    let answer = gateway.get("/api/orders?status=lost&limit=0", Some(&admin)).await;
    assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_names(&answer), ["status", "limit"]);
    let sent: Vec<(Option<Uuid>, Option<OrderStatus>, u32)> = gateway
        .services
        .received("ListOrders")
        .iter()
        .map(|request| request_body::<ListOrders>(request).expect("decodes"))
        .map(|list| (list.user_id, list.status, list.page.limit))
        .collect();
    assert_eq!(sent, [(Some(user_id_of("ann@example.com")), None, 5), (None, Some(OrderStatus::Rejected), 20)]);
}

#[tokio::test]
async fn cancelling_answers_202_with_the_order_and_409_after_dispatch() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let answer = gateway.json(Method::POST, &format!("/api/orders/{KNOWN_ORDER}/cancel"), Some(&ann), json!({})).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["status"], "cancelled");
    let answer =
        gateway.json(Method::POST, &format!("/api/orders/{SHIPPED_ORDER}/cancel"), Some(&ann), json!({})).await;
    assert_problem(&answer, StatusCode::CONFLICT);
}

/// The `(event, id, data)` of each event of a `text/event-stream` body; comments skipped.
fn server_sent_events(text: &str) -> Vec<(String, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|line| line.strip_prefix(name)).map(|value| value.trim_start().to_owned())
            };
            let data = field("data:")?;
            Some((field("event:")?, field("id:").unwrap_or_default(), serde_json::from_str(&data).expect("JSON data")))
        })
        .collect()
}

#[tokio::test]
async fn the_event_stream_sends_each_status_and_closes_at_a_terminal_one() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let uri = format!("/api/orders/{KNOWN_ORDER}/events");
    let answer =
        tokio::time::timeout(Duration::from_secs(10), gateway.get(&uri, Some(&ann))).await.expect("the stream closes");
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.headers[header::CONTENT_TYPE].to_str().expect("ascii").starts_with("text/event-stream"));
    let events = server_sent_events(&answer.text);
    let statuses: Vec<(&str, &str, &Value)> =
        events.iter().map(|(event, id, data)| (event.as_str(), id.as_str(), &data["status"])).collect();
    assert_eq!(
        statuses,
        [
            ("status", "1", &json!("pending")),
            ("status", "2", &json!("stock_reserved")),
            ("status", "3", &json!("rejected"))
        ],
        "{}",
        answer.text
    );
    assert_eq!(events[2].2["reason"], "out_of_stock");
    assert_eq!(events[0].2["reason"], Value::Null);
    assert!(events[0].2["at"].is_string());

    // A reconnection resumes after the last event received; the order is terminal by now.
    let request = HttpRequest::builder()
        .uri(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {ann}"))
        .header("last-event-id", "2")
        .body(Body::empty())
        .expect("a request");
    let answer = tokio::time::timeout(Duration::from_secs(10), gateway.send(request)).await.expect("closes");
    let events = server_sent_events(&answer.text);
    assert_eq!(events.len(), 1, "{}", answer.text);
    assert_eq!((events[0].1.as_str(), &events[0].2["status"]), ("3", &json!("rejected")));

    let bob = gateway.log_in("bob@example.com").await;
    assert_problem(&gateway.get(&uri, Some(&bob)).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_cart_has_an_etag_and_if_match_reaches_the_service() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let answer = gateway.get("/api/cart", Some(&ann)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers[header::ETAG], "\"4\"");
    assert_eq!(answer.body["total"], json!({"amount": 1999, "currency": "EUR"}));
    assert_eq!(answer.body["items"][0]["line_total"], json!({"amount": 1999, "currency": "EUR"}));
    assert_eq!(answer.body["items"][0]["available"], true);

    let uri = format!("/api/cart/items/{KNOWN_PRODUCT}");
    let quantity = json!({"quantity": 3});
    let fresh = gateway.json_with(Method::PUT, &uri, Some(&ann), &[("if-match", "\"4\"")], quantity.clone()).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(fresh.headers[header::ETAG], "\"4\"");
    let stale = gateway.json_with(Method::PUT, &uri, Some(&ann), &[("if-match", "\"3\"")], quantity).await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
    let answer = gateway.json(Method::PUT, &uri, Some(&ann), json!({"quantity": -1})).await;
    assert_eq!(field_names(&answer), ["quantity"]);
    let sent: Vec<(Uuid, u32, Option<u64>)> = gateway
        .services
        .received("SetCartItem")
        .iter()
        .map(|request| request_body::<SetCartItem>(request).expect("decodes"))
        .map(|command| (command.user_id, command.quantity.get(), command.expected_version))
        .collect();
    let ann_id = user_id_of("ann@example.com");
    assert_eq!(sent, [(ann_id, 3, Some(4)), (ann_id, 3, Some(3))]);
}

#[tokio::test]
async fn shipments_are_read_by_their_owner_and_dispatched_by_admins() {
    let gateway = gateway().await;
    let ann = gateway.log_in("ann@example.com").await;
    let admin = gateway.log_in("admin@example.com").await;
    let answer = gateway.get(&format!("/api/shipments/{KNOWN_ORDER}"), Some(&ann)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], shipment_id(KNOWN_ORDER).to_string());
    assert_eq!((answer.body["status"].as_str(), &answer.body["carrier"]), (Some("pending"), &Value::Null));
    let query: GetShipment = request_body(&gateway.services.received("GetShipment")[0]).expect("decodes");
    assert_eq!(query.viewer, Some(user_id_of("ann@example.com")));

    let dispatch = json!({"carrier": "DHL", "tracking_number": "JD1"});
    let by_shipment = format!("/api/shipments/{}/dispatch", shipment_id(KNOWN_ORDER));
    assert_problem(
        &gateway.json(Method::POST, &by_shipment, Some(&ann), dispatch.clone()).await,
        StatusCode::FORBIDDEN,
    );
    let answer = gateway.json(Method::POST, &by_shipment, Some(&admin), dispatch.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        (answer.body["status"].as_str(), answer.body["tracking_number"].as_str()),
        (Some("dispatched"), Some("JD1"))
    );
    let by_order = format!("/api/shipments/{KNOWN_ORDER}/dispatch");
    assert_eq!(gateway.json(Method::POST, &by_order, Some(&admin), dispatch).await.status, StatusCode::OK);
    let answer =
        gateway.json(Method::POST, &by_order, Some(&admin), json!({"carrier": " ", "tracking_number": "1"})).await;
    assert_eq!(field_names(&answer), ["carrier"]);
    let unknown = format!("/api/shipments/{}/dispatch", Uuid::now_v7());
    let answer =
        gateway.json(Method::POST, &unknown, Some(&admin), json!({"carrier": "DHL", "tracking_number": "1"})).await;
    assert_problem(&answer, StatusCode::NOT_FOUND);
}
