//! The event store contract that every storage backend implements.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::envelope::{EventId, NewEvent, Position, RecordedEvent, StreamId, Version};
use crate::snapshot::Snapshot;

/// What the writer believes the stream's version to be, checked atomically with the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (0 means "no stream").
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether a stream currently at `current` (0 when it does not exist) satisfies this.
    pub fn is_satisfied_by(self, current: Version) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(expected) => current == expected,
        }
    }

    /// The expectation for a stream last seen at `version`.
    pub fn after(version: Version) -> Self {
        if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// Events for one stream, part of a possibly multi-stream atomic append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Where an append left a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append: the version of its last new event.
    pub version: Version,
    /// The global position of the last new event.
    pub position: Position,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: reload and decide again.
    #[error("stream {stream_id} is not at the expected {expected}")]
    WrongExpectedVersion { stream_id: StreamId, expected: ExpectedVersion },
    /// An event with this id is already stored.
    #[error("event {0} is already stored")]
    DuplicateEvent(EventId),
    /// The append itself is malformed (no events, a stream named twice).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The consumer has handled this event before: its effect is already recorded.
    #[error("consumer {consumer} has already handled event {event_id}")]
    AlreadyHandled { consumer: String, event_id: EventId },
    /// The backend failed; the append may or may not have happened.
    #[error("event store backend: {0}")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    pub fn backend(error: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::WrongExpectedVersion { .. })
    }
}

/// An append-only store of event streams with a global order.
///
/// Guarantees every backend must give (checked by the `store-conformance` suite):
/// - an append is atomic, and all appends of one [`append_many`](EventStore::append_many)
///   call commit or fail together;
/// - the expected version is checked in the same transaction as the write; two writers
///   can never both append version *n* of a stream;
/// - events are never changed or removed;
/// - [`read_all`](EventStore::read_all) is gap-safe: it never returns an event at
///   position *p* while an event at a position below *p* may still become visible, so a
///   reader that resumes after the last position it saw skips nothing.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// Appends `events` to one stream if it is at the `expected` version.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let append = StreamAppend { stream_id: stream_id.clone(), expected, events };
        let mut results = self.append_many(vec![append]).await?;
        Ok(results.remove(0))
    }

    /// Appends to several streams in one transaction: all or nothing. Results are in the
    /// order of `appends`.
    async fn append_many(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError>;

    /// Appends like [`append_many`](EventStore::append_many) and records, in the same
    /// transaction, that `consumer` has handled the event `event_id`: the inbox that makes
    /// a consumer's effect happen once however often the event is delivered. If the
    /// consumer handled it before, nothing is written and the answer is
    /// [`StoreError::AlreadyHandled`]. `appends` may be empty, to record a decision to do
    /// nothing.
    async fn append_handled(
        &self,
        consumer: &str,
        event_id: EventId,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError>;

    /// The events of one stream with a version above `after_version`, in version order.
    async fn read_stream(&self, stream_id: &StreamId, after_version: Version)
    -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events with a position above `after`, in global order (gap-safe).
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last event recorded, or [`Position::START`] when empty.
    async fn head_position(&self) -> Result<Position, StoreError>;

    /// Returns when events after `after` may have been appended, or after `timeout`.
    /// Appends made through this handle wake waiters at once; others are found by polling.
    async fn wait_for_events(&self, after: Position, timeout: Duration);

    /// The newest snapshot of a stream, if one was taken.
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot, replacing an older one of the same stream. Snapshots are a cache:
    /// losing one costs a longer load, never correctness.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;
}

/// Checks that every backend makes before writing: no empty appends, no stream twice, no
/// event id twice.
pub fn validate_appends(appends: &[StreamAppend]) -> Result<(), StoreError> {
    if appends.is_empty() {
        return Err(StoreError::InvalidAppend("no streams to append to".into()));
    }
    validate_handled_appends(appends)
}

/// The checks of [`validate_appends`] for [`EventStore::append_handled`], where no
/// streams at all is allowed.
pub fn validate_handled_appends(appends: &[StreamAppend]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(appends.len());
    for append in appends {
        if append.events.is_empty() {
            return Err(StoreError::InvalidAppend(format!("no events for stream {}", append.stream_id)));
        }
        if !seen.insert(&append.stream_id) {
            return Err(StoreError::InvalidAppend(format!("stream {} named twice", append.stream_id)));
        }
    }
    // A stored id is the database's to refuse; one named twice in the same request is
    // refused here, since a multi-row insert colliding with itself cannot say which it was.
    let mut event_ids = std::collections::HashSet::new();
    for event in appends.iter().flat_map(|append| &append.events) {
        if !event_ids.insert(event.event_id) {
            return Err(StoreError::DuplicateEvent(event.event_id));
        }
    }
    Ok(())
}

/// Wakes in-process readers when this process appends: the backends' shared
/// implementation of [`EventStore::wait_for_events`].
#[derive(Debug)]
pub struct AppendSignal {
    head: watch::Sender<Position>,
}

impl Default for AppendSignal {
    fn default() -> Self {
        AppendSignal { head: watch::Sender::new(Position::START) }
    }
}

impl AppendSignal {
    /// Records that events up to `position` were committed.
    pub fn appended(&self, position: Position) {
        self.head.send_if_modified(|head| {
            let moved = position > *head;
            *head = (*head).max(position);
            moved
        });
    }

    /// Waits until an append past `after` is signalled, or `timeout` elapses.
    pub async fn wait_past(&self, after: Position, timeout: Duration) {
        let mut head = self.head.subscribe();
        let _ = tokio::time::timeout(timeout, head.wait_for(|head| *head > after)).await;
    }
}
