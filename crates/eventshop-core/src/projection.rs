//! Checkpointed projections: read models fed by the global order, with their position
//! stored in the same transaction as the change it reflects.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::envelope::{Position, RecordedEvent};
use crate::store::{EventStore, StoreError};
use crate::subscription::{DEFAULT_BATCH_SIZE, DEFAULT_POLL_INTERVAL};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another runner moved the checkpoint of this projection first.
    #[error("projection {name}: checkpoint moved by another runner")]
    CheckpointMoved { name: String },
    /// The projection or its read-model database failed.
    #[error("projection {name}: {source}")]
    Failed {
        name: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl ProjectionError {
    pub fn failed(name: &str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        ProjectionError::Failed { name: name.to_owned(), source: source.into() }
    }
}

/// A read model derived from events. Disposable: [`reset`](Projection::reset) empties
/// it, and replaying every event rebuilds exactly the same content.
#[async_trait]
pub trait Projection: Send + Sync {
    /// What the read model is written through: a database transaction, usually.
    type Tx: Send;

    /// A stable name, the key of the stored checkpoint.
    fn name(&self) -> &str;

    /// Applies one event. Events the projection does not care about are ignored.
    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// Removes everything the projection wrote, before a rebuild.
    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError>;
}

/// The database a projection writes to, which also keeps its checkpoint.
#[async_trait]
pub trait ReadModelStore: Send + Sync {
    type Tx: Send;

    async fn begin(&self) -> Result<Self::Tx, ProjectionError>;
    async fn commit(&self, tx: Self::Tx) -> Result<(), ProjectionError>;

    /// The position the projection has processed up to ([`Position::START`] if never run).
    async fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError>;

    /// Moves the checkpoint from `from` to `to` inside `tx`, failing with
    /// [`ProjectionError::CheckpointMoved`] if it is no longer at `from`. This is what keeps
    /// two runners of one projection from applying the same events twice.
    async fn move_checkpoint(
        &self,
        tx: &mut Self::Tx,
        name: &str,
        from: Position,
        to: Position,
    ) -> Result<(), ProjectionError>;
}

/// Feeds a projection the store's events in global order, a batch per transaction.
pub struct ProjectionRunner<P, R> {
    projection: P,
    read_models: R,
    events: Arc<dyn EventStore>,
    batch_size: usize,
    poll_interval: Duration,
}

impl<P: Projection, R> fmt::Debug for ProjectionRunner<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionRunner").field("projection", &self.projection.name()).finish_non_exhaustive()
    }
}

impl<P, R> ProjectionRunner<P, R>
where
    P: Projection,
    R: ReadModelStore<Tx = P::Tx>,
{
    pub fn new(projection: P, read_models: R, events: Arc<dyn EventStore>) -> Self {
        ProjectionRunner {
            projection,
            read_models,
            events,
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    pub fn read_models(&self) -> &R {
        &self.read_models
    }

    pub async fn position(&self) -> Result<Position, ProjectionError> {
        self.read_models.checkpoint(self.projection.name()).await
    }

    /// How many events the projection is behind the store's head.
    pub async fn lag(&self) -> Result<u64, ProjectionError> {
        let head = self.events.head_position().await?;
        Ok(head.0.saturating_sub(self.position().await?.0))
    }

    /// Processes the next batch, if any; returns the new position and how many events it
    /// handled.
    pub async fn step(&self) -> Result<(Position, usize), ProjectionError> {
        let name = self.projection.name();
        let from = self.read_models.checkpoint(name).await?;
        let batch = self.events.read_all(from, self.batch_size).await?;
        let Some(last) = batch.last() else {
            return Ok((from, 0));
        };
        let to = last.position;
        let mut tx = self.read_models.begin().await?;
        for event in &batch {
            self.projection.handle(&mut tx, event).await?;
        }
        self.read_models.move_checkpoint(&mut tx, name, from, to).await?;
        self.read_models.commit(tx).await?;
        Ok((to, batch.len()))
    }

    /// Processes events until none are left; returns the final position.
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        loop {
            let (position, handled) = self.step().await?;
            if handled == 0 {
                return Ok(position);
            }
        }
    }

    /// Follows the store until `shutdown` completes, finishing the batch in hand.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        loop {
            let (position, handled) = self.step().await?;
            if handled > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = self.events.wait_for_events(position, self.poll_interval) => {}
            }
        }
    }

    /// Empties the read model and replays every event into it. `progress` is told the
    /// position reached and the head position after every batch.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(Position, Position) + Send,
    ) -> Result<Position, ProjectionError> {
        let name = self.projection.name();
        let from = self.read_models.checkpoint(name).await?;
        let mut tx = self.read_models.begin().await?;
        self.projection.reset(&mut tx).await?;
        self.read_models.move_checkpoint(&mut tx, name, from, Position::START).await?;
        self.read_models.commit(tx).await?;
        let head = self.events.head_position().await?;
        loop {
            let (position, handled) = self.step().await?;
            progress(position, head.max(position));
            if handled == 0 {
                return Ok(position);
            }
        }
    }
}
