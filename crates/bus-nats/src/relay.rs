//! The outbox relay: carries one service's recorded events from its event store to a
//! JetStream stream, in the store's global order.
//!
//! The store is the truth and the broker a copy of it that may fall behind or lose what it
//! acknowledged (a NATS 2.9 server acknowledges before its disk write, and a broker's
//! disk can be wiped). So the relay never trusts its own memory of what it published:
//!
//! - **Where to resume.** On start, after every error, and every [`CHECK_EVERY`] while it
//!   runs, the relay reads the stream's last message and its [`POSITION_HEADER`]. It
//!   publishes from after that position (from the start when the stream is empty; a
//!   missing stream is created again). After an error it resumes from the lower of that
//!   and the last position the broker acknowledged in order, so that a message the broker
//!   refused is never skipped because a later one was stored.
//! - **Broker loss.** A broker that holds less than the relay saw acknowledged — a stream
//!   missing, or a last position behind — is refilled from that point with the same
//!   `Nats-Msg-Id`s. The duplicate window drops repeats the broker still remembers, and
//!   consumers' inboxes ([`EventStore::append_handled`]) make any other repeat harmless.
//! - **Throughput.** Publishes are pipelined: up to [`IN_FLIGHT`] acknowledgements are
//!   awaited in order behind the newest publish.
//!
//! Each event is one message on `namespace.event_subject(service, stream, type)`; its body
//! is the [`RecordedEvent`] as JSON, and its headers carry the event id (`Nats-Msg-Id`,
//! `Eventshop-Message-Id`), the position, the stream id and version, and the correlation,
//! causation and acting-user ids, so that a consumer can attribute even a message whose
//! body it cannot decode.
//!
//! Only relays create event streams: a consumer that finds no stream waits for one, so
//! that a stream recreated after a loss always starts at the first event.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind, StorageType};
use async_trait::async_trait;
use eventshop_core::bus::{BusError, Running, headers};
use eventshop_core::stop::StopSignal;
use eventshop_core::{EventStore, Position, RecordedEvent, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{Namespace, NatsBus};

/// The event's position in its service's global order.
pub const POSITION_HEADER: &str = "Eventshop-Position";
/// The id of the event's stream.
pub const STREAM_ID_HEADER: &str = "Eventshop-Stream-Id";
/// The event's version in its stream.
pub const STREAM_VERSION_HEADER: &str = "Eventshop-Stream-Version";

/// Publishes whose acknowledgement is awaited at most at once.
pub const IN_FLIGHT: usize = 256;
/// How often the relay compares what the broker holds with what it acknowledged.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long the broker remembers message ids to drop repeats.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Events read from the store at once.
const PAGE_SIZE: usize = 500;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stopping relay waits for the acknowledgements of what it sent.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The JetStream stream of `service`'s events: every event subject of the service, on
/// disk, with a duplicate window for the relay's repeats. Nothing expires: the stream is
/// how consumers started later catch up.
pub fn stream_config(namespace: &Namespace, service: &str) -> stream::Config {
    stream::Config {
        name: namespace.event_stream(service),
        description: Some(format!("The events of {service}, published by its relay")),
        subjects: vec![namespace.event_subjects(service)],
        storage: StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// Starts relaying `store`'s events for `service`. It runs until stopped, retrying
/// whatever fails with backoff; a broker that is not reachable yet is waited for.
pub async fn start(bus: &NatsBus, service: &str, store: Arc<dyn EventStore>) -> Result<Box<dyn Running>, BusError> {
    let relay = Relay {
        jetstream: bus.jetstream().clone(),
        namespace: bus.namespace().clone(),
        service: service.to_owned(),
        store,
    };
    let (stop, stopped) = watch::channel(false);
    let stopped = StopSignal::from(stopped);
    let span = tracing::info_span!("relay", service = %service, stream = %relay.namespace.event_stream(service));
    let task = tokio::spawn(relay.run(stopped).instrument(span));
    Ok(Box::new(RunningRelay { service: service.to_owned(), stop, task }))
}

/// A running relay; stopping it finishes the publishes in flight.
#[derive(Debug)]
struct RunningRelay {
    service: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[async_trait]
impl Running for RunningRelay {
    async fn stop(self: Box<Self>) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            tracing::error!(service = %self.service, %error, "relay task panicked");
        }
    }
}

/// Why a round of publishing ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("cannot read the event store: {0}")]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Broker {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the broker holds less than it acknowledged: position {held}, acknowledged {acknowledged}")]
    BrokerBehind { held: Position, acknowledged: Position },
    #[error("the stream's last message (sequence {sequence}) has no valid {POSITION_HEADER} header")]
    NoPosition { sequence: u64 },
}

impl RelayError {
    fn broker(what: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        RelayError::Broker { what, source: Box::new(source) }
    }
}

struct Relay {
    jetstream: async_nats::jetstream::Context,
    namespace: Namespace,
    service: String,
    store: Arc<dyn EventStore>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay").field("service", &self.service).finish_non_exhaustive()
    }
}

impl Relay {
    async fn run(self, mut stopped: StopSignal) {
        // The last position the broker acknowledged in order: what it surely held once.
        let mut acknowledged: Option<Position> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            if stopped.is_stopping() {
                return;
            }
            let held = match self.broker_position().await {
                Ok(held) => held,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot read where the broker stands");
                    if stopped.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let resume = match acknowledged {
                Some(acknowledged) if held < acknowledged => {
                    tracing::warn!(%held, %acknowledged, "the broker lost events it acknowledged; publishing them again");
                    held
                }
                Some(acknowledged) => acknowledged,
                None => held,
            };
            tracing::info!(after = %resume, "publishing events");
            acknowledged = Some(resume);
            let error = match self.publish_from(resume, &mut acknowledged, &mut backoff, &mut stopped).await {
                Ok(()) => return,
                // Not a failure of the relay: start again from what the broker holds.
                Err(RelayError::BrokerBehind { .. }) => continue,
                Err(error) => error,
            };
            tracing::warn!(%error, retry_in = ?backoff, "relay interrupted");
            if stopped.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Publishes the store's events after `from` until stopped (`Ok`) or something fails.
    /// `acknowledged` follows the broker's in-order acknowledgements.
    async fn publish_from(
        &self,
        from: Position,
        acknowledged: &mut Option<Position>,
        backoff: &mut Duration,
        stopped: &mut StopSignal,
    ) -> Result<(), RelayError> {
        let mut read = from;
        let mut in_flight: VecDeque<(Position, PublishAckFuture)> = VecDeque::with_capacity(IN_FLIGHT);
        let mut next_check = Instant::now() + CHECK_EVERY;
        loop {
            if stopped.is_stopping() {
                self.finish(in_flight, acknowledged).await;
                return Ok(());
            }
            if Instant::now() >= next_check {
                let held = self.broker_position().await?;
                if let Some(acknowledged) = *acknowledged
                    && held < acknowledged
                {
                    return Err(RelayError::BrokerBehind { held, acknowledged });
                }
                next_check = Instant::now() + CHECK_EVERY;
            }
            let events = self.store.read_all(read, PAGE_SIZE).await?;
            if events.is_empty() {
                // Caught up: settle what is in flight, then wait for appends.
                while let Some((position, ack)) = in_flight.pop_front() {
                    ack.await.map_err(|error| RelayError::broker("publish not acknowledged", error))?;
                    *acknowledged = Some(position);
                    *backoff = FIRST_BACKOFF;
                }
                let wait = next_check.saturating_duration_since(Instant::now());
                tokio::select! {
                    () = stopped.stopped() => {}
                    () = self.store.wait_for_events(read, wait) => {}
                }
                continue;
            }
            for event in &events {
                if in_flight.len() >= IN_FLIGHT
                    && let Some((position, ack)) = in_flight.pop_front()
                {
                    ack.await.map_err(|error| RelayError::broker("publish not acknowledged", error))?;
                    *acknowledged = Some(position);
                    *backoff = FIRST_BACKOFF;
                }
                let ack = self.publish(event).await?;
                in_flight.push_back((event.position, ack));
                read = event.position;
            }
        }
    }

    /// Sends one event; the returned future resolves with the broker's acknowledgement.
    async fn publish(&self, event: &RecordedEvent) -> Result<PublishAckFuture, RelayError> {
        let subject = self.namespace.event_subject(&self.service, &event.stream_id, &event.event_type);
        let body = serde_json::to_vec(event).map_err(|error| RelayError::broker("cannot encode an event", error))?;
        self.jetstream
            .publish_with_headers(subject, event_headers(event), body.into())
            .await
            .map_err(|error| RelayError::broker("cannot publish", error))
    }

    /// Awaits the acknowledgements of what was sent, within a grace period.
    async fn finish(&self, in_flight: VecDeque<(Position, PublishAckFuture)>, acknowledged: &mut Option<Position>) {
        let settle = async {
            for (position, ack) in in_flight {
                if let Err(error) = ack.await {
                    tracing::warn!(%error, "a publish was not acknowledged before the relay stopped");
                    return;
                }
                *acknowledged = Some(position);
            }
        };
        if tokio::time::timeout(STOP_GRACE, settle).await.is_err() {
            tracing::warn!("the relay stopped before the broker acknowledged everything");
        }
    }

    /// The position of the last event the broker holds; [`Position::START`] when it holds
    /// none. Creates the stream when it is missing.
    async fn broker_position(&self) -> Result<Position, RelayError> {
        let stream = self
            .jetstream
            .get_or_create_stream(stream_config(&self.namespace, &self.service))
            .await
            .map_err(|error| RelayError::broker("cannot get or create the event stream", error))?;
        if stream.cached_info().state.messages == 0 {
            return Ok(Position::START);
        }
        let last = match stream.get_last_raw_message_by_subject(&self.namespace.event_subjects(&self.service)).await {
            Ok(last) => last,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(Position::START),
            Err(error) => return Err(RelayError::broker("cannot read the stream's last message", error)),
        };
        last.headers
            .get(POSITION_HEADER)
            .and_then(|value| value.as_str().parse::<u64>().ok())
            .map(Position)
            .ok_or(RelayError::NoPosition { sequence: last.sequence })
    }
}

/// The headers of an event's message.
pub fn event_headers(event: &RecordedEvent) -> HeaderMap {
    let mut map = HeaderMap::new();
    let event_id = event.event_id.to_string();
    map.insert(async_nats::header::NATS_MESSAGE_ID, event_id.as_str());
    map.insert(headers::MESSAGE_ID, event_id);
    map.insert(headers::CORRELATION_ID, event.correlation_id.to_string());
    map.insert(headers::CAUSATION_ID, event.causation_id.to_string());
    if let Some(user) = event.acting_user {
        map.insert(headers::ACTING_USER, user.to_string());
    }
    map.insert(POSITION_HEADER, event.position.0.to_string());
    map.insert(STREAM_ID_HEADER, event.stream_id.as_str());
    map.insert(STREAM_VERSION_HEADER, event.stream_version.to_string());
    map
}
