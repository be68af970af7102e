//! The dashboard's live stream, `GET /api/admin/live`, against a fake service on a real
//! in-process bus: who may open it, its content type and what its rounds send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode, header};
use chrono::Utc;
use contracts::admin::{AdminEvent, EventsRead, ProjectionState, ProjectionStatus, ReadEvents};
use contracts::identity::{LogIn, Session};
use contracts::{Page, Role};
use eventshop_core::bus::{
    Rejection, RejectionKind, Reply, Request, RequestBus, RequestHandler, Running, ServiceDefinition, reply_body,
    request_body,
};
use futures::StreamExt;
use runtime::InProcessBus;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

/// A fake identity and a fake store: each `ReadEvents` finds the head one event further.
#[derive(Debug, Default)]
struct Fake {
    head: AtomicU64,
}

fn event(position: u64) -> AdminEvent {
    AdminEvent {
        position,
        event_id: Uuid::now_v7(),
        stream_id: "thing-1".to_owned(),
        version: position,
        event_type: "ThingHappened".to_owned(),
        schema_version: 1,
        recorded_at: Utc::now(),
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        acting_user: None,
        service: "store".to_owned(),
        payload: serde_json::json!({"n": position}),
    }
}

#[async_trait]
impl RequestHandler for Fake {
    async fn handle(&self, request: Request) -> Reply {
        match request.operation.as_str() {
            "LogIn" => {
                let command: LogIn = request_body(&request)?;
                if command.password.expose() != PASSWORD {
                    return Err(Rejection::new(RejectionKind::Invalid, "wrong email or password"));
                }
                let role = if command.email.as_str().starts_with("admin") { Role::Admin } else { Role::Customer };
                let user_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, command.email.as_str().as_bytes());
                reply_body(&Session { user_id, email: command.email, role, refresh_token: "refresh-1".to_owned() })
            }
            "ReadEvents" => {
                let read: ReadEvents = request_body(&request)?;
                let head = self.head.fetch_add(1, Ordering::SeqCst) + 1;
                let events: Vec<AdminEvent> = (read.after + 1..=head).take(read.limit as usize).map(event).collect();
                let scanned_to = events.last().map_or(read.after.max(head), |event| event.position);
                reply_body(&EventsRead { events, scanned_to, head })
            }
            "ListProjections" => reply_body(&vec![ProjectionStatus {
                name: "store.things".to_owned(),
                service: "store".to_owned(),
                position: self.head.load(Ordering::SeqCst),
                lag: 0,
                status: ProjectionState::Live,
                rebuild_position: None,
            }]),
            "ListConsumers" => reply_body(&Vec::<contracts::admin::ConsumerStatus>::new()),
            "ListOrders" => reply_body(&Page::<contracts::orders::Order> { items: Vec::new(), next_cursor: None }),
            other => Err(Rejection::new(RejectionKind::NotFound, format!("the fake has no {other}"))),
        }
    }
}

struct Gateway {
    router: Router,
    _served: Vec<Box<dyn Running>>,
}

async fn gateway() -> Gateway {
    let bus = InProcessBus::new();
    let fake = Arc::new(Fake::default());
    let mut served = Vec::new();
    for (name, operations) in [
        ("identity", vec!["LogIn"]),
        ("orders", vec!["ListOrders"]),
        ("store", vec!["ReadEvents", "ListProjections", "ListConsumers"]),
    ] {
        let definition = ServiceDefinition {
            name: name.to_owned(),
            version: "test".to_owned(),
            description: "fake".to_owned(),
            operations: operations.into_iter().map(str::to_owned).collect(),
        };
        served.push(bus.serve(definition, fake.clone()).await.expect("serves"));
    }
    let config = gateway::GatewayConfig { request_timeout: Duration::from_millis(300), ..Default::default() };
    Gateway { router: gateway::router(Arc::new(bus), config), _served: served }
}

impl Gateway {
    async fn log_in(&self, email: &str) -> String {
        let request = HttpRequest::post("/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("grant_type=password&username={email}&password={PASSWORD}")))
            .expect("a request");
        let response = self.router.clone().oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    async fn open_live(&self, token: Option<&str>) -> axum::response::Response {
        let mut request = HttpRequest::get("/api/admin/live");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.router.clone().oneshot(request.body(Body::empty()).expect("a request")).await.expect("an answer")
    }
}

/// The `(event, data)` of each complete event in `text`.
fn events_in(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim_start);
            Some((field("event:")?.to_owned(), serde_json::from_str(field("data:")?).expect("JSON data")))
        })
        .collect()
}

#[tokio::test]
async fn the_live_stream_is_for_administrators_only() {
    let gateway = gateway().await;
    assert_eq!(gateway.open_live(None).await.status(), StatusCode::UNAUTHORIZED);
    let ann = gateway.log_in("ann@example.com").await;
    let answer = gateway.open_live(Some(&ann)).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn the_live_stream_sends_services_at_once_then_every_round() {
    let gateway = gateway().await;
    let admin = gateway.log_in("admin@example.com").await;
    let answer = gateway.open_live(Some(&admin)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let content_type = answer.headers()[header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");

    let mut body = answer.into_body().into_data_stream();
    let first = tokio::time::timeout(Duration::from_secs(2), body.next())
        .await
        .expect("the first chunk comes at once")
        .expect("a chunk")
        .expect("bytes");
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains("event: services"), "{first}");
    let (_, services) = &events_in(&first)[0];
    let names: Vec<&str> =
        services["items"].as_array().expect("items").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["identity", "orders", "store"], "{services}");

    // Reads until the second round's events: the store recorded one more event per read.
    let mut text = first;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = events_in(&text);
        if events.iter().filter(|(name, _)| name == "events").count() >= 2 {
            break events;
        }
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("two rounds in time");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk").expect("bytes")));
    };
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "services",
            "projections",
            "consumers",
            "throughput",
            "events",
            "services",
            "projections",
            "consumers",
            "throughput",
            "events"
        ],
        "{text}"
    );
    let first_sample = &events[3].1;
    assert_eq!(first_sample["events_per_second"], Value::Null, "{first_sample}");
    assert_eq!(first_sample["heads"]["store"], 1, "{first_sample}");
    assert_eq!(first_sample["orders"]["confirmed"], 0, "{first_sample}");
    assert_eq!(events[4].1["items"].as_array().map(Vec::len), Some(0), "history is not resent: {text}");
    let second_sample = &events[8].1;
    assert!(second_sample["events_per_second"].as_f64().is_some_and(|rate| rate > 0.0), "{second_sample}");
    assert!(second_sample["commands_per_second"].is_number(), "{second_sample}");
    let tail: Vec<u64> =
        events[9].1["items"].as_array().expect("items").iter().filter_map(|e| e["position"].as_u64()).collect();
    assert_eq!(tail, [2], "{text}");
    // Dropping the body ends the stream: nothing of it keeps running.
    drop(body);
}
