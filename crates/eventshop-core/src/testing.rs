//! A given/when/then harness for aggregates and projections.
//!
//! ```
//! # use eventshop_core::testing::AggregateTest;
//! # fn doc<A: eventshop_core::Aggregate>(given: Vec<A::Event>, command: A::Command, expected: Vec<A::Event>)
//! # where A::Event: PartialEq + std::fmt::Debug {
//! AggregateTest::<A>::given(given).when(command).then_expect_events(expected);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::aggregate::Aggregate;
use crate::codec::{DomainEvent, EventCodec};
use crate::envelope::{Metadata, Position, StreamId};
use crate::memory::InMemoryEventStore;
use crate::projection::{Projection, ProjectionError, ProjectionRunner, ReadModelStore};
use crate::store::{EventStore, ExpectedVersion};

/// Given some past events of an aggregate, when a command arrives, then it causes these
/// events (or this error).
#[derive(Debug)]
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    pub fn given_no_history() -> Self {
        AggregateTest { state: A::default() }
    }

    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let state = events.into_iter().fold(A::default(), |state, event| state.apply(&event));
        AggregateTest { state }
    }

    pub fn when(self, command: A::Command) -> AggregateOutcome<A> {
        let result = self.state.decide(&command);
        AggregateOutcome { state: self.state, result }
    }
}

/// The outcome of [`AggregateTest::when`], to assert on.
#[derive(Debug)]
pub struct AggregateOutcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> AggregateOutcome<A> {
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>)
    where
        A::Event: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command caused other events than expected"),
            Err(error) => {
                panic!("expected events {expected:?}, but the command was refused: {error}")
            }
        }
    }

    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
        A::Event: Debug,
    {
        match self.result {
            Ok(events) => {
                panic!("expected the error \"{expected}\", but the command caused {events:?}")
            }
            Err(error) => assert!(error == expected, "expected the error \"{expected}\", got \"{error}\""),
        }
    }

    /// The state after the caused events, for assertions the events alone do not show.
    #[track_caller]
    pub fn then_state(self) -> A
    where
        A::Error: Debug,
    {
        let events = self.result.expect("the command was refused");
        self.state.apply_all(&events)
    }
}

/// Given events in some streams, when a projection has processed them, then its read
/// model answers like this. Runs the real [`ProjectionRunner`] over an in-memory store.
#[derive(Debug)]
pub struct ProjectionTest {
    store: Arc<InMemoryEventStore>,
}

impl Default for ProjectionTest {
    fn default() -> Self {
        ProjectionTest { store: Arc::new(InMemoryEventStore::new()) }
    }
}

impl ProjectionTest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `events` in `stream_id`, each as its own business transaction.
    pub async fn given<E: DomainEvent>(self, stream_id: &StreamId, events: impl IntoIterator<Item = E>) -> Self {
        let codec = EventCodec::<E>::new();
        for event in events {
            let new = codec.encode(&event, Metadata::new_transaction(None)).expect("event encodes");
            self.store.append(stream_id, ExpectedVersion::Any, vec![new]).await.expect("in-memory append");
        }
        self
    }

    /// Runs `projection` over everything given so far and returns the runner, whose
    /// read models the test then queries.
    pub async fn when_projected<P, R>(&self, projection: P, read_models: R) -> ProjectionRunner<P, R>
    where
        P: Projection,
        R: ReadModelStore<Tx = P::Tx>,
    {
        let runner = ProjectionRunner::new(projection, read_models, self.store.clone());
        runner.catch_up().await.expect("projection catches up");
        runner
    }

    pub fn store(&self) -> Arc<InMemoryEventStore> {
        self.store.clone()
    }
}

/// A read-model store in memory: the state is a value of `S`, and a transaction works on a
/// copy that replaces it on commit.
#[derive(Debug, Default, Clone)]
pub struct InMemoryReadModels<S> {
    inner: Arc<Mutex<(S, HashMap<String, Position>)>>,
}

/// A transaction of [`InMemoryReadModels`]: edit `state` freely.
#[derive(Debug)]
pub struct InMemoryTx<S> {
    pub state: S,
    checkpoints: HashMap<String, Position>,
}

impl<S: Clone + Default> InMemoryReadModels<S> {
    pub fn new() -> Self {
        InMemoryReadModels { inner: Arc::new(Mutex::new((S::default(), HashMap::new()))) }
    }

    /// The committed state.
    pub fn state(&self) -> S {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone()
    }
}

#[async_trait]
impl<S: Clone + Default + Send + Sync + 'static> ReadModelStore for InMemoryReadModels<S> {
    type Tx = InMemoryTx<S>;

    async fn begin(&self) -> Result<Self::Tx, ProjectionError> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(InMemoryTx { state: inner.0.clone(), checkpoints: inner.1.clone() })
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), ProjectionError> {
        *self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (tx.state, tx.checkpoints);
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(inner.1.get(name).copied().unwrap_or(Position::START))
    }

    async fn move_checkpoint(
        &self,
        tx: &mut Self::Tx,
        name: &str,
        from: Position,
        to: Position,
    ) -> Result<(), ProjectionError> {
        let current = tx.checkpoints.get(name).copied().unwrap_or(Position::START);
        if current != from {
            return Err(ProjectionError::CheckpointMoved { name: name.to_owned() });
        }
        tx.checkpoints.insert(name.to_owned(), to);
        Ok(())
    }
}

/// For tests that need an outside server (PostgreSQL, NATS) it cannot reach. In CI
/// (`CI=true`) every such test must run, so this fails the test; elsewhere it prints why
/// the test is skipped and returns, so that a plain `cargo test` passes on a machine without
/// the server. The reason is written straight to stderr, past the test harness's output
/// capture, so that it shows without `--nocapture`.
#[track_caller]
pub fn skip_unless_ci<T>(reason: impl std::fmt::Display) -> Option<T> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("required in CI: {reason}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping: {reason}");
    None
}
