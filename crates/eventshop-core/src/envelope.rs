//! The event envelope: what is stored with every event (SPEC section 1).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event's identity: a UUID v7, so ids sort by creation time.
pub type EventId = Uuid;

/// A stream's version: the number of events in it. A new stream has version 0, its first
/// event has version 1.
pub type Version = u64;

/// A position in the store's global order. Position 0 is "before the first event"; the
/// first event recorded has position 1 or more. Positions grow but may have gaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of an event stream: `<category>-<id>`, e.g. `product-0192…`, as KurrentDB names
/// them. One aggregate instance is one stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// The stream of the aggregate `id` in `category`.
    pub fn new(category: &str, id: impl fmt::Display) -> Self {
        StreamId(format!("{category}-{id}"))
    }

    /// A stream id taken as it is, e.g. read back from a store.
    pub fn from_raw(raw: impl Into<String>) -> Self {
        StreamId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-`: the aggregate type.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(self.0.as_str(), |(category, _)| category)
    }

    /// Which of `partitions` lanes the stream's events take (FNV-1a of the id): every
    /// transport sends a stream's events down one lane, so they stay in order while other
    /// streams' events are handled beside them. Stable across processes and releases,
    /// since NATS subjects are named after it.
    pub fn partition(&self, partitions: u32) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self.0.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash % partitions.max(1)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON document kept as the text it was stored as.
///
/// Events are read far more often than they are decoded, so the store hands out the
/// text and only the consumer that needs the typed event parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// Wraps text that is already known to be JSON (written by serde, or read back from a
    /// store that validated it on insert).
    pub fn from_json_unchecked(json: String) -> Self {
        Payload(json)
    }

    pub fn from_value(value: &serde_json::Value) -> Self {
        Payload(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Ok(Payload(raw.get().to_owned()))
    }
}

/// Who and what caused an event: travels from the HTTP request through every command and
/// reaction of one business transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The business transaction (e.g. one order) this event belongs to.
    pub correlation_id: Uuid,
    /// The message (command or event) that directly caused this event.
    pub causation_id: Uuid,
    /// The user on whose behalf the change was made, if any.
    pub acting_user: Option<Uuid>,
}

impl Metadata {
    /// The start of a new business transaction: it is its own cause.
    pub fn new_transaction(acting_user: Option<Uuid>) -> Self {
        let id = Uuid::now_v7();
        Metadata { correlation_id: id, causation_id: id, acting_user }
    }

    /// Metadata for an event caused by `event`: same transaction and user.
    pub fn caused_by(event: &RecordedEvent) -> Self {
        Metadata { correlation_id: event.correlation_id, causation_id: event.event_id, acting_user: event.acting_user }
    }
}

/// An event about to be appended. The store assigns its stream version, global position
/// and recorded-at time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Payload,
    pub metadata: Metadata,
}

impl NewEvent {
    /// A new event with a fresh UUID v7 id.
    pub fn new(event_type: impl Into<String>, schema_version: u32, payload: Payload, metadata: Metadata) -> Self {
        NewEvent { event_id: Uuid::now_v7(), event_type: event_type.into(), schema_version, payload, metadata }
    }
}

/// An event as the store holds it: every field of SPEC section 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: EventId,
    pub stream_id: StreamId,
    pub stream_version: Version,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub acting_user: Option<Uuid>,
    pub payload: Payload,
}

impl RecordedEvent {
    pub fn metadata(&self) -> Metadata {
        Metadata { correlation_id: self.correlation_id, causation_id: self.causation_id, acting_user: self.acting_user }
    }
}
