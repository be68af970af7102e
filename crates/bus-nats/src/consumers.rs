//! Consumers on JetStream: a service's handler fed with another service's events, in order
//! per stream, by however many instances of the service run.
//!
//! - **Partitions.** A consumer has one durable pull consumer per partition
//!   (`namespace.durable_name(consumer, p)`), filtered to the partition's subjects, with
//!   explicit acks and `max_ack_pending = 1`: the server hands a partition's next message
//!   to whichever instance asks, and only once the previous one was acknowledged. So a
//!   stream (always in one partition) is never handled by two instances at once, nor out
//!   of order, with no lease to keep. Each instance runs one task per partition.
//! - **Retries and dead letters** are [`EventConsumer`]'s, one per partition task. The
//!   consuming service's storage is the truth about which streams are blocked, since
//!   another instance may have parked an event of the stream (or retried it) since this
//!   one started: before each wanted event the task asks the storage, parks the event
//!   behind the stream's dead letters if it has any, and otherwise lets the
//!   `EventConsumer` deliver it. A message whose body is not a [`RecordedEvent`] is parked
//!   at once with the reason, attributed from its headers as far as they go; a handler
//!   that panics has its event parked with the panic's message. Neither is dropped, and
//!   neither stops the task.
//! - **Long handlers.** While a handler runs (retries included), the message's ack wait
//!   ([`ACK_WAIT`]) is extended every [`PROGRESS_EVERY`], so the server does not hand it to
//!   another instance meanwhile. A message is acknowledged after its handling (or
//!   parking) is recorded; an acknowledgement that is lost means a redelivery, which the
//!   consumer's inbox ([`EventStore::append_handled`](eventshop_core::EventStore::append_handled))
//!   makes harmless.
//! - **Pull requests are short** ([`PULL_EXPIRES`]). Between two of them nothing can be on
//!   its way to this instance, so that is where operator controls
//!   ([`ConsumerHandle::retry_stream`], [`ConsumerHandle::discard`]) are carried out, on
//!   the task of the stream's partition; and a stopping task drains its last request,
//!   handing back (`-NAK`) a message that arrives after the stop, so that a restart does
//!   not wait out the ack wait of a message nobody holds.
//! - **Durables come and go.** A durable that disappears (a broker that lost its state, an
//!   operator) is created again with "deliver all"; consumers never create the event
//!   stream itself (only the relay does, see [`crate::relay`]) and wait for it.
//! - **Replays.** JetStream keeps each partition's exact position; the consumer's storage
//!   keeps the highest position handled, written before the first acknowledgement of a
//!   run and then about every [`SAVE_POSITION_EVERY`]. If that storage says nothing was
//!   handled ([`Position::START`]) while the durables say otherwise, the storage was reset
//!   or replaced: the durables are recreated and every event is delivered again (the
//!   in-process bus behaves the same).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Batch};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, ErrorCode};
use chrono::Utc;
use eventshop_core::bus::{BusError, MessageContext};
use eventshop_core::consumer::{
    ConsumerControl, ConsumerDefinition, ConsumerHandle, ConsumerStorage, DeadLetter, Delivery, EventConsumer,
    EventHandler,
};
use eventshop_core::stop::StopSignal;
use eventshop_core::{Payload, Position, RecordedEvent, StoreError, StreamId};
use futures::{FutureExt, StreamExt};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::relay::{POSITION_HEADER, STREAM_ID_HEADER, STREAM_VERSION_HEADER};
use crate::subjects::{PARTITIONS, partition};
use crate::{Namespace, NatsBus};

/// How long the server waits for a message's acknowledgement before handing it out again.
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// How often a running handler's message has its ack wait extended.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How long a pull request waits for messages; bounds how long a control or a stop waits.
pub const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// How often the highest position handled is saved in the consumer's storage.
pub const SAVE_POSITION_EVERY: Duration = Duration::from_secs(1);

/// Messages asked for per pull request; the server sends them one by one anyway.
const PULL_BATCH: usize = 1_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long after its expiry a pull request that the server never closed is given up.
const UNANSWERED: Duration = Duration::from_secs(2);
const PARKED_BEHIND: &str = "waiting behind an earlier dead letter of its stream";

/// The durable consumer of `definition` on one partition of its source's events.
pub fn durable_config(namespace: &Namespace, definition: &ConsumerDefinition, partition: u32) -> pull::Config {
    pull::Config {
        durable_name: Some(namespace.durable_name(&definition.name, partition)),
        description: Some(format!("{}: partition {partition} of the events of {}", definition.name, definition.source)),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        // Unlimited: the consumer's own retries and dead letters decide when to give up.
        max_deliver: -1,
        filter_subject: namespace.partition_subjects(&definition.source, partition),
        max_ack_pending: 1,
        ..Default::default()
    }
}

/// Starts consuming `definition.source`'s events with `handler`, on every partition.
pub async fn start(
    bus: &NatsBus,
    definition: ConsumerDefinition,
    handler: Arc<dyn EventHandler>,
    storage: Arc<dyn ConsumerStorage>,
) -> Result<ConsumerHandle, BusError> {
    let shared = Arc::new(Shared {
        jetstream: bus.jetstream().clone(),
        namespace: bus.namespace().clone(),
        stream_name: bus.namespace().event_stream(&definition.source),
        definition: definition.clone(),
        storage: storage.clone(),
        positions: Positions::default(),
    });
    let (stop, stopped) = watch::channel(false);
    let stopped = StopSignal::from(stopped);
    let (ready, readied) = watch::channel(false);
    let mut partitions = Vec::with_capacity(PARTITIONS as usize);
    let mut routes = Vec::with_capacity(PARTITIONS as usize);
    for number in 0..PARTITIONS {
        let consumer = EventConsumer::start(definition.clone(), handler.clone(), storage.clone())
            .await
            .map_err(BusError::transport)?;
        let (route, controls) = mpsc::channel(64);
        routes.push(route);
        partitions.push(Partition {
            shared: shared.clone(),
            number,
            consumer,
            controls,
            stopped: stopped.clone(),
            ready: readied.clone(),
        });
    }
    let (controls, control_receiver) = mpsc::channel(16);
    let span = tracing::info_span!("consumer", consumer = %definition.name, source = %definition.source);
    let task = tokio::spawn(supervise(shared, partitions, routes, control_receiver, ready, stopped).instrument(span));
    Ok(ConsumerHandle::new(controls, stop, task))
}

/// What the partition tasks of one consumer share.
#[derive(Debug)]
struct Shared {
    jetstream: jetstream::Context,
    namespace: Namespace,
    stream_name: String,
    definition: ConsumerDefinition,
    storage: Arc<dyn ConsumerStorage>,
    positions: Positions,
}

/// Runs the partition tasks, routes controls to them, and waits for them when stopped.
async fn supervise(
    shared: Arc<Shared>,
    partitions: Vec<Partition>,
    routes: Vec<mpsc::Sender<ConsumerControl>>,
    mut controls: mpsc::Receiver<ConsumerControl>,
    ready: watch::Sender<bool>,
    mut stopped: StopSignal,
) {
    let tasks: Vec<JoinHandle<()>> = partitions
        .into_iter()
        .map(|partition| {
            let span = tracing::info_span!("partition", partition = partition.number);
            tokio::spawn(partition.run().instrument(span))
        })
        .collect();
    let prepare = shared.prepare(stopped.clone());
    tokio::pin!(prepare);
    let mut prepared = false;
    loop {
        tokio::select! {
            () = stopped.stopped() => break,
            () = &mut prepare, if !prepared => {
                prepared = true;
                let _ = ready.send(true);
            }
            control = controls.recv() => {
                let Some(control) = control else { break };
                let stream_id = match &control {
                    ConsumerControl::RetryStream { stream_id, .. } | ConsumerControl::Discard { stream_id, .. } => stream_id,
                };
                // A stream's controls go to the task that delivers its events; if that task
                // is gone, the dropped reply tells the caller so.
                let _ = routes[partition(stream_id) as usize].send(control).await;
            }
        }
    }
    for task in tasks {
        if let Err(error) = task.await
            && error.is_panic()
        {
            tracing::error!(%error, "partition task panicked");
        }
    }
    shared.positions.save(&shared).await;
}

impl Shared {
    /// Replays everything if the consumer's storage was reset, retrying until it can tell.
    async fn prepare(&self, mut stopped: StopSignal) {
        let mut backoff = FIRST_BACKOFF;
        while let Err(error) = self.replay_if_reset().await {
            tracing::warn!(%error, retry_in = ?backoff, "cannot check the durable consumers");
            if stopped.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Deletes the durables that have progressed if the storage says nothing was handled.
    async fn replay_if_reset(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let stream = self.jetstream.get_stream_no_info(&self.stream_name).await?;
        let mut progressed = Vec::new();
        for number in 0..PARTITIONS {
            let durable = self.namespace.durable_name(&self.definition.name, number);
            match stream.consumer_info(&durable).await {
                // The consumer sequence of the ack floor counts acknowledgements, unlike its
                // stream sequence, which starts below the partition's first message.
                Ok(info) if info.ack_floor.consumer_sequence > 0 => progressed.push(durable),
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                    ) => {}
                Err(error) => return Err(error.into()),
            }
        }
        // Read after the durables: a first acknowledgement is preceded by a saved position.
        if progressed.is_empty() || self.storage.consumer_position(&self.definition.name).await? > Position::START {
            return Ok(());
        }
        tracing::warn!(
            "the consumer's storage has handled nothing but its durables have moved on: replaying every event"
        );
        for durable in progressed {
            match stream.delete_consumer(&durable).await {
                Ok(_) => {}
                Err(error) if is_code(error.kind(), ErrorCode::CONSUMER_NOT_FOUND) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn is_code(kind: ConsumerErrorKind, code: ErrorCode) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(error) if error.error_code() == code)
}

/// The highest position the consumer handled, and what it last saved of it.
#[derive(Debug, Default)]
struct Positions {
    highest: AtomicU64,
    saved: Mutex<Option<(Position, Instant)>>,
}

impl Positions {
    /// Records a handled position; saves it if nothing was saved in this run yet (so that
    /// a first acknowledgement always follows a saved position) or the last save is old.
    async fn handled(&self, shared: &Shared, position: Position) {
        // A message without a position still counts as something handled.
        self.highest.fetch_max(position.0.max(1), Ordering::Relaxed);
        let mut saved = self.saved.lock().await;
        if saved.is_none_or(|(_, at)| at.elapsed() >= SAVE_POSITION_EVERY) {
            Self::write(shared, &self.highest, &mut saved).await;
        }
    }

    async fn save(&self, shared: &Shared) {
        let mut saved = self.saved.lock().await;
        Self::write(shared, &self.highest, &mut saved).await;
    }

    async fn write(shared: &Shared, highest: &AtomicU64, saved: &mut Option<(Position, Instant)>) {
        let highest = Position(highest.load(Ordering::Relaxed));
        if highest == Position::START || saved.is_some_and(|(position, _)| position >= highest) {
            return;
        }
        match shared.storage.save_consumer_position(&shared.definition.name, highest).await {
            Ok(()) => *saved = Some((highest, Instant::now())),
            Err(error) => tracing::warn!(%error, "cannot save the consumer position"),
        }
    }
}

/// One partition's task: pulls its messages one at a time and hands them to its consumer.
#[derive(Debug)]
struct Partition {
    shared: Arc<Shared>,
    number: u32,
    consumer: EventConsumer,
    controls: mpsc::Receiver<ConsumerControl>,
    stopped: StopSignal,
    ready: watch::Receiver<bool>,
}

impl Partition {
    async fn run(mut self) {
        if !self.wait_until_ready().await {
            return;
        }
        let mut backoff = FIRST_BACKOFF;
        'attach: while !self.stopped.is_stopping() {
            let durable = match self.attach().await {
                Ok(durable) => durable,
                Err(error) => {
                    // Every partition waits the same way; one of them says so.
                    if self.number == 0 {
                        tracing::warn!(%error, retry_in = ?backoff, "cannot attach to the event stream");
                    }
                    if self.idle(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            loop {
                // Between two pull requests nothing is on its way here: carry out controls.
                while let Ok(control) = self.controls.try_recv() {
                    apply(control, &mut self.consumer).await;
                }
                if self.stopped.is_stopping() {
                    break 'attach;
                }
                let requested = Instant::now();
                let mut batch = match durable.batch().max_messages(PULL_BATCH).expires(PULL_EXPIRES).messages().await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "cannot pull messages");
                        if self.idle(backoff).await {
                            break 'attach;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue 'attach;
                    }
                };
                loop {
                    let next = tokio::select! {
                        biased;
                        () = self.stopped.stopped() => {
                            drain(batch).await;
                            break 'attach;
                        }
                        next = batch.next() => next,
                    };
                    match next {
                        // The server never closed the request: it lost it (a restart), or
                        // the durable is gone (a wiped server) and nobody answers for it.
                        // Attach again, which finds out and creates the durable if need be.
                        None if requested.elapsed() > PULL_EXPIRES + UNANSWERED => continue 'attach,
                        // The request expired or was fulfilled.
                        None => break,
                        Some(Err(error)) => {
                            // Typically the durable or the stream is gone: attach again.
                            tracing::debug!(%error, "pull request failed");
                            if self.idle(backoff).await {
                                break 'attach;
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue 'attach;
                        }
                        Some(Ok(message)) => {
                            backoff = FIRST_BACKOFF;
                            self.process(message).await;
                            if self.stopped.is_stopping() {
                                drain(batch).await;
                                break 'attach;
                            }
                        }
                    }
                }
            }
        }
        self.shared.positions.save(&self.shared).await;
        if let Err(error) = self.shared.jetstream.client().flush().await {
            tracing::debug!(%error, "cannot flush the last acknowledgements");
        }
    }

    /// Waits for the consumer's preparation, carrying out controls meanwhile; false if
    /// stopped first.
    async fn wait_until_ready(&mut self) -> bool {
        loop {
            tokio::select! {
                biased;
                () = self.stopped.stopped() => return false,
                Some(control) = self.controls.recv() => apply(control, &mut self.consumer).await,
                ready = async { self.ready.wait_for(|ready| *ready).await.is_ok() } => return ready,
            }
        }
    }

    /// Pauses after a failure, carrying out controls meanwhile; true if stopped.
    async fn idle(&mut self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        loop {
            tokio::select! {
                biased;
                () = self.stopped.stopped() => return true,
                Some(control) = self.controls.recv() => apply(control, &mut self.consumer).await,
                () = tokio::time::sleep_until(until) => return self.stopped.is_stopping(),
            }
        }
    }

    /// The partition's durable consumer, created if missing; fails while the stream is.
    async fn attach(&self) -> Result<PullConsumer, Box<dyn std::error::Error + Send + Sync>> {
        let shared = &self.shared;
        let config = durable_config(&shared.namespace, &shared.definition, self.number);
        let name = config.durable_name.clone().unwrap_or_default();
        let stream = shared.jetstream.get_stream_no_info(&shared.stream_name).await?;
        Ok(stream.get_or_create_consumer(&name, config).await?)
    }

    /// Handles one message and acknowledges it, whatever it holds.
    async fn process(&mut self, message: jetstream::Message) {
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or_default();
        let (event, undecodable) = match serde_json::from_slice::<RecordedEvent>(&message.payload) {
            Ok(event) => (event, None),
            Err(error) => {
                let (event, reason) = salvage(&message, sequence, &error);
                (event, Some(reason))
            }
        };
        let span = tracing::info_span!(
            "event",
            subject = %message.subject,
            sequence,
            event_id = %event.event_id,
            correlation_id = %event.correlation_id,
        );
        async {
            if self.shared.definition.wants(&event) {
                if let Some(reason) = &undecodable {
                    tracing::error!(%reason, "undecodable message dead-lettered");
                }
                let delivered = with_progress(&message, self.deliver(&event, undecodable)).await;
                if delivered.is_none() {
                    // Stopped while the storage was failing: hand the message back.
                    if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                        tracing::debug!(%error, "cannot hand the message back");
                    }
                    return;
                }
            }
            self.shared.positions.handled(&self.shared, event.position).await;
            if let Err(error) = message.ack().await {
                tracing::warn!(%error, "cannot acknowledge; the message will come again");
            }
        }
        .instrument(span)
        .await;
    }

    /// Delivers a wanted event, trying again while the consumer's own storage fails;
    /// `None` if stopped meanwhile.
    async fn deliver(&mut self, event: &RecordedEvent, undecodable: Option<String>) -> Option<Delivery> {
        loop {
            match self.try_deliver(event, undecodable.as_deref()).await {
                Ok(delivery) => return Some(delivery),
                Err(error) => {
                    tracing::error!(%error, "consumer storage failed; retrying the event");
                    let mut stopped = self.stopped.clone();
                    if stopped.pause(FIRST_BACKOFF).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn try_deliver(&mut self, event: &RecordedEvent, undecodable: Option<&str>) -> Result<Delivery, StoreError> {
        let name = &self.shared.definition.name;
        // The storage, not this instance's memory, says whether the stream is blocked:
        // another instance may have parked one of its events, or retried them.
        if !self.shared.storage.stream_dead_letters(name, &event.stream_id).await?.is_empty() {
            self.park(event, PARKED_BEHIND, 0).await?;
            return Ok(Delivery::ParkedBehind);
        }
        if self.consumer.blocked_streams().any(|blocked| *blocked == event.stream_id) {
            // Unblocked elsewhere: with no letters left, a retry only forgets the block.
            self.consumer.retry_stream(&event.stream_id).await?;
        }
        if let Some(reason) = undecodable {
            self.park(event, reason, 0).await?;
            return Ok(Delivery::DeadLettered);
        }
        match AssertUnwindSafe(self.consumer.deliver(event)).catch_unwind().await {
            Ok(delivery) => delivery,
            // A bug in the handler: park the event like any that fails, rather than lose
            // the partition's task.
            Err(panic) => {
                let reason = format!("the handler panicked: {}", panic_message(&*panic));
                tracing::error!(%reason, "event dead-lettered");
                self.park(event, &reason, 1).await?;
                Ok(Delivery::DeadLettered)
            }
        }
    }

    async fn park(&self, event: &RecordedEvent, reason: &str, attempts: u32) -> Result<(), StoreError> {
        let letter = DeadLetter {
            id: Uuid::now_v7(),
            consumer: self.shared.definition.name.clone(),
            event: event.clone(),
            reason: reason.to_owned(),
            attempts,
            parked_at: Utc::now(),
        };
        self.shared.storage.park(&letter).await
    }
}

/// Carries out an operator's control; a handler that panics while replaying dead letters
/// fails the request, not the partition's task.
async fn apply(control: ConsumerControl, consumer: &mut EventConsumer) {
    if let Err(panic) = AssertUnwindSafe(control.apply(consumer)).catch_unwind().await {
        tracing::error!(panic = panic_message(&*panic), "the handler panicked while replaying dead letters");
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Runs `work`, extending `message`'s ack wait while it lasts.
async fn with_progress<F: Future>(message: &jetstream::Message, work: F) -> F::Output {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            biased;
            output = &mut work => return output,
            _ = ticks.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "cannot extend the ack wait");
                }
            }
        }
    }
}

/// Reads a stopping task's last pull request to its end, handing back whatever arrives.
async fn drain(mut batch: Batch) {
    let read = async {
        while let Some(next) = batch.next().await {
            if let Ok(message) = next {
                tracing::debug!(subject = %message.subject, "handing back a message that arrived after the stop");
                if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                    tracing::debug!(%error, "cannot hand a message back");
                }
            }
        }
    };
    let _ = tokio::time::timeout(PULL_EXPIRES + Duration::from_secs(1), read).await;
}

/// What an undecodable message's headers and subject tell of its event, and why it could
/// not be decoded. The body is kept as the payload: as it is if it is JSON, else as a
/// JSON string.
fn salvage(message: &jetstream::Message, sequence: u64, error: &serde_json::Error) -> (RecordedEvent, String) {
    let header =
        |name: &str| message.headers.as_ref().and_then(|headers| headers.get(name)).map(|value| value.as_str());
    let context = MessageContext::from_headers(header);
    let event_id = header(async_nats::header::NATS_MESSAGE_ID.as_ref())
        .and_then(|id| id.parse::<Uuid>().ok())
        .unwrap_or(context.message_id);
    let stream_id = header(STREAM_ID_HEADER)
        .map(StreamId::from_raw)
        .unwrap_or_else(|| StreamId::from_raw(format!("undecodable-{sequence}")));
    let body = String::from_utf8_lossy(&message.payload).into_owned();
    let payload = if serde_json::from_str::<&serde_json::value::RawValue>(&body).is_ok() {
        Payload::from_json_unchecked(body)
    } else {
        Payload::from_value(&serde_json::Value::String(body))
    };
    let event = RecordedEvent {
        event_id,
        stream_id,
        stream_version: header(STREAM_VERSION_HEADER).and_then(|version| version.parse().ok()).unwrap_or_default(),
        position: Position(header(POSITION_HEADER).and_then(|position| position.parse().ok()).unwrap_or_default()),
        event_type: message.subject.rsplit('.').next().unwrap_or_default().to_owned(),
        schema_version: 0,
        recorded_at: Utc::now(),
        correlation_id: context.correlation_id,
        causation_id: context.causation_id,
        acting_user: context.acting_user,
        payload,
    };
    let reason = format!("cannot decode the event in {} (stream sequence {sequence}): {error}", message.subject);
    (event, reason)
}
