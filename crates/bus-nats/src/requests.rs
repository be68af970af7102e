//! Requests over the NATS service API.
//!
//! A served service is an async-nats service: one endpoint per operation on
//! `<ns>.svc.<service>.<operation>`, every instance in the queue group `<ns>.<service>`,
//! so the server hands each request to one instance and `$SRV.PING|INFO|STATS` find them.
//!
//! On the wire a request is the JSON body with the [`MessageContext`] in headers. A reply
//! is either the JSON body, or a *service error*: error replies carry no body, so the
//! [`Rejection`] travels as JSON in the `Nats-Service-Error` header, with an HTTP-like
//! code in `Nats-Service-Error-Code` for tools such as `nats micro` that read only that.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::service::endpoint::Endpoint;
use async_nats::service::{self, NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, ServiceExt};
use async_nats::{HeaderMap, HeaderValue};
use async_trait::async_trait;
use bytes::Bytes;
use eventshop_core::Payload;
use eventshop_core::bus::{
    BusError, MessageContext, Rejection, RejectionKind, Reply, Request, RequestHandler, Running, ServiceDefinition,
};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::NatsBus;
use crate::discovery::NAMESPACE_METADATA;

/// How long a stopping service waits for the requests in hand. Their callers have
/// usually given up long before; a handler still running after this is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long `serve` waits for the server to confirm it has taken the subscriptions.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` to one instance of its service and waits up to `timeout` for the reply.
#[tracing::instrument(skip_all, fields(
    service = %request.service,
    operation = %request.operation,
    request_id = %request.context.message_id,
    correlation_id = %request.context.correlation_id,
))]
pub async fn request(bus: &NatsBus, request: Request, timeout: Duration) -> Result<Reply, BusError> {
    let subject = bus.namespace().operation_subject(&request.service, &request.operation);
    let nats_request = async_nats::Request::new()
        .payload(Bytes::from(request.body.into_string()))
        .headers(context_headers(&request.context))
        .timeout(Some(timeout));
    match bus.client().send_request(subject, nats_request).await {
        Ok(message) => Ok(decode_reply(&message)),
        Err(error) => Err(match error.kind() {
            RequestErrorKind::TimedOut => {
                BusError::Timeout { service: request.service, operation: request.operation, after: timeout }
            }
            RequestErrorKind::NoResponders => BusError::NoResponders { service: request.service },
            _ => BusError::transport(error),
        }),
    }
}

/// Serves `definition`'s operations with `handler` until the returned [`Running`] is stopped.
#[tracing::instrument(skip_all, fields(service = %definition.name))]
pub async fn serve(
    bus: &NatsBus,
    definition: ServiceDefinition,
    handler: Arc<dyn RequestHandler>,
) -> Result<Box<dyn Running>, BusError> {
    let namespace = bus.namespace();
    let service = bus
        .client()
        .service_builder()
        .description(&definition.description)
        .queue_group(namespace.queue_group(&definition.name))
        .metadata([(NAMESPACE_METADATA.to_owned(), namespace.as_str().to_owned())].into())
        .start(&definition.name, &definition.version)
        .await
        .map_err(BusError::Transport)?;
    let (stop, stopping) = watch::channel(false);
    let mut endpoints = Vec::with_capacity(definition.operations.len());
    for operation in &definition.operations {
        let subject = namespace.operation_subject(&definition.name, operation);
        let endpoint = match service.endpoint_builder().name(operation).add(subject).await {
            Ok(endpoint) => endpoint,
            Err(error) => {
                // Returning drops `stop`, which ends the endpoints already running.
                let _ = service.stop().await;
                return Err(BusError::Transport(error));
            }
        };
        let target = Arc::new(Target { service: definition.name.clone(), operation: operation.clone() });
        endpoints.push(tokio::spawn(run_endpoint(endpoint, target, handler.clone(), stopping.clone())));
    }
    confirm_registered(bus.client(), &service).await;
    tracing::info!(version = %definition.version, operations = definition.operations.len(), "serving");
    Ok(Box::new(Served { service: Some(service), client: bus.client().clone(), stop, endpoints }))
}

/// Waits until the server has taken the service's subscriptions, so that a request sent
/// from another connection once `serve` returns finds it. The server handles one
/// connection's messages in order: once it has answered a ping sent after them, it has
/// taken them. If the ping fails, the subscriptions still stand; they take effect when
/// the server gets to them.
async fn confirm_registered(client: &async_nats::Client, service: &service::Service) {
    let info = service.info().await;
    let ping = async_nats::Request::new().timeout(Some(CONFIRM_TIMEOUT));
    if let Err(error) = client.send_request(format!("$SRV.PING.{}.{}", info.name, info.id), ping).await {
        tracing::warn!(%error, "cannot confirm that the server has taken the service's subscriptions");
    }
}

/// A served instance. Stopping it deregisters it and finishes the requests in hand;
/// dropping it without stopping deregisters it and lets them finish in the background.
#[derive(Debug)]
struct Served {
    /// `None` once stopped.
    service: Option<service::Service>,
    client: async_nats::Client,
    stop: watch::Sender<bool>,
    endpoints: Vec<JoinHandle<()>>,
}

#[async_trait]
impl Running for Served {
    async fn stop(mut self: Box<Self>) {
        if let Some(service) = self.service.take()
            && let Err(error) = service.stop().await
        {
            tracing::warn!(%error, "cannot stop the service cleanly");
        }
        self.stop.send_replace(true);
        for endpoint in std::mem::take(&mut self.endpoints) {
            if let Err(error) = endpoint.await {
                tracing::error!(%error, "an endpoint task failed");
            }
        }
        // Push the unsubscriptions to the server, so that discovery right after this
        // no longer finds the instance.
        if let Err(error) = self.client.flush().await {
            tracing::warn!(%error, "cannot flush the unsubscriptions");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // `Service::stop` only signals and aborts; it completes on its first poll.
        if let Some(service) = self.service.take() {
            let _ = service.stop().now_or_never();
        }
    }
}

/// The operation an endpoint answers.
#[derive(Debug)]
struct Target {
    service: String,
    operation: String,
}

/// Reads one endpoint's requests and answers each in its own task, until told to stop;
/// then answers what was already delivered and waits for the answers in hand.
async fn run_endpoint(
    mut endpoint: Endpoint,
    target: Arc<Target>,
    handler: Arc<dyn RequestHandler>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut in_hand = JoinSet::new();
    let mut unsubscribed = false;
    loop {
        tokio::select! {
            request = endpoint.next() => match request {
                Some(request) => {
                    in_hand.spawn(answer(request, target.clone(), handler.clone()));
                }
                // Unsubscribed, and every request delivered before has been taken.
                None => break,
            },
            Some(answered) = in_hand.join_next(), if !in_hand.is_empty() => report_join(answered, &target),
            // The only change is to `true`; a dropped sender means the same.
            _ = stopping.changed(), if !unsubscribed => {
                unsubscribed = true;
                if let Err(error) = endpoint.stop().await {
                    tracing::warn!(operation = %target.operation, %error, "cannot unsubscribe the endpoint");
                    break;
                }
            }
        }
    }
    let finished = tokio::time::timeout(STOP_GRACE, async {
        while let Some(answered) = in_hand.join_next().await {
            report_join(answered, &target);
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            service = %target.service,
            operation = %target.operation,
            abandoned = in_hand.len(),
            "requests still in hand after {STOP_GRACE:?}; abandoning them"
        );
        in_hand.abort_all();
    }
}

fn report_join(answered: Result<(), tokio::task::JoinError>, target: &Target) {
    if let Err(error) = answered
        && !error.is_cancelled()
    {
        tracing::error!(service = %target.service, operation = %target.operation, %error, "answering a request failed");
    }
}

/// Handles one request and sends its reply.
async fn answer(request: service::Request, target: Arc<Target>, handler: Arc<dyn RequestHandler>) {
    let headers = request.message.headers.as_ref();
    let context = MessageContext::from_headers(|name| headers?.get(name).map(HeaderValue::as_str));
    let span = tracing::info_span!(
        "request",
        service = %target.service,
        operation = %target.operation,
        request_id = %context.message_id,
        correlation_id = %context.correlation_id,
    );
    async {
        let reply = match decode_body(&request.message.payload) {
            Ok(body) => {
                let handled =
                    Request { service: target.service.clone(), operation: target.operation.clone(), context, body };
                // A panicking handler fails its request, not the endpoint.
                AssertUnwindSafe(handler.handle(handled)).catch_unwind().await.unwrap_or_else(|panic| {
                    let panic = panic_message(panic.as_ref());
                    tracing::error!(%panic, "the handler panicked");
                    Err(Rejection::new(RejectionKind::Internal, "the service failed"))
                })
            }
            Err(rejection) => Err(rejection),
        };
        if let Err(rejection) = &reply
            && rejection.kind == RejectionKind::Internal
        {
            tracing::warn!(%rejection, "answered with an internal error");
        }
        if let Err(error) = request.respond(encode_reply(reply)).await {
            // Most likely the reply is larger than the server takes; say so instead.
            tracing::error!(%error, "cannot send the reply");
            let rejection = Rejection::new(RejectionKind::Internal, "the service could not send its reply");
            if let Err(error) = request.respond(Err(service_error(&rejection))).await {
                tracing::error!(%error, "cannot send the reply");
            }
        }
    }
    .instrument(span)
    .await;
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// The context as NATS headers. A value NATS cannot carry (a line break in a foreign
/// `traceparent`) is left out rather than failing the request.
fn context_headers(context: &MessageContext) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in context.to_headers() {
        match value.parse::<HeaderValue>() {
            Ok(value) => headers.insert(name, value),
            Err(error) => tracing::warn!(header = name, %error, "leaving out a header"),
        }
    }
    headers
}

/// A request body must be JSON text; anything else is refused before the handler sees it.
fn decode_body(payload: &[u8]) -> Result<Payload, Rejection> {
    decode_json(payload)
        .map_err(|problem| Rejection::new(RejectionKind::Invalid, format!("the request body {problem}")))
}

fn decode_json(payload: &[u8]) -> Result<Payload, String> {
    let text = std::str::from_utf8(payload).map_err(|error| format!("is not UTF-8 text: {error}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|error| format!("is not JSON: {error}"))?;
    Ok(Payload::from_json_unchecked(text.to_owned()))
}

fn encode_reply(reply: Reply) -> Result<Bytes, service::error::Error> {
    match reply {
        Ok(body) => Ok(Bytes::from(body.into_string())),
        Err(rejection) => Err(service_error(&rejection)),
    }
}

/// A rejection as a service error: the whole rejection as JSON in the status, since
/// error replies carry no body.
fn service_error(rejection: &Rejection) -> service::error::Error {
    // Compact JSON escapes line breaks, so the status is a valid header value.
    let status = serde_json::to_string(rejection).unwrap_or_else(|_| {
        serde_json::json!({"kind": RejectionKind::Internal, "message": "the service failed"}).to_string()
    });
    service::error::Error { status, code: status_code(rejection.kind) }
}

fn status_code(kind: RejectionKind) -> usize {
    match kind {
        RejectionKind::Invalid => 400,
        RejectionKind::Forbidden => 403,
        RejectionKind::NotFound => 404,
        RejectionKind::Conflict => 409,
        RejectionKind::PreconditionFailed => 412,
        RejectionKind::Internal => 500,
        RejectionKind::Unavailable => 503,
    }
}

/// A reply as the caller sees it. A service error that is not one of ours (another
/// kind of NATS service on the subject) becomes an internal error with its raw text,
/// so that nothing foreign reaches a user as a 4xx.
fn decode_reply(message: &async_nats::Message) -> Reply {
    if let Some(status) = message.headers.as_ref().and_then(|headers| headers.get(NATS_SERVICE_ERROR)) {
        return Err(serde_json::from_str::<Rejection>(status.as_str()).unwrap_or_else(|_| {
            let code = message.headers.as_ref().and_then(|headers| headers.get(NATS_SERVICE_ERROR_CODE));
            let code = code.map_or("", HeaderValue::as_str);
            Rejection::new(RejectionKind::Internal, status.as_str())
                .with_details(serde_json::json!({ "nats_service_error_code": code }))
        }));
    }
    decode_json(&message.payload)
        .map_err(|problem| Rejection::new(RejectionKind::Internal, format!("the service's reply {problem}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply with no body and these headers, as an error reply arrives.
    fn error_reply(headers: HeaderMap) -> async_nats::Message {
        async_nats::Message {
            subject: "inbox".into(),
            reply: None,
            payload: Bytes::new(),
            headers: Some(headers),
            status: None,
            description: None,
            length: 0,
        }
    }

    #[test]
    fn a_rejection_survives_the_service_error_header() {
        let rejection = Rejection::new(RejectionKind::Conflict, "line one\nline two: \"quoted\" Grüße")
            .with_details(serde_json::json!({"product_id": "p-1", "available": 0}));
        let error = service_error(&rejection);
        assert_eq!(error.code, 409);
        let header: HeaderValue = error.status.parse().expect("a valid header value");
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, header);
        let message = error_reply(headers);
        assert_eq!(decode_reply(&message), Err(rejection));
    }

    #[test]
    fn a_foreign_service_error_is_internal() {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_SERVICE_ERROR, "bad things");
        headers.insert(NATS_SERVICE_ERROR_CODE, "418");
        let message = error_reply(headers);
        let rejection = decode_reply(&message).expect_err("an error reply");
        assert_eq!(rejection.kind, RejectionKind::Internal);
        assert_eq!(rejection.message, "bad things");
    }

    #[test]
    fn bodies_must_be_json_text() {
        assert_eq!(decode_body(br#"{"a": [1, 2]}"#).expect("json").as_str(), r#"{"a": [1, 2]}"#);
        assert_eq!(decode_body(b"\xff\xfe").expect_err("not utf-8").kind, RejectionKind::Invalid);
        assert_eq!(decode_body(b"{\"a\":").expect_err("not json").kind, RejectionKind::Invalid);
        assert_eq!(decode_body(b"").expect_err("empty").kind, RejectionKind::Invalid);
    }

    #[test]
    fn a_traceparent_with_a_line_break_is_left_out() {
        let context = MessageContext::new_transaction(None).with_traceparent(Some("00-abc\r\nX-Evil: 1".to_owned()));
        let headers = context_headers(&context);
        assert!(headers.get(eventshop_core::bus::headers::TRACEPARENT).is_none());
        assert!(headers.get(eventshop_core::bus::headers::MESSAGE_ID).is_some());
    }
}
