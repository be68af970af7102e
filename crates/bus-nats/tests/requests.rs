//! Requests over NATS beyond the conformance suite: what crosses the wire, what a failing
//! handler becomes, concurrency, stopping, discovery across namespaces; and (ignored) a
//! measurement of the round trip against raw NATS.
//!
//! Needs NATS at `EVENTSHOP_TEST_NATS_URL` (default `nats://127.0.0.1:4222`); without it
//! the tests skip, or fail under `CI=true`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_trait::async_trait;
use bus_nats::{Namespace, NatsBus};
use eventshop_core::Payload;
use eventshop_core::bus::{
    BusError, MessageContext, Rejection, RejectionKind, Reply, Request, RequestBus, RequestHandler, ServiceDefinition,
};
use futures::StreamExt;

const TIMEOUT: Duration = Duration::from_secs(10);

fn fresh_namespace() -> Namespace {
    bus_nats::testing::fresh_namespace("t")
}

async fn connect() -> Option<async_nats::Client> {
    bus_nats::testing::connect("t").await
}

/// Two connections in one fresh namespace: a server and a caller.
async fn two_buses() -> Option<(NatsBus, NatsBus)> {
    let namespace = fresh_namespace();
    let (server, caller) = (connect().await?, connect().await?);
    Some((NatsBus::from_client(server, namespace.clone()), NatsBus::from_client(caller, namespace)))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

const OPERATIONS: &[&str] = &["Echo", "Refuse", "Panic", "Slow"];

fn definition(name: &str) -> ServiceDefinition {
    ServiceDefinition {
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        description: "a service of the NATS request tests".to_owned(),
        operations: OPERATIONS.iter().map(|&operation| operation.to_owned()).collect(),
    }
}

fn request(service: &str, operation: &str, body: serde_json::Value) -> Request {
    Request {
        service: service.to_owned(),
        operation: operation.to_owned(),
        context: MessageContext::new_transaction(None),
        body: Payload::from_value(&body),
    }
}

/// Echoes, refuses, panics, or echoes slowly, and tracks how many requests it has in hand.
#[derive(Debug, Default)]
struct TestService {
    in_hand: AtomicUsize,
    most_in_hand: AtomicUsize,
}

#[async_trait]
impl RequestHandler for TestService {
    async fn handle(&self, request: Request) -> Reply {
        let now = self.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_hand.fetch_max(now, Ordering::SeqCst);
        let reply = match request.operation.as_str() {
            "Echo" => Ok(request.body),
            "Refuse" => Err(Rejection::new(RejectionKind::PreconditionFailed, "expected version 3")),
            "Panic" => panic!("the handler is told to panic"),
            "Slow" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(request.body)
            }
            other => Err(Rejection::new(RejectionKind::Invalid, format!("unknown operation {other}"))),
        };
        self.in_hand.fetch_sub(1, Ordering::SeqCst);
        reply
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_fails_its_request_and_the_endpoint_lives_on() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("panicky");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    for _ in 0..3 {
        let reply = caller.request(request(&name, "Panic", serde_json::json!({})), TIMEOUT).await;
        let rejection = reply.expect("delivered").expect_err("failed");
        assert_eq!(rejection.kind, RejectionKind::Internal);
        assert!(!rejection.message.contains("told to panic"), "the panic stays in the log: {rejection}");
    }
    let reply = caller.request(request(&name, "Echo", serde_json::json!("still here")), TIMEOUT).await;
    assert_eq!(reply.expect("delivered").expect("answered").to_value().expect("json"), "still here");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_is_not_json_text_is_refused_as_invalid() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("strict");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    let subject = server.namespace().operation_subject(&name, "Echo");
    for body in [&b"\xff\xfe"[..], b"not json", b""] {
        let reply = caller.client().request(subject.clone(), body.to_vec().into()).await.expect("a reply");
        let headers = reply.headers.expect("an error reply has headers");
        assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).expect("code").as_str(), "400");
        let rejection: Rejection =
            serde_json::from_str(headers.get(NATS_SERVICE_ERROR).expect("status").as_str()).expect("a rejection");
        assert_eq!(rejection.kind, RejectionKind::Invalid, "{body:?}: {rejection}");
        assert!(reply.payload.is_empty());
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejection_carries_an_http_like_code_for_other_tools() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("coded");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    let subject = server.namespace().operation_subject(&name, "Refuse");
    let reply = caller.client().request(subject, "{}".into()).await.expect("a reply");
    let headers = reply.headers.expect("headers");
    assert_eq!(headers.get(NATS_SERVICE_ERROR_CODE).expect("code").as_str(), "412");
    let reply = caller.request(request(&name, "Refuse", serde_json::json!({})), TIMEOUT).await.expect("delivered");
    assert_eq!(reply, Err(Rejection::new(RejectionKind::PreconditionFailed, "expected version 3")));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_handled_concurrently() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("busy");
    let service = Arc::new(TestService::default());
    let served = server.serve(definition(&name), service.clone()).await.expect("serve");
    let started = Instant::now();
    let replies = futures::future::join_all(
        (0..20).map(|i| caller.request(request(&name, "Slow", serde_json::json!(i)), TIMEOUT)),
    )
    .await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.expect("delivered").expect("answered").to_value().expect("json"), serde_json::json!(i));
    }
    // One after the other they would take 6 s.
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(service.most_in_hand.load(Ordering::SeqCst) > 1, "requests overlapped");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_finishes_the_requests_in_hand_and_takes_no_more() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("stopping");
    let service = Arc::new(TestService::default());
    let served = server.serve(definition(&name), service.clone()).await.expect("serve");
    let in_flight = tokio::spawn({
        let (caller, name) = (caller.clone(), name.clone());
        async move { caller.request(request(&name, "Slow", serde_json::json!("last")), TIMEOUT).await }
    });
    while service.in_hand.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served.stop().await;
    assert_eq!(service.in_hand.load(Ordering::SeqCst), 0, "stop returned after the request in hand");
    let reply = in_flight.await.expect("joined").expect("delivered").expect("answered");
    assert_eq!(reply.to_value().expect("json"), "last");
    let after = caller.request(request(&name, "Echo", serde_json::json!({})), TIMEOUT).await;
    assert!(matches!(after, Err(BusError::NoResponders { .. })), "got {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_operation_has_no_responders() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("narrow");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    let reply = caller.request(request(&name, "Unknown", serde_json::json!({})), TIMEOUT).await;
    assert!(matches!(reply, Err(BusError::NoResponders { .. })), "got {reply:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_counts_requests_and_errors_and_sees_only_its_namespace() {
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("counted");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    for operation in ["Echo", "Echo", "Refuse"] {
        caller.request(request(&name, operation, serde_json::json!({})), TIMEOUT).await.expect("delivered").ok();
    }
    let found = caller.discover().await.expect("discover");
    assert_eq!(found.len(), 1, "only this namespace's instance: {found:?}");
    let instance = &found[0];
    assert_eq!((instance.name.as_str(), instance.version.as_str()), (name.as_str(), "0.1.0"));
    assert_eq!(instance.requests.get("Echo"), Some(&2));
    assert_eq!(instance.requests.get("Refuse"), Some(&1));
    assert_eq!(instance.errors, 1);
    assert!(instance.started_at <= chrono::Utc::now());
    assert!(chrono::Utc::now() - instance.started_at < chrono::TimeDelta::minutes(1));

    let elsewhere = NatsBus::from_client(caller.client().clone(), fresh_namespace());
    let foreign = elsewhere.discover().await.expect("discover");
    assert!(foreign.iter().all(|instance| instance.name != name), "another namespace sees nothing: {foreign:?}");
    served.stop().await;
}

/// The round trip of a small request, median of many, against raw NATS on the same
/// connections. Run with
/// `cargo test -p bus-nats --release --test requests -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a test"]
async fn request_round_trip_against_raw_nats() {
    const ROUNDS: usize = 2000;
    const WARM_UP: usize = 200;
    let Some((server, caller)) = two_buses().await else { return };
    let name = unique("timed");
    let served = server.serve(definition(&name), Arc::new(TestService::default())).await.expect("serve");
    let body = serde_json::json!({"product_id": "p-1", "quantity": 2, "note": "a small request"});
    let payload: bytes::Bytes = body.to_string().into();

    // A raw responder: a plain subscription that echoes, in the same namespace.
    let raw_subject = format!("{}.raw.echo", server.namespace());
    let mut raw_requests = server.client().subscribe(raw_subject.clone()).await.expect("subscribe");
    let responder = server.client().clone();
    let raw_server = tokio::spawn(async move {
        while let Some(message) = raw_requests.next().await {
            if let Some(reply) = message.reply {
                responder.publish(reply, message.payload).await.expect("respond");
            }
        }
    });
    server.client().flush().await.expect("flush");
    caller.client().request(raw_subject.clone(), payload.clone()).await.expect("the raw responder answers");

    let operation_subject = server.namespace().operation_subject(&name, "Echo");
    let mut raw_to_raw = Vec::with_capacity(ROUNDS);
    let mut raw_to_service = Vec::with_capacity(ROUNDS);
    let mut bus_to_service = Vec::with_capacity(ROUNDS);
    // Interleaved, so that a slow moment of the machine weighs on all three alike.
    for round in 0..WARM_UP + ROUNDS {
        let started = Instant::now();
        caller.client().request(raw_subject.clone(), payload.clone()).await.expect("raw");
        let raw = started.elapsed();

        let started = Instant::now();
        caller.client().request(operation_subject.clone(), payload.clone()).await.expect("raw to the service");
        let to_service = started.elapsed();

        let started = Instant::now();
        caller.request(request(&name, "Echo", body.clone()), TIMEOUT).await.expect("delivered").expect("answered");
        let through_bus = started.elapsed();

        if round >= WARM_UP {
            raw_to_raw.push(raw);
            raw_to_service.push(to_service);
            bus_to_service.push(through_bus);
        }
    }
    let raw = summary("raw request -> raw responder", &mut raw_to_raw);
    summary("raw request -> served endpoint", &mut raw_to_service);
    let bus = summary("bus request -> served endpoint", &mut bus_to_service);
    println!("overhead: {:.2}x raw (median)", bus.as_secs_f64() / raw.as_secs_f64());
    raw_server.abort();
    served.stop().await;
}

/// Prints the median and 99th percentile of `samples` and returns the median.
fn summary(what: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let at = |quantile: f64| samples[((samples.len() - 1) as f64 * quantile) as usize];
    println!("{what:32} median {:>9.1?}  p99 {:>9.1?}  ({} rounds)", at(0.5), at(0.99), samples.len());
    at(0.5)
}
