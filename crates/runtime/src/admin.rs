//! The standard admin operations of every service (`contracts::admin`): its own events,
//! read models, consumers and dead letters, answered over the bus so that a gateway that
//! only has the bus can show them (SPEC §4, §6).
//!
//! Live views and consumer handles are created deep inside each service crate, so rather
//! than have every crate hand them over, they register themselves here when they start,
//! in a registry of this process. Views are found by the store they follow (the same
//! `Arc` the service's router is given); consumer handles are kept by [`RunningService`]
//! and asked in turn, since a handle does not say which consumer it runs. Only weak
//! references are kept: what stops leaves the registry.
//!
//! With several instances of a service, the bus hands an admin request to one of them:
//! the answer (a view's position, a rebuild) is that instance's.
//!
//! Commands are the exception: they are not stored (in event sourcing, what lasts is the
//! events they caused), so each instance keeps the requests it handled recently in a
//! bounded [`CommandLog`] of its own, in memory, for `ReadCommands`.
//!
//! [`RunningService`]: crate::RunningService

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use contracts::admin::{
    AdminCommand, AdminEvent, CommandsRead, ConsumerStatus, DeadLetterAction, DeadLetterOutcome, DeadLetterSummary,
    EventsRead, ListDeadLetters, MAX_COMMANDS, MAX_EVENTS, ProjectionState, ProjectionStatus, ReadCommands, ReadEvents,
    RebuildProjection,
};
use eventshop_core::bus::{Rejection, RejectionKind, Reply};
use eventshop_core::consumer::{ConsumerHandle, ConsumerStorage, DeadLetter, RetryOutcome};
use eventshop_core::{EventStore, Position, RecordedEvent};

use crate::service::internal;
use crate::view::AdminView;

/// The most events one `ReadEvents` scans before it answers with what it found: a filter
/// that matches rarely (a correlation id in a large store) pages on with `scanned_to`
/// instead of reading the whole store in one request.
pub const SCAN_LIMIT: usize = 20_000;

/// Events read from the store per batch while scanning.
const SCAN_BATCH: usize = 500;

/// The most dead letters one service lists.
const DEAD_LETTER_LIMIT: usize = 1000;

#[derive(Default)]
struct Registry {
    /// Live views by the address of the store they follow.
    views: Vec<(usize, Weak<dyn AdminView>)>,
    /// Consumer names by the address of their consumer storage (the in-process bus
    /// registers them; a name also shows once it has dead letters).
    consumer_names: Vec<(usize, String)>,
    consumers: Vec<Weak<ConsumerHandle>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What identifies a store (or consumer storage) in this process: the address it lives at.
fn address<T: ?Sized>(shared: &Arc<T>) -> usize {
    Arc::as_ptr(shared).cast::<()>() as usize
}

pub(crate) fn register_view(store: &Arc<dyn EventStore>, view: &Arc<dyn AdminView>) {
    let mut registry = registry();
    registry.views.retain(|(_, view)| view.strong_count() > 0);
    registry.views.push((address(store), Arc::downgrade(view)));
}

/// Remembers that `storage` holds a consumer called `name`, so that `ListConsumers` shows
/// it before it has any dead letter.
pub fn register_consumer_name(storage: &Arc<dyn ConsumerStorage>, name: &str) {
    let key = address(storage);
    let mut registry = registry();
    if !registry.consumer_names.iter().any(|(known, known_name)| *known == key && known_name == name) {
        registry.consumer_names.push((key, name.to_owned()));
    }
}

pub(crate) fn register_consumer(handle: &Arc<ConsumerHandle>) {
    let mut registry = registry();
    registry.consumers.retain(|consumer| consumer.strong_count() > 0);
    registry.consumers.push(Arc::downgrade(handle));
}

fn views_of(store: &Arc<dyn EventStore>) -> Vec<Arc<dyn AdminView>> {
    let key = address(store);
    registry().views.iter().filter(|(address, _)| *address == key).filter_map(|(_, view)| view.upgrade()).collect()
}

fn running_consumers() -> Vec<Arc<ConsumerHandle>> {
    registry().consumers.iter().filter_map(Weak::upgrade).collect()
}

/// An event as the admin operations show it.
pub fn admin_event(service: &str, event: &RecordedEvent) -> AdminEvent {
    AdminEvent {
        position: event.position.0,
        event_id: event.event_id,
        stream_id: event.stream_id.as_str().to_owned(),
        version: event.stream_version,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        recorded_at: event.recorded_at,
        correlation_id: event.correlation_id,
        causation_id: event.causation_id,
        acting_user: event.acting_user,
        service: service.to_owned(),
        payload: event.payload.to_value().unwrap_or_else(|_| serde_json::Value::String(event.payload.as_str().into())),
    }
}

fn matches(request: &ReadEvents, event: &RecordedEvent) -> bool {
    request.stream.as_deref().is_none_or(|stream| event.stream_id.as_str() == stream)
        && request.event_type.as_deref().is_none_or(|event_type| event.event_type == event_type)
        && request.correlation_id.is_none_or(|correlation_id| event.correlation_id == correlation_id)
}

/// `ReadEvents`: scans the store from `after` for up to `limit` matching events, reading
/// at most [`SCAN_LIMIT`] events.
pub async fn read_events(
    service: &str,
    store: &Arc<dyn EventStore>,
    request: ReadEvents,
) -> Result<EventsRead, Rejection> {
    if !(1..=MAX_EVENTS).contains(&request.limit) {
        return Err(Rejection::new(RejectionKind::Invalid, format!("limit must be from 1 to {MAX_EVENTS}")));
    }
    let limit = request.limit as usize;
    let mut events = Vec::new();
    let mut scanned_to = request.after;
    let mut scanned = 0;
    'scan: while scanned < SCAN_LIMIT {
        let batch = store.read_all(Position(scanned_to), SCAN_BATCH).await.map_err(internal)?;
        if batch.is_empty() {
            break;
        }
        for event in &batch {
            scanned += 1;
            scanned_to = event.position.0;
            if matches(&request, event) {
                events.push(admin_event(service, event));
                if events.len() == limit {
                    break 'scan;
                }
            }
        }
    }
    let head = store.head_position().await.map_err(internal)?.0.max(scanned_to);
    Ok(EventsRead { events, scanned_to, head })
}

/// `ListProjections`: the live views that follow `store`, by name.
pub async fn list_projections(service: &str, store: &Arc<dyn EventStore>) -> Result<Vec<ProjectionStatus>, Rejection> {
    let head = store.head_position().await.map_err(internal)?;
    let mut projections: Vec<ProjectionStatus> = views_of(store)
        .iter()
        .map(|view| {
            let position = view.position();
            let progress = view.rebuild_progress();
            ProjectionStatus {
                name: view.name().to_owned(),
                service: service.to_owned(),
                position: position.0,
                lag: head.0.saturating_sub(position.0),
                status: if progress.is_some() { ProjectionState::Rebuilding } else { ProjectionState::Live },
                rebuild_position: progress.map(|position| position.0),
            }
        })
        .collect();
    projections.sort_by(|left, right| left.name.cmp(&right.name));
    projections.dedup_by(|left, right| left.name == right.name);
    Ok(projections)
}

/// `RebuildProjection`: starts rebuilding the named view; answers its status at once.
pub async fn rebuild_projection(
    service: &str,
    store: &Arc<dyn EventStore>,
    request: RebuildProjection,
) -> Result<ProjectionStatus, Rejection> {
    let Some(view) = views_of(store).into_iter().find(|view| view.name() == request.name) else {
        return Err(Rejection::new(RejectionKind::NotFound, format!("{service} has no projection {}", request.name)));
    };
    if !view.clone().start_rebuild() {
        return Err(Rejection::new(RejectionKind::Conflict, format!("{} is already rebuilding", request.name)));
    }
    let head = store.head_position().await.map_err(internal)?;
    let position = view.position();
    Ok(ProjectionStatus {
        name: request.name,
        service: service.to_owned(),
        position: position.0,
        lag: head.0.saturating_sub(position.0),
        status: ProjectionState::Rebuilding,
        rebuild_position: view.rebuild_progress().map(|position| position.0),
    })
}

fn dead_letter_summary(service: &str, letter: &DeadLetter) -> DeadLetterSummary {
    DeadLetterSummary {
        id: letter.id,
        consumer: letter.consumer.clone(),
        service: service.to_owned(),
        reason: letter.reason.clone(),
        attempts: letter.attempts,
        parked_at: letter.parked_at,
        event: admin_event(service, &letter.event),
    }
}

/// `ListDeadLetters`: the service's dead letters, oldest first.
pub async fn list_dead_letters(
    service: &str,
    storage: &Arc<dyn ConsumerStorage>,
    request: ListDeadLetters,
) -> Result<Vec<DeadLetterSummary>, Rejection> {
    let limit = (request.limit as usize).clamp(1, DEAD_LETTER_LIMIT);
    let letters = storage.dead_letters(None, limit).await.map_err(internal)?;
    Ok(letters.iter().map(|letter| dead_letter_summary(service, letter)).collect())
}

/// `ListConsumers`: every consumer this storage is known to hold, with its position and
/// its count of dead letters.
pub async fn list_consumers(
    service: &str,
    storage: &Arc<dyn ConsumerStorage>,
) -> Result<Vec<ConsumerStatus>, Rejection> {
    let key = address(storage);
    let mut names: Vec<String> =
        registry().consumer_names.iter().filter(|(known, _)| *known == key).map(|(_, name)| name.clone()).collect();
    let letters = storage.dead_letters(None, DEAD_LETTER_LIMIT).await.map_err(internal)?;
    names.extend(letters.iter().map(|letter| letter.consumer.clone()));
    names.sort();
    names.dedup();
    let mut consumers = Vec::with_capacity(names.len());
    for name in names {
        let position = storage.consumer_position(&name).await.map_err(internal)?;
        let dead_letters = letters.iter().filter(|letter| letter.consumer == name).count() as u64;
        consumers.push(ConsumerStatus { name, service: service.to_owned(), position: position.0, dead_letters });
    }
    Ok(consumers)
}

async fn find_dead_letter(storage: &Arc<dyn ConsumerStorage>, id: uuid::Uuid) -> Result<DeadLetter, Rejection> {
    let letters = storage.dead_letters(None, DEAD_LETTER_LIMIT).await.map_err(internal)?;
    letters
        .into_iter()
        .find(|letter| letter.id == id)
        .ok_or_else(|| Rejection::new(RejectionKind::NotFound, format!("there is no dead letter {id}")))
}

/// `RetryDeadLetter`: hands the letter's stream to the consumers running in this process
/// again, in order. A handle does not say which consumer it runs, so every running
/// consumer is asked to retry its own dead letters of that stream (other consumers' dead
/// letters of the same stream are retried with it).
pub async fn retry_dead_letter(
    storage: &Arc<dyn ConsumerStorage>,
    request: DeadLetterAction,
) -> Result<DeadLetterOutcome, Rejection> {
    let letter = find_dead_letter(storage, request.id).await?;
    let mut unblocked = false;
    for consumer in running_consumers() {
        match consumer.retry_stream(letter.event.stream_id.clone()).await {
            Ok(RetryOutcome::Unblocked { handled }) if handled > 0 => unblocked = true,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "a consumer could not retry"),
        }
    }
    let still_there = storage.dead_letters(None, DEAD_LETTER_LIMIT).await.map_err(internal)?;
    let outcome = if still_there.iter().any(|other| other.id == request.id) {
        "still_failing"
    } else if unblocked {
        "retried"
    } else {
        return Err(Rejection::new(
            RejectionKind::Conflict,
            format!("no running consumer of this instance holds dead letter {}", request.id),
        ));
    };
    Ok(DeadLetterOutcome { id: request.id, outcome: outcome.to_owned() })
}

/// `DiscardDeadLetter`: drops the letter unhandled. Every running consumer is told, so
/// that the one whose stream it blocked lets the stream flow when it has no more.
pub async fn discard_dead_letter(
    storage: &Arc<dyn ConsumerStorage>,
    request: DeadLetterAction,
) -> Result<DeadLetterOutcome, Rejection> {
    let letter = find_dead_letter(storage, request.id).await?;
    for consumer in running_consumers() {
        if let Err(error) = consumer.discard(letter.id, letter.event.stream_id.clone()).await {
            tracing::warn!(%error, "a consumer could not discard");
        }
    }
    // No running consumer (stopped, or the letter's consumer runs elsewhere): the storage
    // still drops it; a consumer that starts later reads its blocked streams afresh.
    storage.remove_dead_letter(letter.id).await.map_err(internal)?;
    Ok(DeadLetterOutcome { id: request.id, outcome: "discarded".to_owned() })
}

/// How many handled requests an instance remembers for `ReadCommands`.
pub const COMMAND_LOG_CAPACITY: usize = 10_000;

/// The requests (commands and queries) one service instance handled most recently, for
/// the transaction trace. In memory and per instance by design: commands are not events,
/// and are not durable; what they caused is. A restart forgets them, and with several
/// instances of a service each knows only its own (the bus hands `ReadCommands` to one).
/// Request bodies are never kept: they may hold passwords.
#[derive(Debug)]
pub struct CommandLog {
    capacity: usize,
    entries: Mutex<VecDeque<AdminCommand>>,
}

impl Default for CommandLog {
    fn default() -> Self {
        Self::new(COMMAND_LOG_CAPACITY)
    }
}

impl CommandLog {
    /// A log that keeps the last `capacity` requests (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        CommandLog { capacity, entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<AdminCommand>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a handled request, forgetting the oldest one when full.
    pub fn record(&self, command: AdminCommand) {
        let mut entries = self.entries();
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(command);
    }

    /// How many requests it holds.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `ReadCommands`: the most recent `limit` requests of the transaction, oldest first.
    pub fn read(&self, request: ReadCommands) -> Result<CommandsRead, Rejection> {
        if !(1..=MAX_COMMANDS).contains(&request.limit) {
            return Err(Rejection::new(RejectionKind::Invalid, format!("limit must be from 1 to {MAX_COMMANDS}")));
        }
        let mut commands: Vec<AdminCommand> = self
            .entries()
            .iter()
            .rev()
            .filter(|command| command.correlation_id == request.correlation_id)
            .take(request.limit as usize)
            .cloned()
            .collect();
        commands.sort_by_key(|command| command.started_at);
        Ok(CommandsRead { commands })
    }
}

/// A reply as a command's outcome: `ok`, or the rejection's kind as it is written on the
/// wire (`not_found`, `conflict`, …).
pub fn command_outcome(reply: &Reply) -> String {
    match reply {
        Ok(_) => "ok".to_owned(),
        Err(rejection) => match serde_json::to_value(rejection.kind) {
            Ok(serde_json::Value::String(kind)) => kind,
            _ => rejection.kind.to_string(),
        },
    }
}
