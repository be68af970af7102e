//! Live views: read models held in memory, built by replaying the service's own store and
//! kept current by following it.
//!
//! A view reads only its own service's store, so every instance of a service can keep a
//! complete view whatever share of the bus's events it consumes; facts learned from other
//! services reach it because the consuming instance records them as events first. A
//! command that appended at position *p* answers after the view has passed *p*, which is
//! how a service reads its own writes. See docs/decisions/0004.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::bus::Running;
use eventshop_core::stop::StopSignal;
use eventshop_core::{CatchUpSubscription, EventStore, Position, RecordedEvent, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a read waits for the view to reach a position before answering from what it
/// has: far longer than a healthy view ever lags.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a rebuild tries again after the store failed before it gives up.
const REBUILD_ATTEMPTS: u32 = 10;

/// How many 20 ms pauses a rebuild waits for a lagging live view to reach the replay's
/// position: as long as a read waits for its own write.
const REBUILD_WAITS: u32 = 250;

/// A read model folded from a store's events. `apply` must be deterministic: replaying the
/// same events into `Default` gives the same view.
pub trait View: Default + Send + Sync + 'static {
    fn apply(&mut self, event: &RecordedEvent);
}

/// A [`View`] kept current in the background. Cheap to clone.
#[derive(Debug)]
pub struct LiveView<V> {
    shared: Arc<Shared<V>>,
}

impl<V> Clone for LiveView<V> {
    fn clone(&self) -> Self {
        LiveView { shared: self.shared.clone() }
    }
}

#[derive(Debug)]
struct Shared<V> {
    name: String,
    store: Arc<dyn EventStore>,
    state: RwLock<V>,
    position: watch::Sender<Position>,
    /// Whether a rebuild runs, and how far its replay has come.
    rebuilding: AtomicBool,
    rebuild_position: AtomicU64,
}

impl<V: View> LiveView<V> {
    /// Replays `store` into a new view, then follows it until the returned task is stopped.
    pub async fn start(name: &str, store: Arc<dyn EventStore>) -> Result<(Self, Box<dyn Running>), StoreError> {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            store: store.clone(),
            state: RwLock::new(V::default()),
            position: watch::channel(Position::START).0,
            rebuilding: AtomicBool::new(false),
            rebuild_position: AtomicU64::new(0),
        });
        let mut subscription =
            CatchUpSubscription::new(store.clone(), Position::START).with_poll_interval(Duration::from_millis(250));
        loop {
            let batch = subscription.try_next_batch().await?;
            if batch.is_empty() {
                break;
            }
            shared.apply(&batch);
        }
        tracing::debug!(view = name, position = %subscription.position(), "view replayed");
        let (stop, receiver) = watch::channel(false);
        let task = tokio::spawn(follow(shared.clone(), subscription, StopSignal::from(receiver)));
        let admin: Arc<dyn AdminView> = shared.clone();
        crate::admin::register_view(&store, &admin);
        Ok((LiveView { shared }, Box::new(Follower { stop, task })))
    }

    /// Reads the view as it is now.
    pub fn read<R>(&self, read: impl FnOnce(&V) -> R) -> R {
        let state = self.shared.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        read(&state)
    }

    /// Reads the view once it has applied every event up to `position`.
    pub async fn read_after<R>(&self, position: Position, read: impl FnOnce(&V) -> R) -> R {
        self.caught_up(position).await;
        self.read(read)
    }

    /// Waits until the view has applied every event up to `position` (or a timeout passed).
    pub async fn caught_up(&self, position: Position) {
        let mut receiver = self.shared.position.subscribe();
        let reached = tokio::time::timeout(READ_YOUR_WRITES_TIMEOUT, receiver.wait_for(|seen| *seen >= position)).await;
        if reached.is_err() {
            tracing::warn!(view = %self.shared.name, %position, "view is lagging; answering from an older state");
        }
    }

    /// The position of the last event applied.
    pub fn position(&self) -> Position {
        *self.shared.position.borrow()
    }

    /// Replays the store into a fresh view and swaps it in (see [`AdminView::start_rebuild`]);
    /// false if a rebuild already runs.
    pub fn rebuild(&self) -> bool {
        self.shared.clone().start_rebuild()
    }

    /// Whether a rebuild runs now.
    pub fn is_rebuilding(&self) -> bool {
        self.shared.rebuilding.load(Ordering::SeqCst)
    }
}

/// What the admin operations see of a live view, whatever its type.
pub(crate) trait AdminView: Send + Sync {
    fn name(&self) -> &str;
    fn position(&self) -> Position;
    /// While a rebuild runs, how far its replay has come.
    fn rebuild_progress(&self) -> Option<Position>;
    /// Starts replaying the store into a fresh state in the background; the live state
    /// keeps answering until the fresh one has caught up, then they swap. False if a
    /// rebuild already runs.
    fn start_rebuild(self: Arc<Self>) -> bool;
}

impl<V: View> AdminView for Shared<V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> Position {
        *self.position.borrow()
    }

    fn rebuild_progress(&self) -> Option<Position> {
        self.rebuilding.load(Ordering::SeqCst).then(|| Position(self.rebuild_position.load(Ordering::SeqCst)))
    }

    fn start_rebuild(self: Arc<Self>) -> bool {
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.rebuild_position.store(0, Ordering::SeqCst);
        tokio::spawn(async move {
            for attempt in 1..=REBUILD_ATTEMPTS {
                match self.rebuild().await {
                    Ok(true) => {
                        tracing::info!(view = %self.name, position = %self.position(), "view rebuilt");
                        break;
                    }
                    Ok(false) => {
                        tracing::warn!(view = %self.name, "the view stopped following its store; rebuild abandoned");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(view = %self.name, %error, attempt, "rebuild cannot read the store");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            self.rebuilding.store(false, Ordering::SeqCst);
        });
        true
    }
}

impl<V: View> Shared<V> {
    fn apply(&self, batch: &[RecordedEvent]) {
        let Some(last) = batch.last() else { return };
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for event in batch {
            state.apply(event);
        }
        // Under the lock, so that a rebuild holding it sees the position of the state.
        self.position.send_replace(last.position);
    }

    /// Replays the store from the start into a fresh state, then swaps it in at the exact
    /// position the live state has reached, so that the follower goes on from there
    /// without applying an event twice or missing one. False if the live state never
    /// reached the replay's position (its follower stopped): the old state stays.
    async fn rebuild(&self) -> Result<bool, StoreError> {
        let mut waits = 0;
        let mut fresh = V::default();
        let mut fresh_position = Position::START;
        let mut subscription = CatchUpSubscription::new(self.store.clone(), Position::START);
        loop {
            let batch = subscription.try_next_batch().await?;
            if let Some(last) = batch.last() {
                for event in &batch {
                    fresh.apply(event);
                }
                fresh_position = last.position;
                self.rebuild_position.store(fresh_position.0, Ordering::SeqCst);
                continue;
            }
            {
                let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                let live = *self.position.borrow();
                if live == fresh_position {
                    *state = fresh;
                    return Ok(true);
                }
                if live > fresh_position {
                    // The store grew since the replay ended: read on.
                    continue;
                }
            }
            // The follower lags behind the replay: let it catch up to where the fresh state is.
            waits += 1;
            if waits > REBUILD_WAITS {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn follow<V: View>(shared: Arc<Shared<V>>, mut subscription: CatchUpSubscription, mut stop: StopSignal) {
    loop {
        let batch = tokio::select! {
            () = stop.stopped() => return,
            batch = subscription.next_batch() => batch,
        };
        match batch {
            Ok(batch) => shared.apply(&batch),
            Err(error) => {
                tracing::warn!(view = %shared.name, %error, "cannot read the store; retrying");
                if stop.pause(Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    }
}

#[derive(Debug)]
struct Follower {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[async_trait]
impl Running for Follower {
    async fn stop(self: Box<Self>) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::{ExpectedVersion, InMemoryEventStore, Metadata, NewEvent, Payload, StreamId};

    #[derive(Default)]
    struct Count(usize);

    impl View for Count {
        fn apply(&mut self, _event: &RecordedEvent) {
            self.0 += 1;
        }
    }

    fn event() -> NewEvent {
        NewEvent::new("Counted", 1, Payload::from_json_unchecked("{}".into()), Metadata::new_transaction(None))
    }

    #[tokio::test]
    async fn a_view_replays_history_then_reads_its_own_writes() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let stream = StreamId::new("count", 1);
        store.append(&stream, ExpectedVersion::Any, vec![event(), event()]).await.unwrap();
        let (view, follower) = LiveView::<Count>::start("count", store.clone()).await.unwrap();
        assert_eq!(view.read(|count| count.0), 2);

        let appended = store.append(&stream, ExpectedVersion::Any, vec![event()]).await.unwrap();
        assert_eq!(view.read_after(appended.position, |count| count.0).await, 3);
        follower.stop().await;
    }
}
