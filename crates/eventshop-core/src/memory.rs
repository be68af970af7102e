//! An event store in memory: the reference implementation of [`EventStore`], for tests
//! and for the core's own property tests. Nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use uuid::Uuid;

use crate::consumer::{ConsumerStorage, DeadLetter};
use crate::envelope::{EventId, Position, RecordedEvent, StreamId, Version};
use crate::snapshot::Snapshot;
use crate::store::{
    AppendResult, AppendSignal, EventStore, StoreError, StreamAppend, validate_appends, validate_handled_appends,
};

#[derive(Debug, Default)]
pub struct InMemoryEventStore {
    inner: Mutex<Inner>,
    signal: AppendSignal,
}

#[derive(Debug, Default)]
struct Inner {
    /// All events in global order; event at index i has position i + 1.
    log: Vec<RecordedEvent>,
    /// Indexes into `log` per stream, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    event_ids: std::collections::HashSet<EventId>,
    snapshots: HashMap<StreamId, Snapshot>,
    /// (consumer, event id) of every event a consumer recorded as handled.
    inbox: std::collections::HashSet<(String, EventId)>,
    consumer_positions: HashMap<String, Position>,
    dead_letters: Vec<DeadLetter>,
}

impl InMemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends validated `appends`, and records `handled` in the inbox, all or nothing.
    fn append_checked(
        &self,
        appends: Vec<StreamAppend>,
        handled: Option<(String, EventId)>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let mut inner = self.lock();
        // Check everything first so that a refused append writes nothing.
        if let Some((consumer, event_id)) = &handled
            && inner.inbox.contains(&(consumer.clone(), *event_id))
        {
            return Err(StoreError::AlreadyHandled { consumer: consumer.clone(), event_id: *event_id });
        }
        for append in &appends {
            if !append.expected.is_satisfied_by(inner.version(&append.stream_id)) {
                return Err(StoreError::WrongExpectedVersion {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected,
                });
            }
            for event in &append.events {
                if inner.event_ids.contains(&event.event_id) {
                    return Err(StoreError::DuplicateEvent(event.event_id));
                }
            }
        }
        if let Some(handled) = handled {
            inner.inbox.insert(handled);
        }
        let recorded_at = Utc::now();
        let mut results = Vec::with_capacity(appends.len());
        for append in appends {
            let mut version = inner.version(&append.stream_id);
            for event in append.events {
                version += 1;
                let index = inner.log.len();
                inner.event_ids.insert(event.event_id);
                inner.log.push(RecordedEvent {
                    event_id: event.event_id,
                    stream_id: append.stream_id.clone(),
                    stream_version: version,
                    position: Position(index as u64 + 1),
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    recorded_at,
                    correlation_id: event.metadata.correlation_id,
                    causation_id: event.metadata.causation_id,
                    acting_user: event.metadata.acting_user,
                    payload: event.payload,
                });
                inner.streams.entry(append.stream_id.clone()).or_default().push(index);
            }
            results.push(AppendResult { version, position: Position(inner.log.len() as u64) });
        }
        let head = Position(inner.log.len() as u64);
        drop(inner);
        self.signal.appended(head);
        Ok(results)
    }
}

impl Inner {
    fn version(&self, stream_id: &StreamId) -> Version {
        self.streams.get(stream_id).map_or(0, |indexes| indexes.len() as Version)
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append_many(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        validate_appends(&appends)?;
        self.append_checked(appends, None)
    }

    async fn append_handled(
        &self,
        consumer: &str,
        event_id: EventId,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        validate_handled_appends(&appends)?;
        self.append_checked(appends, Some((consumer.to_owned(), event_id)))
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: Version,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.lock();
        let Some(indexes) = inner.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        Ok(indexes.iter().skip(after_version as usize).map(|&index| inner.log[index].clone()).collect())
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.lock();
        let start = (after.0 as usize).min(inner.log.len());
        Ok(inner.log[start..].iter().take(limit).cloned().collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(Position(self.lock().log.len() as u64))
    }

    async fn wait_for_events(&self, after: Position, timeout: Duration) {
        self.signal.wait_past(after, timeout).await;
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.lock().snapshots.get(stream_id).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let newer = inner.snapshots.get(&snapshot.stream_id).is_none_or(|old| old.version <= snapshot.version);
        if newer {
            inner.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        }
        Ok(())
    }
}

#[async_trait]
impl ConsumerStorage for InMemoryEventStore {
    async fn consumer_position(&self, consumer: &str) -> Result<Position, StoreError> {
        Ok(self.lock().consumer_positions.get(consumer).copied().unwrap_or(Position::START))
    }

    async fn save_consumer_position(&self, consumer: &str, position: Position) -> Result<(), StoreError> {
        self.lock().consumer_positions.insert(consumer.to_owned(), position);
        Ok(())
    }

    async fn park(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.lock().dead_letters.push(letter.clone());
        Ok(())
    }

    async fn dead_letters(&self, consumer: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let inner = self.lock();
        let matching = inner.dead_letters.iter().filter(|letter| consumer.is_none_or(|name| letter.consumer == name));
        Ok(matching.take(limit).cloned().collect())
    }

    async fn stream_dead_letters(&self, consumer: &str, stream_id: &StreamId) -> Result<Vec<DeadLetter>, StoreError> {
        let inner = self.lock();
        let mut letters: Vec<_> = inner
            .dead_letters
            .iter()
            .filter(|letter| letter.consumer == consumer && letter.event.stream_id == *stream_id)
            .cloned()
            .collect();
        letters.sort_by_key(|letter| letter.event.stream_version);
        Ok(letters)
    }

    async fn blocked_streams(&self, consumer: &str) -> Result<Vec<StreamId>, StoreError> {
        let inner = self.lock();
        let mut streams: Vec<_> = inner
            .dead_letters
            .iter()
            .filter(|letter| letter.consumer == consumer)
            .map(|letter| letter.event.stream_id.clone())
            .collect();
        streams.sort();
        streams.dedup();
        Ok(streams)
    }

    async fn update_dead_letter(&self, id: Uuid, reason: &str, attempts: u32) -> Result<(), StoreError> {
        if let Some(letter) = self.lock().dead_letters.iter_mut().find(|letter| letter.id == id) {
            letter.reason = reason.to_owned();
            letter.attempts = attempts;
        }
        Ok(())
    }

    async fn remove_dead_letter(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let before = inner.dead_letters.len();
        inner.dead_letters.retain(|letter| letter.id != id);
        Ok(inner.dead_letters.len() < before)
    }
}
