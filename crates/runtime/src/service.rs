//! What a service is given to run, and how it answers requests.
//!
//! A service crate exposes one `start(ServiceContext)` function: it serves its operations
//! on the bus through an [`OperationRouter`], starts its consumers and live views, and
//! returns a [`RunningService`] that stops them all.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use contracts::admin;
use eventshop_core::bus::{
    Bus, BusError, CallError, MessageContext, Operation, Rejection, RejectionKind, Reply, Request, RequestHandler,
    Running, ServiceDefinition, reply_body, request_body,
};
use eventshop_core::consumer::{ConsumerHandle, ConsumerStorage};
use eventshop_core::settings::Settings;
use eventshop_core::{CommandError, EventStore, StoreError};
use futures::future::BoxFuture;

use crate::admin::{CommandLog, command_outcome};

/// Everything a service instance needs: its own store, the bus, its consumers' storage
/// and the live settings. Which backends these are, it does not know.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<dyn Bus>,
    pub consumers: Arc<dyn ConsumerStorage>,
    pub settings: Arc<dyn Settings>,
}

type BoxedHandler = Box<dyn Fn(Request) -> BoxFuture<'static, Reply> + Send + Sync>;

/// A service's operations by name, each decoded to its typed request.
///
/// It remembers the requests of the service's own operations (not the admin ones, not
/// `CheckHealth`) that it handled recently, in a bounded in-memory [`CommandLog`] of this
/// instance, which `ReadCommands` answers from: the commands of a transaction trace.
#[derive(Default)]
pub struct OperationRouter {
    handlers: HashMap<&'static str, BoxedHandler>,
    /// The operations whose requests go into `commands`: those added with `route`.
    recorded: HashSet<&'static str>,
    commands: Arc<CommandLog>,
}

impl std::fmt::Debug for OperationRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationRouter").field("operations", &self.operations()).finish()
    }
}

impl OperationRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers operation `O` with `handler`, given the decoded request and its context.
    pub fn route<O, F, Fut>(mut self, handler: F) -> Self
    where
        O: Operation + 'static,
        F: Fn(O, MessageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O::Reply, Rejection>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let boxed: BoxedHandler = Box::new(move |request: Request| {
            let handler = handler.clone();
            Box::pin(async move {
                let operation: O = request_body(&request)?;
                let reply = handler(operation, request.context).await?;
                reply_body(&reply)
            })
        });
        self.handlers.insert(O::NAME, boxed);
        self.recorded.insert(O::NAME);
        self
    }

    /// Also answers [`CHECK_HEALTH`](eventshop_core::bus::CHECK_HEALTH): whether this instance can read its own store. The
    /// gateway's readiness asks every service (SPEC §4: "stores and bus reachable").
    /// It also answers the admin operations on the service's events and live views
    /// (`contracts::admin`), which need only the store.
    pub fn with_health_check(mut self, store: Arc<dyn EventStore>) -> Self {
        let health = store.clone();
        let boxed: BoxedHandler = Box::new(move |_request: Request| {
            let store = health.clone();
            Box::pin(async move {
                match store.head_position().await {
                    Ok(head) => reply_body(&serde_json::json!({ "store": "ok", "head_position": head.0 })),
                    Err(error) => Err(internal(error)),
                }
            })
        });
        self.handlers.insert(eventshop_core::bus::CHECK_HEALTH, boxed);
        let events = store.clone();
        self =
            self.admin_route(admin::READ_EVENTS, move |request: Request| {
                let store = events.clone();
                async move {
                    reply_body(&crate::admin::read_events(&request.service, &store, request_body(&request)?).await?)
                }
            });
        let commands = self.commands.clone();
        self = self.admin_route(admin::READ_COMMANDS, move |request: Request| {
            let commands = commands.clone();
            async move { reply_body(&commands.read(request_body(&request)?)?) }
        });
        let projections = store.clone();
        self = self.admin_route(admin::LIST_PROJECTIONS, move |request: Request| {
            let store = projections.clone();
            async move { reply_body(&crate::admin::list_projections(&request.service, &store).await?) }
        });
        self.admin_route(admin::REBUILD_PROJECTION, move |request: Request| {
            let store = store.clone();
            async move {
                let rebuild = request_body(&request)?;
                reply_body(&crate::admin::rebuild_projection(&request.service, &store, rebuild).await?)
            }
        })
    }

    /// Everything [`with_health_check`](Self::with_health_check) answers, and the admin
    /// operations on the service's consumers and dead letters (`contracts::admin`).
    pub fn with_admin(self, context: &ServiceContext) -> Self {
        let storage = context.consumers.clone();
        let consumers = storage.clone();
        let letters = storage.clone();
        let retry = storage.clone();
        self.with_health_check(context.store.clone())
            .admin_route(admin::LIST_CONSUMERS, move |request: Request| {
                let storage = consumers.clone();
                async move { reply_body(&crate::admin::list_consumers(&request.service, &storage).await?) }
            })
            .admin_route(admin::LIST_DEAD_LETTERS, move |request: Request| {
                let storage = letters.clone();
                async move {
                    let list = request_body(&request)?;
                    reply_body(&crate::admin::list_dead_letters(&request.service, &storage, list).await?)
                }
            })
            .admin_route(admin::RETRY_DEAD_LETTER, move |request: Request| {
                let storage = retry.clone();
                async move { reply_body(&crate::admin::retry_dead_letter(&storage, request_body(&request)?).await?) }
            })
            .admin_route(admin::DISCARD_DEAD_LETTER, move |request: Request| {
                let storage = storage.clone();
                async move { reply_body(&crate::admin::discard_dead_letter(&storage, request_body(&request)?).await?) }
            })
    }

    /// Answers an operation that every service has, by name, with the raw request: its
    /// `service` names the service the admin asked.
    fn admin_route<F, Fut>(mut self, name: &'static str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let boxed: BoxedHandler = Box::new(move |request: Request| {
            let handler = handler.clone();
            Box::pin(async move { handler(request).await })
        });
        self.handlers.insert(name, boxed);
        self
    }

    /// The operation names, sorted.
    pub fn operations(&self) -> Vec<String> {
        let mut names: Vec<String> = self.handlers.keys().map(|name| (*name).to_owned()).collect();
        names.sort();
        names
    }

    /// Serves these operations on `bus` as `service`.
    pub async fn serve(self, bus: &dyn Bus, service: &str, description: &str) -> Result<Box<dyn Running>, StartError> {
        let definition = ServiceDefinition {
            name: service.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: description.to_owned(),
            operations: self.operations(),
        };
        Ok(bus.serve(definition, Arc::new(self)).await?)
    }
}

#[async_trait]
impl RequestHandler for OperationRouter {
    async fn handle(&self, request: Request) -> Reply {
        let Some(handler) = self.handlers.get(request.operation.as_str()) else {
            return Err(Rejection::new(
                RejectionKind::NotFound,
                format!("{} has no operation {}", request.service, request.operation),
            ));
        };
        if !self.recorded.contains(request.operation.as_str()) {
            return handler(request).await;
        }
        let (operation, service, context) =
            (request.operation.clone(), request.service.clone(), request.context.clone());
        let started_at = chrono::Utc::now();
        let clock = Instant::now();
        let reply = handler(request).await;
        self.commands.record(admin::AdminCommand {
            operation,
            service,
            message_id: context.message_id,
            causation_id: context.causation_id,
            correlation_id: context.correlation_id,
            acting_user: context.acting_user,
            started_at,
            duration_micros: u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX),
            outcome: command_outcome(&reply),
        });
        reply
    }
}

/// A service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bus(#[from] eventshop_core::bus::BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started service: what it serves, consumes and keeps up to date, stopped together.
#[derive(Debug, Default)]
pub struct RunningService {
    servers: Vec<Box<dyn Running>>,
    consumers: Vec<Arc<ConsumerHandle>>,
    tasks: Vec<Box<dyn Running>>,
}

impl RunningService {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_server(mut self, server: Box<dyn Running>) -> Self {
        self.servers.push(server);
        self
    }

    /// Also registers the consumer for the admin's dead-letter retries and discards.
    pub fn with_consumer(mut self, consumer: ConsumerHandle) -> Self {
        let consumer = Arc::new(consumer);
        crate::admin::register_consumer(&consumer);
        self.consumers.push(consumer);
        self
    }

    pub fn with_task(mut self, task: Box<dyn Running>) -> Self {
        self.tasks.push(task);
        self
    }

    pub fn with_consumers(self, consumers: impl IntoIterator<Item = ConsumerHandle>) -> Self {
        consumers.into_iter().fold(self, Self::with_consumer)
    }

    /// Serves `router` as `service` beside what already runs. If it cannot, stops what
    /// runs and says why, so that a failed start leaves nothing behind.
    pub async fn serving(
        mut self,
        router: OperationRouter,
        bus: &dyn Bus,
        service: &str,
        description: &str,
    ) -> Result<Self, StartError> {
        match router.serve(bus, service, description).await {
            Ok(server) => {
                self.servers.push(server);
                Ok(self)
            }
            Err(error) => {
                self.stop().await;
                Err(error)
            }
        }
    }

    /// Stops taking requests, then lets consumers finish the event in hand, then stops
    /// the background tasks.
    pub async fn stop(self) {
        for server in self.servers {
            server.stop().await;
        }
        for consumer in self.consumers {
            stop_consumer(consumer).await;
        }
        for task in self.tasks {
            task.stop().await;
        }
    }
}

/// Stops a consumer once no admin request holds it (the registry keeps only weak ones).
async fn stop_consumer(mut consumer: Arc<ConsumerHandle>) {
    for _ in 0..500 {
        match Arc::try_unwrap(consumer) {
            Ok(handle) => return handle.stop().await,
            Err(shared) => consumer = shared,
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::warn!("a consumer is still busy with an admin request; leaving it to stop with the process");
}

/// The rejection for a failed command: conflicts the handler could not resolve by
/// retrying are 409; a store or codec failure is internal, with the cause logged once.
pub fn command_rejection<E: std::error::Error + 'static>(
    error: CommandError<E>,
    domain: impl FnOnce(E) -> Rejection,
) -> Rejection {
    match error {
        CommandError::Domain(error) => domain(error),
        CommandError::Conflict { stream_id, attempts } => Rejection::new(
            RejectionKind::Conflict,
            format!("{stream_id} kept changing; gave up after {attempts} attempts"),
        ),
        other => internal(other),
    }
}

/// The answer to a request this service made of another while handling its own: the
/// other's refusal as it is; no answer at all (a timeout, no instance running) as
/// [`Unavailable`](RejectionKind::Unavailable), which the caller may retry.
pub fn forwarded(error: CallError) -> Rejection {
    match error {
        CallError::Rejected(rejection) => rejection,
        CallError::Bus(error @ (BusError::Timeout { .. } | BusError::NoResponders { .. })) => {
            tracing::warn!(%error, "a service this one needs did not answer");
            Rejection::new(RejectionKind::Unavailable, error.to_string())
        }
        other => internal(other),
    }
}

/// An internal failure: logged here with its causes, opaque to the caller.
pub fn internal(error: impl std::error::Error) -> Rejection {
    tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "request failed");
    Rejection::new(RejectionKind::Internal, "internal error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventshop_core::bus::{CHECK_HEALTH, MessageContext};
    use eventshop_core::{ExpectedVersion, InMemoryEventStore, Metadata, NewEvent, Payload, StreamId};

    #[test]
    fn a_service_that_does_not_answer_is_unavailable_not_an_internal_error() {
        let timeout = BusError::Timeout {
            service: "orders".into(),
            operation: "ShipOrder".into(),
            after: std::time::Duration::from_secs(5),
        };
        assert_eq!(forwarded(CallError::Bus(timeout)).kind, RejectionKind::Unavailable);
        let absent = BusError::NoResponders { service: "orders".into() };
        assert_eq!(forwarded(CallError::Bus(absent)).kind, RejectionKind::Unavailable);
        let refused = Rejection::new(RejectionKind::Conflict, "already dispatched");
        assert_eq!(forwarded(CallError::Rejected(refused.clone())), refused, "a refusal is passed on as it is");
    }

    #[tokio::test]
    async fn a_health_check_reads_the_store() {
        let store = Arc::new(InMemoryEventStore::new());
        let event =
            NewEvent::new("Noted", 1, Payload::from_json_unchecked("{}".into()), Metadata::new_transaction(None));
        store.append(&StreamId::new("note", 1), ExpectedVersion::Any, vec![event]).await.unwrap();
        let router = OperationRouter::new().with_health_check(store);
        assert!(router.operations().contains(&CHECK_HEALTH.to_owned()));
        let request = Request {
            service: "notes".into(),
            operation: CHECK_HEALTH.into(),
            context: MessageContext::new_transaction(None),
            body: Payload::from_json_unchecked("{}".into()),
        };
        let reply = router.handle(request).await.unwrap().to_value().unwrap();
        assert_eq!(reply, serde_json::json!({"store": "ok", "head_position": 1}));
    }
}
