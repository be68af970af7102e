//! Catch-up subscriptions: read the store's global order from a position, then follow it
//! live.

use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{Position, RecordedEvent};
use crate::store::{EventStore, StoreError};

pub const DEFAULT_BATCH_SIZE: usize = 500;
/// How often a subscriber looks for events appended by other processes. Appends made in
/// this process wake it at once.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Follows a store's global order from a position: first the history, then live.
///
/// Relies on [`EventStore::read_all`] being gap-safe, so resuming after the last position
/// seen never skips an event that committed late.
#[derive(Debug)]
pub struct CatchUpSubscription {
    store: Arc<dyn EventStore>,
    position: Position,
    batch_size: usize,
    poll_interval: Duration,
    /// The last read returned less than a full batch: the next waits for an append first
    /// instead of asking a store that has just said it has nothing more.
    caught_up: bool,
}

impl CatchUpSubscription {
    /// A subscription to the events after `after`.
    pub fn new(store: Arc<dyn EventStore>, after: Position) -> Self {
        CatchUpSubscription {
            store,
            position: after,
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            caught_up: false,
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

    /// The position of the last event handed out.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The next events, waiting for them if there are none yet.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        loop {
            if self.caught_up {
                // Returns at once if this process appended meanwhile.
                self.store.wait_for_events(self.position, self.poll_interval).await;
            }
            let batch = self.try_next_batch().await?;
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }

    /// The next events available now; empty when caught up.
    pub async fn try_next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        let batch = self.store.read_all(self.position, self.batch_size).await?;
        self.caught_up = batch.len() < self.batch_size;
        if let Some(last) = batch.last() {
            self.position = last.position;
        }
        Ok(batch)
    }
}
