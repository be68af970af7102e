//! Running commands against aggregates: load, decide, append with the expected version,
//! and decide again on a conflict.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::aggregate::Aggregate;
use crate::codec::{CodecError, EventCodec};
use crate::envelope::{Metadata, Payload, Position, StreamId, Version};
use crate::snapshot::{Snapshot, SnapshotPolicy};
use crate::store::{EventStore, ExpectedVersion, StoreError};

/// How many times a command is decided again after losing an optimistic-concurrency race.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// How many aggregate states a handler keeps in memory by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// Other writers kept changing the stream; every attempt lost the race.
    #[error("stream {stream_id} kept changing: gave up after {attempts} attempts")]
    Conflict { stream_id: StreamId, attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// An aggregate's state and the stream version it reflects.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: Version,
}

/// The outcome of a command that was accepted.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    pub state: A,
    pub version: Version,
    /// The events the command caused; empty when it changed nothing.
    pub events: Vec<A::Event>,
    /// The global position of the last event, if any were appended.
    pub position: Option<Position>,
}

/// Runs commands for one aggregate type against an event store.
///
/// Keeps the last state it saw of each stream in memory: a load then reads only the
/// events appended since, which is usually none. The cache cannot serve stale state,
/// because every append is checked against the stream's version in the store.
pub struct CommandHandler<A: Aggregate> {
    store: Arc<dyn EventStore>,
    codec: EventCodec<A::Event>,
    snapshots: SnapshotPolicy,
    max_attempts: u32,
    cache: Option<Mutex<StateCache<A>>>,
}

impl<A: Aggregate> fmt::Debug for CommandHandler<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandHandler")
            .field("category", &A::CATEGORY)
            .field("snapshots", &self.snapshots)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> CommandHandler<A> {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        CommandHandler {
            store,
            codec: EventCodec::new(),
            snapshots: SnapshotPolicy::Never,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            cache: Some(Mutex::new(StateCache::new(DEFAULT_CACHE_CAPACITY))),
        }
    }

    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Keeps up to `capacity` states in memory; 0 turns the cache off.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Mutex::new(StateCache::new(capacity)));
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn stream_id(id: impl fmt::Display) -> StreamId {
        StreamId::new(A::CATEGORY, id)
    }

    /// The current state of aggregate `id`: cached state or snapshot, plus the events
    /// after it.
    pub async fn load(&self, id: impl fmt::Display) -> Result<Loaded<A>, CommandError<A::Error>> {
        self.load_stream(&Self::stream_id(id)).await
    }

    async fn load_stream(&self, stream_id: &StreamId) -> Result<Loaded<A>, CommandError<A::Error>> {
        let start = match self.cached(stream_id) {
            Some(loaded) => loaded,
            None => self.load_snapshot(stream_id).await?,
        };
        let events = self.store.read_stream(stream_id, start.version).await?;
        let mut loaded = start;
        for recorded in &events {
            let event = self.codec.decode(recorded)?;
            loaded.state = loaded.state.apply(&event);
            loaded.version = recorded.stream_version;
        }
        // Remember what was read, not only what this handler appended: streams that others
        // append to (a saga reaction's `append_handled`, another instance) would otherwise
        // be read from the same old version on every load, longer each time.
        if !events.is_empty() {
            self.remember(stream_id, &loaded.state, loaded.version);
        }
        Ok(loaded)
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Loaded<A>, CommandError<A::Error>> {
        let empty = Loaded { state: A::default(), version: 0 };
        if !self.snapshots.is_enabled() {
            return Ok(empty);
        }
        let Some(snapshot) = self.store.load_snapshot(stream_id).await? else {
            return Ok(empty);
        };
        if snapshot.schema_version != A::SNAPSHOT_VERSION {
            return Ok(empty);
        }
        match serde_json::from_str(snapshot.state.as_str()) {
            Ok(state) => Ok(Loaded { state, version: snapshot.version }),
            Err(error) => {
                tracing::warn!(%stream_id, %error, "ignoring a snapshot that no longer decodes");
                Ok(empty)
            }
        }
    }

    /// Decides `command` on aggregate `id` and appends the outcome, deciding again on a
    /// fresh state when another writer appended first.
    pub async fn execute(
        &self,
        id: impl fmt::Display,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let stream_id = Self::stream_id(id);
        for _attempt in 0..self.max_attempts {
            let Loaded { state, version } = self.load_stream(&stream_id).await?;
            let events = state.decide(command).map_err(CommandError::Domain)?;
            if events.is_empty() {
                return Ok(Executed { state, version, events, position: None });
            }
            let new_events =
                events.iter().map(|event| self.codec.encode(event, metadata)).collect::<Result<Vec<_>, _>>()?;
            match self.store.append(&stream_id, ExpectedVersion::after(version), new_events).await {
                Ok(appended) => {
                    let state = state.apply_all(&events);
                    self.remember(&stream_id, &state, appended.version);
                    if self.snapshots.is_due(version, appended.version) {
                        self.save_snapshot(&stream_id, &state, appended.version).await;
                    }
                    return Ok(Executed {
                        state,
                        version: appended.version,
                        events,
                        position: Some(appended.position),
                    });
                }
                Err(error) if error.is_conflict() => {
                    tracing::debug!(%stream_id, "version conflict, deciding again");
                    self.forget(&stream_id);
                }
                Err(error) => {
                    self.forget(&stream_id);
                    return Err(error.into());
                }
            }
        }
        Err(CommandError::Conflict { stream_id, attempts: self.max_attempts })
    }

    async fn save_snapshot(&self, stream_id: &StreamId, state: &A, version: Version) {
        let state = match serde_json::to_string(state) {
            Ok(json) => Payload::from_json_unchecked(json),
            Err(error) => {
                tracing::warn!(%stream_id, %error, "aggregate state does not serialize; no snapshot");
                return;
            }
        };
        let snapshot = Snapshot { stream_id: stream_id.clone(), version, schema_version: A::SNAPSHOT_VERSION, state };
        if let Err(error) = self.store.save_snapshot(snapshot).await {
            // A snapshot is a cache: the next load replays a little more.
            tracing::warn!(%stream_id, %error, "could not save snapshot");
        }
    }

    fn cached(&self, stream_id: &StreamId) -> Option<Loaded<A>> {
        let cache = self.cache.as_ref()?.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(stream_id)
    }

    fn remember(&self, stream_id: &StreamId, state: &A, version: Version) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.put(stream_id.clone(), Loaded { state: state.clone(), version });
        }
    }

    fn forget(&self, stream_id: &StreamId) {
        if let Some(cache) = &self.cache {
            cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(stream_id);
        }
    }
}

/// A bounded map of stream states; when full it starts over, which is crude but keeps
/// memory bounded without bookkeeping on the hot path.
struct StateCache<A> {
    states: HashMap<StreamId, Loaded<A>>,
    capacity: usize,
}

impl<A: Clone> StateCache<A> {
    fn new(capacity: usize) -> Self {
        StateCache { states: HashMap::new(), capacity }
    }

    fn get(&self, stream_id: &StreamId) -> Option<Loaded<A>> {
        self.states.get(stream_id).cloned()
    }

    fn put(&mut self, stream_id: StreamId, loaded: Loaded<A>) {
        if self.states.len() >= self.capacity && !self.states.contains_key(&stream_id) {
            self.states.clear();
        }
        self.states.insert(stream_id, loaded);
    }

    fn remove(&mut self, stream_id: &StreamId) {
        self.states.remove(stream_id);
    }
}
