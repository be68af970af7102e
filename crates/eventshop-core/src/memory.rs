//! An event store in memory: the reference implementation of [`EventStore`], for tests
//! and for the core's own property tests. Nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::envelope::{EventId, Position, RecordedEvent, StreamId, Version};
use crate::snapshot::Snapshot;
use crate::store::{AppendResult, AppendSignal, EventStore, StoreError, StreamAppend, validate_appends};

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
}

impl InMemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let mut inner = self.lock();
        // Check everything first so that a refused append writes nothing.
        let mut batch_ids = std::collections::HashSet::new();
        for append in &appends {
            if !append.expected.is_satisfied_by(inner.version(&append.stream_id)) {
                return Err(StoreError::WrongExpectedVersion {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected,
                });
            }
            for event in &append.events {
                if inner.event_ids.contains(&event.event_id) || !batch_ids.insert(event.event_id) {
                    return Err(StoreError::DuplicateEvent(event.event_id));
                }
            }
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
