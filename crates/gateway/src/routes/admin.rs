//! The admin routes of SPEC §4: service instances, the event browser, transaction traces,
//! projections, consumers and dead letters. Administrators only.
//!
//! The gateway has only the bus, so it asks every service it discovers there for the
//! standard admin operations of `contracts::admin`, each about the service's own store,
//! and merges the answers. A service that does not answer is left out of a list (and
//! logged) rather than failing the whole page: the dashboard must work when one is down.
//!
//! Event positions are per service (each has its own store). The event browser's
//! `after` is therefore a position in one service's store and needs `service`; paging
//! across services uses `cursor`, which holds each service's position
//! (`name:position,…`).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use contracts::admin::{
    self as operations, AdminCommand, AdminEvent, CommandsRead, ConsumerStatus, DeadLetterAction, DeadLetterOutcome,
    DeadLetterSummary, EventsRead, ListDeadLetters, ProjectionState, ProjectionStatus, ReadCommands, ReadEvents,
    RebuildProjection,
};
use contracts::orders::{ListOrders, Order, OrderStatus};
use contracts::values::PageRequest;
use eventshop_core::Payload;
use eventshop_core::bus::Request;
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::auth::Admin;
use crate::context::RequestContext;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{Json, PathId, Query, parse_query_parameter};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/services", get(list_services))
        .route("/api/admin/live", get(live))
        .route("/api/admin/events", get(browse_events))
        .route("/api/admin/traces/{correlation_id}", get(trace))
        .route("/api/admin/projections", get(list_projections))
        .route("/api/admin/projections/{name}/rebuild", post(rebuild_projection))
        .route("/api/admin/consumers", get(list_consumers))
        .route("/api/admin/dead-letters", get(list_dead_letters))
        .route("/api/admin/dead-letters/{id}/retry", post(retry_dead_letter))
        .route("/api/admin/dead-letters/{id}/discard", post(discard_dead_letter))
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_services,
        live,
        browse_events,
        trace,
        list_projections,
        rebuild_projection,
        list_consumers,
        list_dead_letters,
        retry_dead_letter,
        discard_dead_letter
    ),
    tags((name = "admin", description = "Operations (administrators): services, events, traces, projections, consumers"))
)]
pub(crate) struct Api;

/// The most events of one correlation id a trace shows.
const TRACE_LIMIT: usize = 2000;

/// The most `ReadEvents` pages a trace reads from one service (each scans a bounded
/// stretch of the store), so that a trace of a huge store ends.
const TRACE_PAGES: usize = 50;

/// Sends a standard admin operation to `service` and decodes its reply.
async fn ask<T: DeserializeOwned>(
    state: &AppState,
    context: &RequestContext,
    admin: &Admin,
    service: &str,
    operation: &str,
    body: &impl Serialize,
) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(ApiError::internal)?;
    let request = Request {
        service: service.to_owned(),
        operation: operation.to_owned(),
        context: context.message(Some(admin.0.user_id)),
        body: Payload::from_json_unchecked(body),
    };
    let payload = state.bus.request(request, state.request_timeout).await??;
    serde_json::from_str(payload.as_str()).map_err(|error| ApiError::BadGateway(format!("{service}: {error}")))
}

/// The names of the services running now, sorted.
async fn service_names(state: &AppState) -> Result<Vec<String>, ApiError> {
    let mut names: Vec<String> = state.bus.discover().await?.into_iter().map(|instance| instance.name).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Asks every service; the ones that fail are logged and left out.
async fn ask_all<T: DeserializeOwned>(
    state: &AppState,
    context: &RequestContext,
    admin: &Admin,
    operation: &str,
    body: &(impl Serialize + Sync),
) -> Result<Vec<(String, T)>, ApiError> {
    let names = service_names(state).await?;
    let asks = names.iter().map(|service| async move {
        match ask::<T>(state, context, admin, service, operation, body).await {
            Ok(reply) => Some((service.clone(), reply)),
            Err(error) => {
                tracing::warn!(service, operation, %error, "a service did not answer an admin request");
                None
            }
        }
    });
    Ok(futures::future::join_all(asks).await.into_iter().flatten().collect())
}

/// A list of the admin routes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminList<T> {
    pub items: Vec<T>,
    /// Always null where the whole list fits one answer.
    pub next_cursor: Option<String>,
}

fn whole_list<T>(items: Vec<T>) -> Json<AdminList<T>> {
    Json(AdminList { items, next_cursor: None })
}

/// A running service instance (SPEC §4 "service instance").
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ServiceInstance)]
pub struct ServiceInstanceBody {
    pub name: String,
    /// The instance's own id on the bus.
    pub id: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: u64,
    /// Requests answered since it started.
    pub requests: u64,
    /// Of those, how many ended in an error reply.
    pub errors: u64,
    /// Requests answered, per operation.
    pub requests_by_operation: BTreeMap<String, u64>,
}

/// `GET /api/admin/services`: the service instances running now, discovered on the bus.
#[utoipa::path(
    get,
    path = "/api/admin/services",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The instances, by service name", body = AdminList<ServiceInstanceBody>),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_services(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Json<AdminList<ServiceInstanceBody>>, ApiError> {
    Ok(whole_list(service_instances(&state).await?))
}

/// The instances on the bus now, by service name and id.
async fn service_instances(state: &AppState) -> Result<Vec<ServiceInstanceBody>, ApiError> {
    let now = Utc::now();
    let mut instances: Vec<ServiceInstanceBody> = state
        .bus
        .discover()
        .await?
        .into_iter()
        .map(|instance| ServiceInstanceBody {
            uptime_seconds: u64::try_from((now - instance.started_at).num_seconds()).unwrap_or(0),
            requests: instance.requests.values().sum(),
            errors: instance.errors,
            name: instance.name,
            id: instance.id,
            version: instance.version,
            started_at: instance.started_at,
            requests_by_operation: instance.requests,
        })
        .collect();
    instances.sort_by(|left, right| (&left.name, &left.id).cmp(&(&right.name, &right.id)));
    Ok(instances)
}

/// An event as the admin routes show it (SPEC §4 "event (admin)").
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AdminEvent)]
pub struct AdminEventBody {
    /// The global position in the store of `service`.
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub acting_user: Option<Uuid>,
    /// The service whose store holds it.
    pub service: String,
    pub payload: serde_json::Value,
}

impl From<AdminEvent> for AdminEventBody {
    fn from(event: AdminEvent) -> Self {
        AdminEventBody {
            position: event.position,
            event_id: event.event_id,
            stream_id: event.stream_id,
            version: event.version,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            acting_user: event.acting_user,
            service: event.service,
            payload: event.payload,
        }
    }
}

/// The event browser's filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilters {
    /// Only this service's events.
    pub service: Option<String>,
    /// Only this stream's events, e.g. `order-0190…`.
    pub stream: Option<String>,
    /// Only events of this type, e.g. `OrderPlaced`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events of this business transaction.
    #[param(value_type = Option<Uuid>)]
    pub correlation_id: Option<String>,
    /// Only events after this global position of `service`'s store (needs `service`).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A filter value that names something: non-empty, short, printable.
fn name_filter(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value.map(str::trim).filter(|value| !value.is_empty())?;
    if value.len() > 200 || value.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must be at most 200 printable characters"));
        return None;
    }
    Some(value.to_owned())
}

/// `name:position,…` → the position per service.
fn parse_cursor(cursor: &str) -> Option<BTreeMap<String, u64>> {
    cursor
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (service, position) = part.rsplit_once(':')?;
            Some((service.to_owned(), position.parse().ok()?))
        })
        .collect()
}

fn format_cursor(positions: &BTreeMap<String, u64>) -> String {
    positions.iter().map(|(service, position)| format!("{service}:{position}")).collect::<Vec<_>>().join(",")
}

/// `GET /api/admin/events`: the event browser, across every service's store.
#[utoipa::path(
    get,
    path = "/api/admin/events",
    tag = "admin",
    security(("bearer" = [])),
    params(EventFilters),
    responses(
        (status = 200, description = "One page of events, oldest first", body = AdminList<AdminEventBody>),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn browse_events(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    Query(filters): Query<EventFilters>,
) -> Result<Json<AdminList<AdminEventBody>>, ApiError> {
    let mut errors = Vec::new();
    let service = name_filter("service", filters.service.as_deref(), &mut errors);
    let stream = name_filter("stream", filters.stream.as_deref(), &mut errors);
    let event_type = name_filter("type", filters.event_type.as_deref(), &mut errors);
    let correlation_id =
        parse_query_parameter::<Uuid>("correlation_id", filters.correlation_id.as_deref(), "a UUID", &mut errors);
    let after = parse_query_parameter::<u64>("after", filters.after.as_deref(), "a whole number", &mut errors);
    let page = super::page_request(filters.limit.as_deref(), filters.cursor.as_deref(), &mut errors);
    if after.is_some() && service.is_none() {
        errors.push(FieldError::new("after", "is a position in one service's store: give `service` too"));
    }
    let cursor = match page.cursor.as_deref() {
        Some(cursor) => match parse_cursor(cursor) {
            Some(positions) => Some(positions),
            None => {
                errors.push(FieldError::new("cursor", "is not a cursor this API gave"));
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let services = match &service {
        Some(service) => vec![service.clone()],
        None => service_names(&state).await?,
    };
    let limit = page.limit;
    let reads = services.iter().map(|name| {
        let start = cursor.as_ref().and_then(|positions| positions.get(name).copied()).or(after).unwrap_or(0);
        let request =
            ReadEvents { after: start, limit, stream: stream.clone(), event_type: event_type.clone(), correlation_id };
        let (state, context, admin) = (&state, &context, &admin);
        async move {
            let read = ask::<EventsRead>(state, context, admin, name, operations::READ_EVENTS, &request).await;
            (name.clone(), start, read)
        }
    });
    let mut answers = Vec::new();
    for (name, start, read) in futures::future::join_all(reads).await {
        match read {
            Ok(read) => answers.push((name, start, read)),
            // One service named by the admin: say what went wrong.
            Err(error) if service.is_some() => return Err(error),
            Err(error) => tracing::warn!(service = %name, %error, "a service did not answer ReadEvents"),
        }
    }
    let mut merged: Vec<AdminEvent> = answers.iter().flat_map(|(_, _, read)| read.events.iter().cloned()).collect();
    merged.sort_by(|left, right| {
        (left.recorded_at, &left.service, left.position).cmp(&(right.recorded_at, &right.service, right.position))
    });
    merged.truncate(limit as usize);
    let mut positions = BTreeMap::new();
    let mut more = false;
    for (name, start, read) in &answers {
        let taken: Vec<&AdminEvent> = merged.iter().filter(|event| &event.service == name).collect();
        let position = if taken.len() == read.events.len() {
            more |= read.scanned_to < read.head;
            read.scanned_to
        } else {
            more = true;
            taken.last().map_or(*start, |event| event.position)
        };
        positions.insert(name.clone(), position);
    }
    let next_cursor = more.then(|| format_cursor(&positions));
    Ok(Json(AdminList { items: merged.into_iter().map(AdminEventBody::from).collect(), next_cursor }))
}

/// What a step of a transaction was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A step forward.
    Step,
    /// Something refused or failed: the saga turns back.
    Failure,
    /// An earlier step undone.
    Compensation,
}

/// The events that mean a step failed.
const FAILURES: [&str; 4] = ["StockReservationFailed", "PaymentDeclined", "OrderRejected", "PaymentFailed"];
/// The events that undo an earlier step.
const COMPENSATIONS: [&str; 4] = ["StockReleased", "PaymentRefunded", "ShipmentCancelled", "OrderCancelled"];

fn step_kind(event_type: &str) -> StepKind {
    if FAILURES.contains(&event_type) {
        StepKind::Failure
    } else if COMPENSATIONS.contains(&event_type) {
        StepKind::Compensation
    } else {
        StepKind::Step
    }
}

/// One event of a transaction, marked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraceStep {
    pub kind: StepKind,
    #[serde(flatten)]
    pub event: AdminEventBody,
}

/// What marks a command in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// A request (command or query) a service handled.
    Command,
}

/// One request of a transaction that a service handled (a command such as `PlaceOrder`,
/// or a query). Commands are kept in memory by the instance that handled them, the most
/// recent only: an older transaction, or one whose service restarted since, shows its
/// events alone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TraceCommand {
    /// Always `command`.
    pub kind: CommandKind,
    /// The operation, e.g. `PlaceOrder`.
    #[serde(rename = "type")]
    pub operation: String,
    /// The service that handled it.
    pub service: String,
    /// The request's id: the `causation_id` of the events it caused.
    pub message_id: Uuid,
    /// The id of what caused it: an event, another request, or the HTTP request.
    pub causation_id: Uuid,
    pub correlation_id: Uuid,
    pub acting_user: Option<Uuid>,
    /// When its service began handling it.
    pub started_at: DateTime<Utc>,
    /// How long its service took to answer, in milliseconds.
    pub duration_ms: f64,
    /// `ok`, or the kind of rejection (`invalid`, `not_found`, `conflict`, …).
    pub outcome: String,
    /// Whether it was rejected: a failed step.
    pub failed: bool,
}

impl From<AdminCommand> for TraceCommand {
    fn from(command: AdminCommand) -> Self {
        TraceCommand {
            kind: CommandKind::Command,
            failed: command.outcome != "ok",
            operation: command.operation,
            service: command.service,
            message_id: command.message_id,
            causation_id: command.causation_id,
            correlation_id: command.correlation_id,
            acting_user: command.acting_user,
            started_at: command.started_at,
            duration_ms: command.duration_micros as f64 / 1000.0,
            outcome: command.outcome,
        }
    }
}

/// An entry of a trace: a command a service handled, or an event it recorded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TraceItem {
    Command(TraceCommand),
    Event(TraceStep),
}

impl TraceItem {
    fn service(&self) -> &str {
        match self {
            TraceItem::Command(command) => &command.service,
            TraceItem::Event(step) => &step.event.service,
        }
    }
}

/// Every event and recent command of one business transaction, across services, in
/// causal order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    pub correlation_id: Uuid,
    /// The services it went through, in the order they first took part.
    pub services: Vec<String>,
    /// Whether a step failed: a failure event, or a rejected command.
    pub failed: bool,
    pub compensated: bool,
    pub items: Vec<TraceItem>,
}

/// An event or a command as the causal order sees it.
enum Traced {
    Event(AdminEvent),
    Command(AdminCommand),
}

impl Traced {
    /// Its own id: what the things it caused name as their `causation_id`.
    fn id(&self) -> Uuid {
        match self {
            Traced::Event(event) => event.event_id,
            Traced::Command(command) => command.message_id,
        }
    }

    fn cause(&self) -> Uuid {
        match self {
            Traced::Event(event) => event.causation_id,
            Traced::Command(command) => command.causation_id,
        }
    }

    /// Time first, then service; a command before an event of the same instant, since
    /// it starts before what it causes is recorded.
    fn sort_key(&self) -> (DateTime<Utc>, &str, u8, u64) {
        match self {
            Traced::Command(command) => (command.started_at, &command.service, 0, 0),
            Traced::Event(event) => (event.recorded_at, &event.service, 1, event.position),
        }
    }
}

/// Orders events and commands by time, but never one before what caused it (clocks of
/// different machines may disagree by a little). Causation is exact: an event a command
/// caused has the command's message id as its `causation_id` (`MessageContext::event_metadata`),
/// and a command sent in reaction to an event has the event's id as its own.
fn causal_order(mut items: Vec<Traced>) -> Vec<Traced> {
    items.sort_by(|left, right| left.sort_key().cmp(&right.sort_key()));
    let ids: HashSet<Uuid> = items.iter().map(Traced::id).collect();
    let mut emitted: HashSet<Uuid> = HashSet::new();
    let mut ordered = Vec::with_capacity(items.len());
    let mut waiting = items;
    while !waiting.is_empty() {
        let ready = waiting.iter().position(|item| {
            item.cause() == item.id() || !ids.contains(&item.cause()) || emitted.contains(&item.cause())
        });
        // A cycle cannot happen with real causation ids; if data says otherwise, keep time order.
        let next = waiting.remove(ready.unwrap_or(0));
        emitted.insert(next.id());
        ordered.push(next);
    }
    ordered
}

/// `GET /api/admin/traces/{correlation_id}`: one business transaction, through every service.
#[utoipa::path(
    get,
    path = "/api/admin/traces/{correlation_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("correlation_id" = Uuid, Path, description = "The transaction: for an order, the correlation id of the request that placed it (its `X-Correlation-Id`)")),
    responses(
        (status = 200, description = "Its events and the commands the services still remember, in causal order, failures and compensations marked", body = Trace),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event or remembered command has this correlation id", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The correlation id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn trace(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    PathId(correlation_id): PathId,
) -> Result<Json<Trace>, ApiError> {
    let names = service_names(&state).await?;
    let reads = names.iter().map(|service| {
        let (state, context, admin) = (&state, &context, &admin);
        async move {
            let mut events = Vec::new();
            let mut after = 0;
            for _ in 0..TRACE_PAGES {
                let request = ReadEvents {
                    after,
                    limit: operations::MAX_EVENTS,
                    correlation_id: Some(correlation_id),
                    ..ReadEvents::default()
                };
                let read = ask::<EventsRead>(state, context, admin, service, operations::READ_EVENTS, &request).await?;
                events.extend(read.events);
                if read.scanned_to >= read.head || read.scanned_to == after || events.len() >= TRACE_LIMIT {
                    break;
                }
                after = read.scanned_to;
            }
            Ok::<_, ApiError>(events)
        }
    });
    let commands = ReadCommands { correlation_id, limit: operations::MAX_COMMANDS };
    let (reads, command_reads) = futures::future::join(
        futures::future::join_all(reads),
        ask_all::<CommandsRead>(&state, &context, &admin, operations::READ_COMMANDS, &commands),
    )
    .await;
    let mut events = Vec::new();
    for (service, read) in names.iter().zip(reads) {
        match read {
            Ok(found) => events.extend(found),
            Err(error) => tracing::warn!(%service, %error, "a service did not answer ReadEvents"),
        }
    }
    events.truncate(TRACE_LIMIT);
    let mut traced: Vec<Traced> = events.into_iter().map(Traced::Event).collect();
    let commands = command_reads?.into_iter().flat_map(|(_, read)| read.commands);
    traced.extend(commands.take(TRACE_LIMIT).map(Traced::Command));
    if traced.is_empty() {
        return Err(ApiError::NotFound(format!("no event or command has the correlation id {correlation_id}")));
    }
    let items: Vec<TraceItem> = causal_order(traced)
        .into_iter()
        .map(|item| match item {
            Traced::Event(event) => {
                TraceItem::Event(TraceStep { kind: step_kind(&event.event_type), event: event.into() })
            }
            Traced::Command(command) => TraceItem::Command(command.into()),
        })
        .collect();
    let mut services: Vec<String> = Vec::new();
    for item in &items {
        if !services.iter().any(|service| service == item.service()) {
            services.push(item.service().to_owned());
        }
    }
    let is = |kind: StepKind| items.iter().any(|item| matches!(item, TraceItem::Event(step) if step.kind == kind));
    let rejected = items.iter().any(|item| matches!(item, TraceItem::Command(command) if command.failed));
    Ok(Json(Trace {
        correlation_id,
        services,
        failed: is(StepKind::Failure) || rejected,
        compensated: is(StepKind::Compensation),
        items,
    }))
}

/// A read model (SPEC §4 "projection").
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Projection)]
pub struct ProjectionBody {
    pub name: String,
    pub service: String,
    /// The position in the service's store of the last event it applied.
    pub position: u64,
    /// Events of the store it has yet to apply.
    pub lag: u64,
    /// `live` or `rebuilding`.
    pub status: String,
    /// While rebuilding: how far the replay has come.
    pub rebuild_position: Option<u64>,
}

impl From<ProjectionStatus> for ProjectionBody {
    fn from(projection: ProjectionStatus) -> Self {
        ProjectionBody {
            name: projection.name,
            service: projection.service,
            position: projection.position,
            lag: projection.lag,
            status: match projection.status {
                ProjectionState::Live => "live",
                ProjectionState::Rebuilding => "rebuilding",
            }
            .to_owned(),
            rebuild_position: projection.rebuild_position,
        }
    }
}

async fn all_projections(
    state: &AppState,
    context: &RequestContext,
    admin: &Admin,
) -> Result<Vec<ProjectionBody>, ApiError> {
    let answers =
        ask_all::<Vec<ProjectionStatus>>(state, context, admin, operations::LIST_PROJECTIONS, &serde_json::json!({}))
            .await?;
    let mut projections: Vec<ProjectionBody> =
        answers.into_iter().flat_map(|(_, projections)| projections).map(ProjectionBody::from).collect();
    projections.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(projections)
}

/// `GET /api/admin/projections`: every service's read models.
#[utoipa::path(
    get,
    path = "/api/admin/projections",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The projections, by name", body = AdminList<ProjectionBody>),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_projections(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
) -> Result<Json<AdminList<ProjectionBody>>, ApiError> {
    Ok(whole_list(all_projections(&state, &context, &admin).await?))
}

/// `POST /api/admin/projections/{name}/rebuild`: replays the service's store into a fresh
/// copy of the projection and swaps it in; the old one answers meanwhile.
#[utoipa::path(
    post,
    path = "/api/admin/projections/{name}/rebuild",
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The projection, e.g. `orders.orders`")),
    responses(
        (status = 202, description = "The rebuild runs; its status shows `rebuilding`, then `live`", body = ProjectionBody),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such projection", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is rebuilding already", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn rebuild_projection(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<ProjectionBody>), ApiError> {
    let mut errors = Vec::new();
    let name = name_filter("name", Some(&name), &mut errors);
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let projections = all_projections(&state, &context, &admin).await?;
    let Some(projection) = projections.iter().find(|projection| projection.name == name) else {
        return Err(ApiError::NotFound(format!("there is no projection named {name:?} (name)")));
    };
    let request = RebuildProjection { name };
    let status: ProjectionStatus =
        ask(&state, &context, &admin, &projection.service, operations::REBUILD_PROJECTION, &request).await?;
    Ok((StatusCode::ACCEPTED, Json(status.into())))
}

/// An event consumer of a service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Consumer)]
pub struct ConsumerBody {
    pub name: String,
    pub service: String,
    /// How far it has read its source's global order.
    pub position: u64,
    pub dead_letters: u64,
}

/// `GET /api/admin/consumers`: every service's consumers, their positions and dead letters.
#[utoipa::path(
    get,
    path = "/api/admin/consumers",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The consumers, by name", body = AdminList<ConsumerBody>),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_consumers(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
) -> Result<Json<AdminList<ConsumerBody>>, ApiError> {
    Ok(whole_list(all_consumers(&state, &context, &admin).await?))
}

async fn all_consumers(
    state: &AppState,
    context: &RequestContext,
    admin: &Admin,
) -> Result<Vec<ConsumerBody>, ApiError> {
    let answers =
        ask_all::<Vec<ConsumerStatus>>(state, context, admin, operations::LIST_CONSUMERS, &serde_json::json!({}))
            .await?;
    let mut consumers: Vec<ConsumerBody> = answers
        .into_iter()
        .flat_map(|(_, consumers)| consumers)
        .map(|consumer| ConsumerBody {
            name: consumer.name,
            service: consumer.service,
            position: consumer.position,
            dead_letters: consumer.dead_letters,
        })
        .collect();
    consumers.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(consumers)
}

/// An event a consumer gave up on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterBody {
    pub id: Uuid,
    pub consumer: String,
    pub service: String,
    /// The last failure.
    pub reason: String,
    pub attempts: u32,
    pub parked_at: DateTime<Utc>,
    pub event: AdminEventBody,
}

/// Which dead letters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParameters {
    /// 1 to 100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// `GET /api/admin/dead-letters`: the oldest dead letters of every service.
#[utoipa::path(
    get,
    path = "/api/admin/dead-letters",
    tag = "admin",
    security(("bearer" = [])),
    params(DeadLetterParameters),
    responses(
        (status = 200, description = "Dead letters, oldest first", body = AdminList<DeadLetterBody>),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The limit is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_dead_letters(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    Query(parameters): Query<DeadLetterParameters>,
) -> Result<Json<AdminList<DeadLetterBody>>, ApiError> {
    let mut errors = Vec::new();
    let page = super::page_request(parameters.limit.as_deref(), None, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let request = ListDeadLetters { limit: page.limit };
    let answers =
        ask_all::<Vec<DeadLetterSummary>>(&state, &context, &admin, operations::LIST_DEAD_LETTERS, &request).await?;
    let mut letters: Vec<DeadLetterBody> = answers
        .into_iter()
        .flat_map(|(_, letters)| letters)
        .map(|letter| DeadLetterBody {
            id: letter.id,
            consumer: letter.consumer,
            service: letter.service,
            reason: letter.reason,
            attempts: letter.attempts,
            parked_at: letter.parked_at,
            event: letter.event.into(),
        })
        .collect();
    letters.sort_by_key(|letter| letter.parked_at);
    letters.truncate(page.limit as usize);
    Ok(whole_list(letters))
}

/// What became of a dead letter.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterOutcomeBody {
    pub id: Uuid,
    /// `retried` (handled; its stream flows again), `still_failing`, or `discarded`.
    pub outcome: String,
}

/// Sends a retry or discard to every service: the one that holds the letter acts, the
/// others answer that they have no such letter.
async fn act_on_dead_letter(
    state: &AppState,
    context: &RequestContext,
    admin: &Admin,
    id: Uuid,
    operation: &str,
) -> Result<Json<DeadLetterOutcomeBody>, ApiError> {
    let names = service_names(state).await?;
    let request = DeadLetterAction { id };
    let asks =
        names.iter().map(|service| ask::<DeadLetterOutcome>(state, context, admin, service, operation, &request));
    let mut failure = None;
    for answer in futures::future::join_all(asks).await {
        match answer {
            Ok(outcome) => return Ok(Json(DeadLetterOutcomeBody { id: outcome.id, outcome: outcome.outcome })),
            Err(ApiError::NotFound(_)) => {}
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or_else(|| ApiError::NotFound(format!("there is no dead letter {id}"))))
}

/// `POST /api/admin/dead-letters/{id}/retry`: hands the dead letter (and those parked
/// behind it in its stream) to its consumer again.
#[utoipa::path(
    post,
    path = "/api/admin/dead-letters/{id}/retry",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The dead letter")),
    responses(
        (status = 200, description = "Retried, or still failing", body = DeadLetterOutcomeBody),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its consumer does not run in the instance asked", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn retry_dead_letter(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    PathId(id): PathId,
) -> Result<Json<DeadLetterOutcomeBody>, ApiError> {
    act_on_dead_letter(&state, &context, &admin, id, operations::RETRY_DEAD_LETTER).await
}

/// `POST /api/admin/dead-letters/{id}/discard`: drops the dead letter unhandled.
#[utoipa::path(
    post,
    path = "/api/admin/dead-letters/{id}/discard",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The dead letter")),
    responses(
        (status = 200, description = "Discarded", body = DeadLetterOutcomeBody),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn discard_dead_letter(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
    PathId(id): PathId,
) -> Result<Json<DeadLetterOutcomeBody>, ApiError> {
    act_on_dead_letter(&state, &context, &admin, id, operations::DISCARD_DEAD_LETTER).await
}

// ---- The dashboard's live stream

/// How often the live stream sends a round of updates.
const LIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The longest a live stream stays open, so that it does not outlive its token; the
/// dashboard reconnects (with a fresh token) when it ends.
const LIVE_STREAM_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How often the live stream sends a comment when a round is slow, so that proxies keep it open.
const LIVE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most new events of one service one round sends; a longer burst follows in the next rounds.
const LIVE_EVENTS_LIMIT: u32 = 100;

/// How many of the latest orders the outcome chart counts.
const LIVE_ORDERS: u32 = 100;

/// The operations the dashboard itself sends each round: left out of commands/s, so
/// that watching the shop does not look like load on it.
const ADMIN_OPERATIONS: [&str; 8] = [
    operations::READ_EVENTS,
    operations::LIST_CONSUMERS,
    operations::LIST_DEAD_LETTERS,
    operations::RETRY_DEAD_LETTER,
    operations::DISCARD_DEAD_LETTER,
    operations::LIST_PROJECTIONS,
    operations::REBUILD_PROJECTION,
    "CheckHealth",
];

/// The latest orders by outcome.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct OrderOutcomes {
    /// Confirmed, shipped or delivered.
    pub confirmed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    /// Not at an outcome yet.
    pub in_progress: u64,
}

/// One sample of the throughput charts, the `throughput` event of the live stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ThroughputSample {
    pub at: DateTime<Utc>,
    /// Each store's last position, by service.
    pub heads: BTreeMap<String, u64>,
    /// Events recorded per second since the previous sample, over the stores that
    /// answered both times; null in a stream's first sample.
    pub events_per_second: Option<f64>,
    /// The same, by service.
    pub events_per_second_by_service: BTreeMap<String, f64>,
    /// Requests answered per second by every instance, the dashboard's own admin
    /// requests left out; null in a stream's first sample.
    pub commands_per_second: Option<f64>,
    /// The latest orders by outcome; null when orders did not answer.
    pub orders: Option<OrderOutcomes>,
}

/// The `events` event of the live stream: what the stores recorded since the previous one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveEvents {
    /// Oldest first.
    pub items: Vec<AdminEventBody>,
}

/// `GET /api/admin/live`: the dashboard's live updates as server-sent events.
///
/// At once and then every second: `services` (as `GET /api/admin/services`), `projections`
/// (as `GET /api/admin/projections`), `consumers` (as `GET /api/admin/consumers`),
/// `throughput` (a `ThroughputSample`) and `events`
/// (the events recorded since the previous round, none in the first). A round a service
/// does not answer leaves it out; a round the bus fails sends `error` (a problem). The
/// stream closes after 10 minutes; reconnect to go on.
#[utoipa::path(
    get,
    path = "/api/admin/live",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Events `services`, `projections`, `consumers`, `throughput` and `events`, \
            every second",
            body = ThroughputSample, content_type = "text/event-stream"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn live(
    State(state): State<AppState>,
    context: RequestContext,
    admin: Admin,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(LIVE_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = LiveFeed {
        state,
        context,
        admin,
        ticks,
        deadline: Instant::now() + LIVE_STREAM_LIMIT,
        queued: VecDeque::new(),
        round: None,
        previous: None,
        positions: BTreeMap::new(),
    };
    // Dropped with the response when the client goes: nothing keeps running.
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(LIVE_KEEP_ALIVE))
}

/// What the previous throughput sample counted.
struct Counts {
    at: Instant,
    heads: BTreeMap<String, u64>,
    /// Requests answered, by instance id (an instance that restarts starts over).
    requests: BTreeMap<String, u64>,
}

/// The state of one live stream.
struct LiveFeed {
    state: AppState,
    context: RequestContext,
    admin: Admin,
    ticks: Interval,
    deadline: Instant,
    queued: VecDeque<Event>,
    /// The instances of the round whose `services` event went out and whose other events are next.
    round: Option<Vec<ServiceInstanceBody>>,
    previous: Option<Counts>,
    /// The last position sent, by service; a service seen for the first time starts at its head.
    positions: BTreeMap<String, u64>,
}

impl LiveFeed {
    /// The next event; None ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            // `services` goes out before the slower rest of its round is asked for.
            if let Some(instances) = self.round.take() {
                self.queue_rest_of_round(instances).await;
                continue;
            }
            if Instant::now() >= self.deadline {
                return None;
            }
            self.ticks.tick().await;
            match service_instances(&self.state).await {
                Ok(instances) => {
                    self.queue("services", &whole_list(instances.clone()).0);
                    self.round = Some(instances);
                }
                Err(error) => {
                    tracing::warn!(%error, "the live stream cannot discover the services");
                    self.queue("error", &error.problem());
                }
            }
        }
    }

    fn queue(&mut self, name: &str, data: &impl Serialize) {
        match Event::default().event(name).json_data(data) {
            Ok(event) => self.queued.push_back(event),
            Err(error) => tracing::error!(%error, name, "cannot encode a live event"),
        }
    }

    async fn queue_rest_of_round(&mut self, instances: Vec<ServiceInstanceBody>) {
        let (state, context, admin) = (&self.state, &self.context, &self.admin);
        let mut names: Vec<String> = instances.iter().map(|instance| instance.name.clone()).collect();
        names.dedup();
        let reads = names.iter().map(|name| {
            // A service new to this stream is asked only for its head.
            let known = self.positions.get(name).copied();
            let request = ReadEvents {
                after: known.unwrap_or(0),
                limit: if known.is_some() { LIVE_EVENTS_LIMIT } else { 1 },
                stream: None,
                event_type: None,
                correlation_id: None,
            };
            async move {
                let read = ask::<EventsRead>(state, context, admin, name, operations::READ_EVENTS, &request).await;
                (name.clone(), known.is_some(), read)
            }
        });
        let orders_request =
            ListOrders { user_id: None, status: None, page: PageRequest { limit: LIVE_ORDERS, cursor: None } };
        let (projections, consumers, reads, orders) = tokio::join!(
            all_projections(state, context, admin),
            all_consumers(state, context, admin),
            futures::future::join_all(reads),
            state.call(&orders_request, context.message(Some(admin.0.user_id))),
        );
        match projections {
            Ok(projections) => self.queue("projections", &whole_list(projections).0),
            Err(error) => tracing::warn!(%error, "the live stream cannot list the projections"),
        }
        match consumers {
            Ok(consumers) => self.queue("consumers", &whole_list(consumers).0),
            Err(error) => tracing::warn!(%error, "the live stream cannot list the consumers"),
        }

        let mut heads = BTreeMap::new();
        let mut events = Vec::new();
        for (name, known, read) in reads {
            match read {
                Ok(read) => {
                    heads.insert(name.clone(), read.head);
                    let position = if known { read.scanned_to } else { read.head };
                    self.positions.insert(name, position);
                    if known {
                        events.extend(read.events);
                    }
                }
                Err(error) => tracing::debug!(service = %name, %error, "a service did not answer the live stream"),
            }
        }
        let requests: BTreeMap<String, u64> = instances
            .iter()
            .map(|instance| {
                let own =
                    ADMIN_OPERATIONS.iter().filter_map(|operation| instance.requests_by_operation.get(*operation));
                (instance.id.clone(), instance.requests.saturating_sub(own.sum()))
            })
            .collect();
        let orders = match orders {
            Ok(page) => Some(order_outcomes(&page.items)),
            Err(error) => {
                tracing::debug!(%error, "orders did not answer the live stream");
                None
            }
        };
        let now = Instant::now();
        let sample = match &self.previous {
            Some(previous) => {
                let seconds = now.duration_since(previous.at).as_secs_f64().max(0.001);
                let by_service: BTreeMap<String, f64> = heads
                    .iter()
                    .filter_map(|(name, head)| {
                        let before = previous.heads.get(name)?;
                        Some((name.clone(), head.saturating_sub(*before) as f64 / seconds))
                    })
                    .collect();
                let answered: u64 = requests
                    .iter()
                    .filter_map(|(id, count)| Some(count.saturating_sub(*previous.requests.get(id)?)))
                    .sum();
                ThroughputSample {
                    at: Utc::now(),
                    heads: heads.clone(),
                    events_per_second: Some(by_service.values().sum()),
                    events_per_second_by_service: by_service,
                    commands_per_second: Some(answered as f64 / seconds),
                    orders,
                }
            }
            None => ThroughputSample {
                at: Utc::now(),
                heads: heads.clone(),
                events_per_second: None,
                events_per_second_by_service: BTreeMap::new(),
                commands_per_second: None,
                orders,
            },
        };
        self.previous = Some(Counts { at: now, heads, requests });
        self.queue("throughput", &sample);

        events.sort_by(|left, right| {
            (left.recorded_at, &left.service, left.position).cmp(&(right.recorded_at, &right.service, right.position))
        });
        self.queue("events", &LiveEvents { items: events.into_iter().map(AdminEventBody::from).collect() });
    }
}

fn order_outcomes(orders: &[Order]) -> OrderOutcomes {
    let mut outcomes = OrderOutcomes::default();
    for order in orders {
        match order.status {
            OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered => outcomes.confirmed += 1,
            OrderStatus::Rejected => outcomes.rejected += 1,
            OrderStatus::Cancelled => outcomes.cancelled += 1,
            OrderStatus::Pending | OrderStatus::StockReserved | OrderStatus::Paid => outcomes.in_progress += 1,
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u128, cause: u128, second: u32, service: &str) -> AdminEvent {
        AdminEvent {
            position: u64::from(second),
            event_id: Uuid::from_u128(id),
            stream_id: "s-1".into(),
            version: 1,
            event_type: "Noted".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp(i64::from(second), 0).unwrap_or_default(),
            correlation_id: Uuid::from_u128(1),
            causation_id: Uuid::from_u128(cause),
            acting_user: None,
            service: service.into(),
            payload: serde_json::json!({}),
        }
    }

    #[test]
    fn an_event_never_precedes_its_cause_even_when_clocks_disagree() {
        // b's clock is behind: its reaction to a is stamped earlier than a.
        let events = vec![event(3, 2, 5, "c"), event(2, 1, 1, "b"), event(1, 99, 2, "a")];
        let order: Vec<u128> = causal_order(events.into_iter().map(Traced::Event).collect())
            .iter()
            .map(|item| item.id().as_u128())
            .collect();
        assert_eq!(order, [1, 2, 3]);
    }

    fn command(id: u128, cause: u128, second: u32, service: &str) -> AdminCommand {
        AdminCommand {
            operation: "Jot".into(),
            service: service.into(),
            message_id: Uuid::from_u128(id),
            causation_id: Uuid::from_u128(cause),
            correlation_id: Uuid::from_u128(1),
            acting_user: None,
            started_at: DateTime::from_timestamp(i64::from(second), 0).unwrap_or_default(),
            duration_micros: 1500,
            outcome: "ok".into(),
        }
    }

    #[test]
    fn a_command_comes_before_the_events_it_caused_and_after_its_own_cause() {
        // The command's service clock is ahead of the event store's that recorded its event;
        // a reaction to that event sends another command.
        let items = vec![
            Traced::Event(event(20, 10, 1, "orders")),
            Traced::Command(command(10, 1, 3, "orders")),
            Traced::Command(command(30, 20, 0, "shipping")),
            Traced::Event(event(40, 30, 2, "shipping")),
        ];
        let order: Vec<u128> = causal_order(items).iter().map(|item| item.id().as_u128()).collect();
        assert_eq!(order, [10, 20, 30, 40]);
        let rejected = TraceCommand::from(AdminCommand { outcome: "conflict".into(), ..command(5, 1, 0, "orders") });
        assert!(rejected.failed);
        assert_eq!(rejected.duration_ms, 1.5);
        let json = serde_json::to_value(TraceItem::Command(rejected)).unwrap();
        assert_eq!((json["kind"].as_str(), json["type"].as_str()), (Some("command"), Some("Jot")));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let positions: BTreeMap<String, u64> = [("orders".to_owned(), 7), ("payments".to_owned(), 0)].into();
        assert_eq!(parse_cursor(&format_cursor(&positions)), Some(positions));
        assert_eq!(parse_cursor("orders"), None);
        assert_eq!(parse_cursor("orders:x"), None);
    }

    #[test]
    fn failures_and_compensations_are_marked() {
        assert_eq!(step_kind("PaymentDeclined"), StepKind::Failure);
        assert_eq!(step_kind("StockReleased"), StepKind::Compensation);
        assert_eq!(step_kind("OrderPlaced"), StepKind::Step);
    }
}
