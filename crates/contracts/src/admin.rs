//! The standard admin operations every service answers about its own store, consumers and
//! read models (SPEC §4 admin routes, §6 dashboard).
//!
//! They are not [`Operation`](eventshop_core::bus::Operation)s: an operation belongs to one
//! service, while these are sent by name to every service in turn (the gateway asks each
//! service it discovers on the bus). The names are the `operation` of a bus request; the
//! bodies and replies are the types below, as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `ReadEvents`: the service's own events in global order, filtered.
pub const READ_EVENTS: &str = "ReadEvents";
/// `ListConsumers`: the service's event consumers, their positions and dead letters.
pub const LIST_CONSUMERS: &str = "ListConsumers";
/// `ListDeadLetters`: the service's dead letters, oldest first.
pub const LIST_DEAD_LETTERS: &str = "ListDeadLetters";
/// `RetryDeadLetter`: hands a dead letter's stream to its consumer again.
pub const RETRY_DEAD_LETTER: &str = "RetryDeadLetter";
/// `DiscardDeadLetter`: drops a dead letter unhandled.
pub const DISCARD_DEAD_LETTER: &str = "DiscardDeadLetter";
/// `ListProjections`: the service's live views, their positions and lag.
pub const LIST_PROJECTIONS: &str = "ListProjections";
/// `RebuildProjection`: replays the store into a fresh copy of one view, then swaps it in.
pub const REBUILD_PROJECTION: &str = "RebuildProjection";
/// `ReadCommands`: the requests this instance handled recently, of one transaction.
pub const READ_COMMANDS: &str = "ReadCommands";

/// The most events one `ReadEvents` returns.
pub const MAX_EVENTS: u32 = 1000;

/// A `ReadEvents` request. Filters combine with "and".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEvents {
    /// Only events with a position above this one (0: from the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many events, 1..=[`MAX_EVENTS`].
    pub limit: u32,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
}

/// One recorded event, as an admin sees it (SPEC §4 "event (admin)").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminEvent {
    /// The global position in the store of `service`.
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub acting_user: Option<Uuid>,
    pub service: String,
    pub payload: serde_json::Value,
}

/// The answer to `ReadEvents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsRead {
    pub events: Vec<AdminEvent>,
    /// How far the store was read: the next request's `after`. A scan stops at a bound
    /// even when it found fewer than `limit` matching events.
    pub scanned_to: u64,
    /// The store's last position when the read ended: `scanned_to == head` means the end.
    pub head: u64,
}

/// One event consumer of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerStatus {
    pub name: String,
    pub service: String,
    /// How far the consumer has read its source's global order.
    pub position: u64,
    pub dead_letters: u64,
}

/// An event a consumer gave up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterSummary {
    pub id: Uuid,
    pub consumer: String,
    pub service: String,
    pub reason: String,
    pub attempts: u32,
    pub parked_at: DateTime<Utc>,
    pub event: AdminEvent,
}

/// `ListDeadLetters` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDeadLetters {
    pub limit: u32,
}

/// `RetryDeadLetter` and `DiscardDeadLetter` requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterAction {
    pub id: Uuid,
}

/// What a retry or discard did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterOutcome {
    pub id: Uuid,
    /// `retried` (the stream flows again), `still_failing`, or `discarded`.
    pub outcome: String,
}

/// `live` or `rebuilding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionState {
    Live,
    Rebuilding,
}

/// One read model of the service (SPEC §4 "projection").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub service: String,
    pub position: u64,
    /// The store's head position minus the view's.
    pub lag: u64,
    pub status: ProjectionState,
    /// While rebuilding: how far the replay has come.
    #[serde(default)]
    pub rebuild_position: Option<u64>,
}

/// `RebuildProjection` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildProjection {
    pub name: String,
}

/// The most commands one `ReadCommands` returns.
pub const MAX_COMMANDS: u32 = 1000;

/// A `ReadCommands` request: the most recent `limit` (1..=[`MAX_COMMANDS`]) requests of
/// one transaction that the instance handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCommands {
    pub correlation_id: Uuid,
    pub limit: u32,
}

/// One request (command or query) a service instance handled, without its body (which
/// may hold passwords).
///
/// Commands are not events: they are kept in memory by the instance that handled them,
/// the most recent only, and are gone when it stops. The events they caused are durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCommand {
    /// The operation, e.g. `PlaceOrder`.
    pub operation: String,
    pub service: String,
    /// The request's own id: the causation id of the events and requests it caused.
    pub message_id: Uuid,
    pub causation_id: Uuid,
    pub correlation_id: Uuid,
    pub acting_user: Option<Uuid>,
    /// When the instance began handling it.
    pub started_at: DateTime<Utc>,
    /// How long the handling took, in microseconds.
    pub duration_micros: u64,
    /// `ok`, or the kind of the rejection (`invalid`, `not_found`, `conflict`, …).
    pub outcome: String,
}

/// The answer to `ReadCommands`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandsRead {
    pub commands: Vec<AdminCommand>,
}
