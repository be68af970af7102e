//! The bus: how services talk to each other, and nothing else does (SPEC §1, §8).
//!
//! Commands and queries are *requests* to a named service with one *reply* and a
//! deadline; a refusal by the domain is a reply too ([`Rejection`]), never a timeout.
//! Events are not sent by services at all: each service's event store is its outbox, and
//! the bus carries what the stores recorded to *consumers*, at least once and in order per
//! stream. A consumer makes its effect once by recording the event id with it
//! ([`EventStore::append_handled`](crate::EventStore::append_handled)).
//!
//! Two implementations pass one conformance suite: the in-process bus (the embedded
//! default, in `runtime`) and NATS JetStream (`bus-nats`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler};
use crate::envelope::{Metadata, Payload, RecordedEvent};
use crate::store::EventStore;

/// Header names, the same on every transport.
pub mod headers {
    pub const CORRELATION_ID: &str = "Eventshop-Correlation-Id";
    pub const CAUSATION_ID: &str = "Eventshop-Causation-Id";
    pub const MESSAGE_ID: &str = "Eventshop-Message-Id";
    pub const ACTING_USER: &str = "Eventshop-Acting-User";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
}

/// What travels with every request and event: which business transaction it belongs to,
/// what caused it, on whose behalf, and the trace it is part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    /// This message's own id: the causation id of whatever it causes.
    pub message_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub acting_user: Option<Uuid>,
    /// W3C `traceparent` of the sender's span, if it is traced.
    pub traceparent: Option<String>,
}

impl MessageContext {
    /// The first message of a new business transaction.
    pub fn new_transaction(acting_user: Option<Uuid>) -> Self {
        let id = Uuid::now_v7();
        MessageContext { message_id: id, correlation_id: id, causation_id: id, acting_user, traceparent: None }
    }

    /// A message caused by the recorded `event`: same transaction, same user.
    pub fn caused_by_event(event: &RecordedEvent) -> Self {
        MessageContext {
            message_id: Uuid::now_v7(),
            correlation_id: event.correlation_id,
            causation_id: event.event_id,
            acting_user: event.acting_user,
            traceparent: None,
        }
    }

    /// A message caused by this one.
    pub fn child(&self) -> Self {
        MessageContext {
            message_id: Uuid::now_v7(),
            correlation_id: self.correlation_id,
            causation_id: self.message_id,
            acting_user: self.acting_user,
            traceparent: self.traceparent.clone(),
        }
    }

    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The metadata of events this message causes.
    pub fn event_metadata(&self) -> Metadata {
        Metadata { correlation_id: self.correlation_id, causation_id: self.message_id, acting_user: self.acting_user }
    }

    /// The context as transport headers.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (headers::MESSAGE_ID, self.message_id.to_string()),
            (headers::CORRELATION_ID, self.correlation_id.to_string()),
            (headers::CAUSATION_ID, self.causation_id.to_string()),
        ];
        if let Some(user) = self.acting_user {
            pairs.push((headers::ACTING_USER, user.to_string()));
        }
        if let Some(traceparent) = &self.traceparent {
            pairs.push((headers::TRACEPARENT, traceparent.clone()));
        }
        pairs
    }

    /// The context read back from transport headers; a missing or malformed id starts a
    /// new transaction rather than failing the message.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let uuid = |name: &str| header(name).and_then(|value| value.parse::<Uuid>().ok());
        let message_id = uuid(headers::MESSAGE_ID).unwrap_or_else(Uuid::now_v7);
        let correlation_id = uuid(headers::CORRELATION_ID).unwrap_or(message_id);
        MessageContext {
            message_id,
            correlation_id,
            causation_id: uuid(headers::CAUSATION_ID).unwrap_or(correlation_id),
            acting_user: uuid(headers::ACTING_USER),
            traceparent: header(headers::TRACEPARENT).map(str::to_owned),
        }
    }
}

/// The operation every service answers to say that it runs and can read its own store;
/// what readiness checks are built on.
pub const CHECK_HEALTH: &str = "CheckHealth";

/// A command or query addressed to one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub service: String,
    /// The operation's name, e.g. `PlaceOrder`.
    pub operation: String,
    pub context: MessageContext,
    pub body: Payload,
}

/// Why a service refused a request. An answer, like a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    /// Machine-readable detail, e.g. the bad fields of an invalid request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Rejection {
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Rejection { kind, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// The kinds of refusal, each of which the gateway maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// The request is malformed (400/422).
    Invalid,
    /// The addressed resource does not exist, or is not the caller's (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// A precondition such as an expected version failed (412).
    PreconditionFailed,
    /// The caller may not do this (403).
    Forbidden,
    /// The service failed; details are in its log (500).
    Internal,
    /// A service this one needed did not answer, or is not running: retrying later may
    /// succeed (503).
    Unavailable,
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            RejectionKind::Invalid => "invalid",
            RejectionKind::NotFound => "not found",
            RejectionKind::Conflict => "conflict",
            RejectionKind::PreconditionFailed => "precondition failed",
            RejectionKind::Forbidden => "forbidden",
            RejectionKind::Internal => "internal error",
            RejectionKind::Unavailable => "unavailable",
        };
        f.write_str(name)
    }
}

/// A reply: the result body, or the service's refusal.
pub type Reply = Result<Payload, Rejection>;

/// The bus could not deliver a request or its reply.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{service}.{operation} did not answer within {after:?}")]
    Timeout { service: String, operation: String, after: Duration },
    #[error("no instance of service {service} is running")]
    NoResponders { service: String },
    #[error("bus transport: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BusError {
    pub fn transport(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        BusError::Transport(Box::new(error))
    }
}

/// Answers the requests of one service.
#[async_trait]
pub trait RequestHandler: Send + Sync + 'static {
    async fn handle(&self, request: Request) -> Reply;
}

/// A service as it announces itself for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefinition {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The operations it answers; each is its own endpoint.
    pub operations: Vec<String>,
}

/// A running instance of a service, as found by discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    pub name: String,
    pub id: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Requests answered per operation since it started.
    pub requests: BTreeMap<String, u64>,
    /// Of those, how many ended in an error reply.
    pub errors: u64,
}

/// Something running on the bus that can be stopped: a served service, a consumer, a relay.
#[async_trait]
pub trait Running: Send + Sync + fmt::Debug {
    /// Stops taking new work, finishes the work in hand and returns.
    async fn stop(self: Box<Self>);
}

/// Commands and queries: request/reply with a deadline.
#[async_trait]
pub trait RequestBus: Send + Sync + fmt::Debug {
    /// Sends `request` to one instance of its service and waits up to `timeout` for the reply.
    async fn request(&self, request: Request, timeout: Duration) -> Result<Reply, BusError>;

    /// Serves `definition`'s operations with `handler`. Instances of one service share the
    /// requests between them.
    async fn serve(
        &self,
        definition: ServiceDefinition,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn Running>, BusError>;

    /// The service instances running now.
    async fn discover(&self) -> Result<Vec<ServiceInstance>, BusError>;
}

/// Events: the stores are the outbox, and the bus carries what they recorded to consumers.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// Makes the events that `service` records in `store` available to consumers: a relay
    /// to the broker, or for the in-process bus, the store itself.
    async fn publish_events(&self, service: &str, store: Arc<dyn EventStore>) -> Result<Box<dyn Running>, BusError>;

    /// Delivers the source's events to `handler`, at least once and in order per stream,
    /// with `storage` (the consuming service's own database) keeping its dead letters.
    async fn consume(
        &self,
        definition: ConsumerDefinition,
        handler: Arc<dyn EventHandler>,
        storage: Arc<dyn ConsumerStorage>,
    ) -> Result<ConsumerHandle, BusError>;
}

/// Both halves of a bus: what a service is given to talk to the others.
pub trait Bus: RequestBus + EventBus {}

impl<T: RequestBus + EventBus> Bus for T {}

/// A typed request: its service, its name and the type of its reply.
pub trait Operation: Serialize + DeserializeOwned + Send + Sync {
    const SERVICE: &'static str;
    const NAME: &'static str;
    type Reply: Serialize + DeserializeOwned + Send;
}

/// A typed request failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot encode or decode a message: {0}")]
    Codec(#[from] serde_json::Error),
}

/// Sends a typed request and decodes its reply.
pub async fn call<O: Operation>(
    bus: &dyn RequestBus,
    operation: &O,
    context: MessageContext,
    timeout: Duration,
) -> Result<O::Reply, CallError> {
    let body = Payload::from_json_unchecked(serde_json::to_string(operation)?);
    let request = Request { service: O::SERVICE.to_owned(), operation: O::NAME.to_owned(), context, body };
    let reply = bus.request(request, timeout).await??;
    Ok(serde_json::from_str(reply.as_str())?)
}

/// Encodes a reply body.
pub fn reply_body(value: &impl Serialize) -> Reply {
    serde_json::to_string(value)
        .map(Payload::from_json_unchecked)
        .map_err(|error| Rejection::new(RejectionKind::Internal, format!("cannot encode the reply: {error}")))
}

/// Decodes a request body, refusing a malformed one as [`RejectionKind::Invalid`].
pub fn request_body<T: DeserializeOwned>(request: &Request) -> Result<T, Rejection> {
    serde_json::from_str(request.body.as_str()).map_err(|error| {
        Rejection::new(RejectionKind::Invalid, format!("malformed {} request: {error}", request.operation))
    })
}
