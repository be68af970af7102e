//! Event consumers: a service's reaction to another service's events, delivered at least
//! once and in order per stream, with retries and a dead-letter store.
//!
//! The transport (in-process catch-up, or a JetStream consumer) hands events to an
//! [`EventConsumer`] one at a time, in order. The consumer filters them, runs the
//! handler, retries a failure with backoff, and after the last attempt parks the event
//! in the dead-letter store. A parked event blocks its stream: the stream's later events
//! are parked behind it unhandled, as Axon's sequenced dead-letter queue does, so that
//! no handler ever sees a stream's events out of order. Other streams flow on. Retrying
//! a stream's dead letters replays them in order and unblocks it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::envelope::{Position, RecordedEvent, StreamId};
use crate::store::StoreError;

/// What a consumer listens to and how hard it tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDefinition {
    /// Unique among consumers: `<consuming service>.<handler>`, e.g. `inventory.reservations`.
    pub name: String,
    /// The service whose events it consumes.
    pub source: String,
    /// The event types it handles; empty for all. Others are acknowledged unseen.
    pub event_types: Vec<String>,
    pub retry: RetryPolicy,
}

impl ConsumerDefinition {
    pub fn new(name: impl Into<String>, source: impl Into<String>, event_types: &[&str]) -> Self {
        ConsumerDefinition {
            name: name.into(),
            source: source.into(),
            event_types: event_types.iter().map(|&name| name.to_owned()).collect(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn wants(&self, event: &RecordedEvent) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event.event_type)
    }
}

/// Attempts and exponential backoff before an event is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A handler could not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// Retrying cannot help (e.g. the event does not decode): dead-letter at once.
    pub permanent: bool,
    pub message: String,
}

impl HandlerError {
    /// A failure worth retrying: a database or a service was unavailable.
    pub fn transient(error: impl fmt::Display) -> Self {
        HandlerError { permanent: false, message: error.to_string() }
    }

    /// A failure no retry can mend.
    pub fn permanent(error: impl fmt::Display) -> Self {
        HandlerError { permanent: true, message: error.to_string() }
    }
}

/// A service's reaction to events. It makes its effect once even when an event arrives
/// twice, by recording the event id with the effect
/// ([`EventStore::append_handled`](crate::EventStore::append_handled)).
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, event: &RecordedEvent) -> Result<(), HandlerError>;
}

/// An event a consumer gave up on, kept to be looked at, retried or discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: Uuid,
    pub consumer: String,
    pub event: RecordedEvent,
    /// The last failure, or why it waits behind another dead letter of its stream.
    pub reason: String,
    /// Handler attempts made; 0 for an event parked behind an earlier one.
    pub attempts: u32,
    /// When it was parked, to the microsecond.
    pub parked_at: DateTime<Utc>,
}

/// Where a consumer keeps its dead letters and, for the in-process bus, its position:
/// the consuming service's own database.
#[async_trait]
pub trait ConsumerStorage: Send + Sync + fmt::Debug {
    /// How far the consumer has read the source's global order.
    async fn consumer_position(&self, consumer: &str) -> Result<Position, StoreError>;
    async fn save_consumer_position(&self, consumer: &str, position: Position) -> Result<(), StoreError>;

    async fn park(&self, letter: &DeadLetter) -> Result<(), StoreError>;
    /// The consumer's dead letters (all consumers' when `None`), oldest first.
    async fn dead_letters(&self, consumer: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// One stream's dead letters for `consumer`, in the stream's order.
    async fn stream_dead_letters(&self, consumer: &str, stream_id: &StreamId) -> Result<Vec<DeadLetter>, StoreError>;
    /// The streams that have dead letters for `consumer`.
    async fn blocked_streams(&self, consumer: &str) -> Result<Vec<StreamId>, StoreError>;
    async fn update_dead_letter(&self, id: Uuid, reason: &str, attempts: u32) -> Result<(), StoreError>;
    /// Removes a dead letter; false if there was none with this id.
    async fn remove_dead_letter(&self, id: Uuid) -> Result<bool, StoreError>;
}

/// What became of one delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The handler succeeded.
    Handled,
    /// Not a type this consumer handles.
    Ignored,
    /// The handler failed on every attempt: the event is a dead letter and blocks its stream.
    DeadLettered,
    /// Its stream is blocked by an earlier dead letter: parked behind it, unhandled.
    ParkedBehind,
}

/// The outcome of retrying one stream's dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Every dead letter of the stream was handled; the stream flows again.
    Unblocked { handled: usize },
    /// The first `handled` were handled, then one failed again; the stream stays blocked.
    StillBlocked { handled: usize },
}

/// Runs one consumer's handler over the events a transport delivers.
pub struct EventConsumer {
    definition: ConsumerDefinition,
    handler: Arc<dyn EventHandler>,
    storage: Arc<dyn ConsumerStorage>,
    blocked: HashSet<StreamId>,
}

impl fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventConsumer")
            .field("definition", &self.definition)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl EventConsumer {
    /// A consumer that remembers which of its streams are blocked by dead letters.
    pub async fn start(
        definition: ConsumerDefinition,
        handler: Arc<dyn EventHandler>,
        storage: Arc<dyn ConsumerStorage>,
    ) -> Result<Self, StoreError> {
        let blocked = storage.blocked_streams(&definition.name).await?.into_iter().collect();
        Ok(EventConsumer { definition, handler, storage, blocked })
    }

    pub fn definition(&self) -> &ConsumerDefinition {
        &self.definition
    }

    pub fn storage(&self) -> &Arc<dyn ConsumerStorage> {
        &self.storage
    }

    pub fn blocked_streams(&self) -> impl Iterator<Item = &StreamId> {
        self.blocked.iter()
    }

    /// Handles one event, retrying with backoff; parks it when every attempt failed.
    pub async fn deliver(&mut self, event: &RecordedEvent) -> Result<Delivery, StoreError> {
        if !self.definition.wants(event) {
            return Ok(Delivery::Ignored);
        }
        if self.blocked.contains(&event.stream_id) {
            // A redelivery (after a crash, say) of an event already parked stays parked once.
            let parked = self.storage.stream_dead_letters(&self.definition.name, &event.stream_id).await?;
            if !parked.iter().any(|letter| letter.event.event_id == event.event_id) {
                let reason = "waiting behind an earlier dead letter of its stream".to_owned();
                self.park(event, reason, 0).await?;
            }
            return Ok(Delivery::ParkedBehind);
        }
        let retry = self.definition.retry;
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            match handle_guarded(&*self.handler, event).await {
                Ok(()) => return Ok(Delivery::Handled),
                Err(error) if error.permanent || attempt >= retry.max_attempts => break error,
                Err(error) => {
                    tracing::warn!(
                        consumer = %self.definition.name, event_id = %event.event_id, attempt, %error,
                        "handler failed, retrying"
                    );
                    tokio::time::sleep(retry.backoff(attempt)).await;
                }
            }
        };
        tracing::error!(
            consumer = %self.definition.name, event_id = %event.event_id, stream_id = %event.stream_id,
            attempts = attempt, error = %failure, "event dead-lettered"
        );
        self.park(event, failure.message, attempt).await?;
        self.blocked.insert(event.stream_id.clone());
        Ok(Delivery::DeadLettered)
    }

    async fn park(&self, event: &RecordedEvent, reason: String, attempts: u32) -> Result<(), StoreError> {
        let letter = DeadLetter {
            id: Uuid::now_v7(),
            consumer: self.definition.name.clone(),
            event: event.clone(),
            reason,
            attempts,
            // Microseconds: what every store keeps of a time.
            parked_at: Utc::now().trunc_subsecs(6),
        };
        self.storage.park(&letter).await
    }

    /// Hands a blocked stream's dead letters to the handler again, in order, once each.
    pub async fn retry_stream(&mut self, stream_id: &StreamId) -> Result<RetryOutcome, StoreError> {
        let letters = self.storage.stream_dead_letters(&self.definition.name, stream_id).await?;
        for (handled, letter) in letters.iter().enumerate() {
            if let Err(error) = handle_guarded(&*self.handler, &letter.event).await {
                self.storage.update_dead_letter(letter.id, &error.message, letter.attempts + 1).await?;
                return Ok(RetryOutcome::StillBlocked { handled });
            }
            self.storage.remove_dead_letter(letter.id).await?;
        }
        self.blocked.remove(stream_id);
        Ok(RetryOutcome::Unblocked { handled: letters.len() })
    }

    /// Drops a dead letter unhandled. Its stream is unblocked when it has no more.
    pub async fn discard(&mut self, id: Uuid, stream_id: &StreamId) -> Result<bool, StoreError> {
        let removed = self.storage.remove_dead_letter(id).await?;
        if self.storage.stream_dead_letters(&self.definition.name, stream_id).await?.is_empty() {
            self.blocked.remove(stream_id);
        }
        Ok(removed)
    }
}

/// Runs the handler, turning a panic into a permanent failure: the event is parked with
/// the panic's message instead of taking the consumer down with it.
async fn handle_guarded(handler: &dyn EventHandler, event: &RecordedEvent) -> Result<(), HandlerError> {
    match std::panic::AssertUnwindSafe(handler.handle(event)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(HandlerError::permanent(format!("the handler panicked: {message}")))
        }
    }
}

/// An operator's request to a running consumer, carried out between two events so that
/// it never races the delivery of its stream.
#[derive(Debug)]
pub enum ConsumerControl {
    RetryStream { stream_id: StreamId, reply: oneshot::Sender<Result<RetryOutcome, StoreError>> },
    Discard { id: Uuid, stream_id: StreamId, reply: oneshot::Sender<Result<bool, StoreError>> },
}

impl ConsumerControl {
    /// The stream the request is about: it must reach the partition that handles it.
    pub fn stream_id(&self) -> &StreamId {
        match self {
            ConsumerControl::RetryStream { stream_id, .. } | ConsumerControl::Discard { stream_id, .. } => stream_id,
        }
    }

    /// Carries out the request on `consumer` and answers it.
    pub async fn apply(self, consumer: &mut EventConsumer) {
        match self {
            ConsumerControl::RetryStream { stream_id, reply } => {
                let _ = reply.send(consumer.retry_stream(&stream_id).await);
            }
            ConsumerControl::Discard { id, stream_id, reply } => {
                let _ = reply.send(consumer.discard(id, &stream_id).await);
            }
        }
    }
}

/// A consumer running on a bus: stop it, or act on its dead letters.
#[derive(Debug)]
pub struct ConsumerHandle {
    controls: mpsc::Sender<ConsumerControl>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The consumer's task has ended, so it cannot act on a request.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the consumer is not running")]
pub struct ConsumerStopped;

impl ConsumerHandle {
    /// Wraps a transport's consumer task, which must stop when `stop` turns true and
    /// apply every control it receives between two events.
    pub fn new(controls: mpsc::Sender<ConsumerControl>, stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        ConsumerHandle { controls, stop, task }
    }

    /// Replays a blocked stream's dead letters, in order.
    pub async fn retry_stream(&self, stream_id: StreamId) -> Result<RetryOutcome, ConsumerError> {
        let (reply, answer) = oneshot::channel();
        self.controls.send(ConsumerControl::RetryStream { stream_id, reply }).await.map_err(|_| ConsumerStopped)?;
        Ok(answer.await.map_err(|_| ConsumerStopped)??)
    }

    /// Drops a dead letter unhandled.
    pub async fn discard(&self, id: Uuid, stream_id: StreamId) -> Result<bool, ConsumerError> {
        let (reply, answer) = oneshot::channel();
        self.controls.send(ConsumerControl::Discard { id, stream_id, reply }).await.map_err(|_| ConsumerStopped)?;
        Ok(answer.await.map_err(|_| ConsumerStopped)??)
    }

    /// Stops the consumer after the event in hand and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!(%error, "consumer task panicked");
        }
    }
}

/// A request to a running consumer failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Stopped(#[from] ConsumerStopped),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryEventStore;
    use crate::envelope::{Metadata, NewEvent, Payload};
    use crate::store::{EventStore, ExpectedVersion};

    #[derive(Debug)]
    struct AlwaysFails;

    #[async_trait]
    impl EventHandler for AlwaysFails {
        async fn handle(&self, _event: &RecordedEvent) -> Result<(), HandlerError> {
            Err(HandlerError::permanent("no"))
        }
    }

    #[tokio::test]
    async fn a_redelivered_dead_letter_is_parked_once() {
        let source = InMemoryEventStore::new();
        let stream = StreamId::new("order", 1);
        let events = (0..2)
            .map(|_| {
                NewEvent::new("Noted", 1, Payload::from_value(&serde_json::json!({})), Metadata::new_transaction(None))
            })
            .collect();
        source.append(&stream, ExpectedVersion::Any, events).await.expect("append");
        let recorded = source.read_stream(&stream, 0).await.expect("read");
        let storage = Arc::new(InMemoryEventStore::new());
        let definition = ConsumerDefinition::new("test.failing", "source", &[]);
        let mut consumer =
            EventConsumer::start(definition.clone(), Arc::new(AlwaysFails), storage.clone()).await.expect("start");
        assert_eq!(consumer.deliver(&recorded[0]).await.expect("deliver"), Delivery::DeadLettered);
        assert_eq!(consumer.deliver(&recorded[1]).await.expect("deliver"), Delivery::ParkedBehind);
        // A restart delivers both again.
        let mut restarted =
            EventConsumer::start(definition, Arc::new(AlwaysFails), storage.clone()).await.expect("start");
        for event in &recorded {
            assert_eq!(restarted.deliver(event).await.expect("deliver"), Delivery::ParkedBehind);
        }
        assert_eq!(storage.dead_letters(None, 10).await.expect("list").len(), 2, "each event parked once");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy {
            max_attempts: 9,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let pauses: Vec<_> = (1..=6).map(|attempt| retry.backoff(attempt).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry.backoff(200), Duration::from_secs(1), "no overflow on absurd attempt counts");
    }
}
