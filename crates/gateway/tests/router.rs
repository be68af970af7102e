//! The router's HTTP mapping, against fake services on a real in-process bus: statuses,
//! problem documents, headers, tokens, the login limit and what reaches the bus.
//!
//! The fakes answer just enough to exercise the gateway; the real services are tested
//! end to end by the binary's tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request as HttpRequest, StatusCode, header};
use chrono::Utc;
use contracts::Role;
use contracts::catalog::{GetProduct, Product, UpdateProduct};
use contracts::identity::{LogIn, RegisterUser, Session, User};
use contracts::inventory::{Inventory, Restock, StockLevels};
use contracts::values::{Category, Description, Email, PersonName, ProductName, Sku};
use contracts::{Money, Page};
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

/// Fake identity, catalog, inventory and payments in one handler, remembering every
/// request it was sent.
#[derive(Debug, Default)]
struct FakeServices {
    received: Mutex<Vec<Request>>,
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

#[async_trait]
impl RequestHandler for FakeServices {
    async fn handle(&self, request: Request) -> Reply {
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(request.clone());
        match request.operation.as_str() {
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
                let user_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, command.email.as_str().as_bytes());
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
    let operations =
        ["RegisterUser", "LogIn", "GetUser", "GetProduct", "UpdateProduct", "ListProducts", "Restock", "GetWallet"];
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
    gateway_serving(&["identity", "catalog", "inventory"]).await
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
        let mut request =
            HttpRequest::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
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
    let gateway = gateway().await;
    let answer = gateway.get("/health/ready", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["missing"], json!(["payments"]));
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
