//! The in-process bus: requests are calls between tasks, and events are read by each
//! consumer straight from the producing service's event store.
//!
//! Durability needs no broker: a consumer keeps its position in the source's global
//! order in its own database, and after a restart catches up from there. It saves the
//! position after each batch, so a crash may deliver the last batch again; handlers
//! record the event ids they handled with their effects, so a repeat changes nothing.
//!
//! A consumer handles a batch in lanes, by stream, as the NATS bus does in partitions:
//! each stream's events in order, different streams' at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventshop_core::bus::{
    BusError, EventBus, Reply, Request, RequestBus, RequestHandler, Running, ServiceDefinition, ServiceInstance,
};
use eventshop_core::consumer::{
    ConsumerControl, ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventConsumer, EventHandler,
};
use eventshop_core::stop::StopSignal;
use eventshop_core::{CatchUpSubscription, EventStore, RecordedEvent};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// How often a consumer looks for events appended by another process (e.g. an admin
/// command run against the same files); appends in this process wake it at once.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The embedded bus. Cheap to clone; clones share everything.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    services: RwLock<HashMap<String, Vec<Arc<Instance>>>>,
    sources: RwLock<HashMap<String, Arc<dyn EventStore>>>,
    round_robin: AtomicUsize,
}

struct Instance {
    id: String,
    definition: ServiceDefinition,
    handler: Arc<dyn RequestHandler>,
    started_at: DateTime<Utc>,
    requests: Mutex<BTreeMap<String, u64>>,
    errors: AtomicU64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("id", &self.id).field("service", &self.definition.name).finish_non_exhaustive()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn instances(&self, service: &str) -> Vec<Arc<Instance>> {
        let services = self.inner.services.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        services.get(service).cloned().unwrap_or_default()
    }

    fn source(&self, service: &str) -> Option<Arc<dyn EventStore>> {
        let sources = self.inner.sources.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        sources.get(service).cloned()
    }
}

#[async_trait]
impl RequestBus for InProcessBus {
    async fn request(&self, request: Request, timeout: Duration) -> Result<Reply, BusError> {
        let instances = self.instances(&request.service);
        if instances.is_empty() {
            return Err(BusError::NoResponders { service: request.service });
        }
        let instance = instances[self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % instances.len()].clone();
        if !instance.definition.operations.contains(&request.operation) {
            return Err(BusError::NoResponders { service: format!("{}.{}", request.service, request.operation) });
        }
        let (service, operation) = (request.service.clone(), request.operation.clone());
        // The handler runs in its own task, as it would in another process: a panic there
        // is a failed request, not a crashed caller.
        let handler = instance.handler.clone();
        let answer = tokio::spawn(async move { handler.handle(request).await });
        let reply = match tokio::time::timeout(timeout, answer).await {
            Err(_elapsed) => return Err(BusError::Timeout { service, operation, after: timeout }),
            Ok(Err(join_error)) => Err(eventshop_core::bus::Rejection::new(
                eventshop_core::bus::RejectionKind::Internal,
                format!("{service}.{operation} failed: {join_error}"),
            )),
            Ok(Ok(reply)) => reply,
        };
        *instance.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(operation).or_default() += 1;
        if reply.is_err() {
            instance.errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(reply)
    }

    async fn serve(
        &self,
        definition: ServiceDefinition,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn Running>, BusError> {
        let instance = Arc::new(Instance {
            id: Uuid::now_v7().simple().to_string(),
            definition,
            handler,
            started_at: Utc::now(),
            requests: Mutex::new(BTreeMap::new()),
            errors: AtomicU64::new(0),
        });
        let mut services = self.inner.services.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        services.entry(instance.definition.name.clone()).or_default().push(instance.clone());
        Ok(Box::new(Served { bus: self.clone(), instance }))
    }

    async fn discover(&self) -> Result<Vec<ServiceInstance>, BusError> {
        let services = self.inner.services.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(services
            .values()
            .flatten()
            .map(|instance| ServiceInstance {
                name: instance.definition.name.clone(),
                id: instance.id.clone(),
                version: instance.definition.version.clone(),
                started_at: instance.started_at,
                requests: instance.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
                errors: instance.errors.load(Ordering::Relaxed),
            })
            .collect())
    }
}

/// A served instance; stopping it takes it off the bus.
#[derive(Debug)]
struct Served {
    bus: InProcessBus,
    instance: Arc<Instance>,
}

#[async_trait]
impl Running for Served {
    async fn stop(self: Box<Self>) {
        let mut services = self.bus.inner.services.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(instances) = services.get_mut(&self.instance.definition.name) {
            instances.retain(|instance| !Arc::ptr_eq(instance, &self.instance));
        }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish_events(&self, service: &str, store: Arc<dyn EventStore>) -> Result<Box<dyn Running>, BusError> {
        let mut sources = self.inner.sources.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        sources.insert(service.to_owned(), store);
        Ok(Box::new(Published))
    }

    async fn consume(
        &self,
        definition: ConsumerDefinition,
        handler: Arc<dyn EventHandler>,
        storage: Arc<dyn ConsumerStorage>,
    ) -> Result<ConsumerHandle, BusError> {
        let source = self
            .source(&definition.source)
            .ok_or_else(|| BusError::NoResponders { service: format!("events of {}", definition.source) })?;
        let position = storage.consumer_position(&definition.name).await.map_err(BusError::transport)?;
        crate::admin::register_consumer_name(&storage, &definition.name);
        let mut lanes = Vec::with_capacity(LANES as usize);
        for _ in 0..LANES {
            let lane = EventConsumer::start(definition.clone(), handler.clone(), storage.clone()).await;
            lanes.push(lane.map_err(BusError::transport)?);
        }
        let subscription = CatchUpSubscription::new(source, position).with_poll_interval(POLL_INTERVAL);
        let (controls, control_receiver) = mpsc::channel(16);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_consumer(lanes, subscription, control_receiver, stopped.into()));
        Ok(ConsumerHandle::new(controls, stop, task))
    }
}

/// The in-process bus publishes nothing: consumers read the store itself.
#[derive(Debug)]
struct Published;

#[async_trait]
impl Running for Published {
    async fn stop(self: Box<Self>) {}
}

/// A consumer's lanes: a stream's events all take one lane, in order, and a batch's lanes
/// are handled at the same time. Their appends then reach the consuming store together,
/// and its writer commits them in one transaction instead of one each. The same number as
/// the NATS bus's partitions, so a service sees the same concurrency on either bus.
const LANES: u32 = 16;

async fn run_consumer(
    mut lanes: Vec<EventConsumer>,
    mut subscription: CatchUpSubscription,
    mut controls: mpsc::Receiver<ConsumerControl>,
    mut stopped: StopSignal,
) {
    let definition = lanes[0].definition().clone();
    let storage = lanes[0].storage().clone();
    let name = definition.name.as_str();
    loop {
        let batch = tokio::select! {
            biased;
            () = stopped.stopped() => return,
            Some(control) = controls.recv() => {
                let lane = control.stream_id().partition(LANES) as usize;
                control.apply(&mut lanes[lane]).await;
                continue;
            }
            batch = subscription.next_batch() => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(consumer = %name, %error, "cannot read the source store; retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
        };
        let mut work: Vec<Vec<&RecordedEvent>> = vec![Vec::new(); lanes.len()];
        for event in batch.iter().filter(|event| definition.wants(event)) {
            work[event.stream_id.partition(LANES) as usize].push(event);
        }
        let deliveries = lanes.iter_mut().zip(work).filter(|(_, events)| !events.is_empty()).map(|(lane, events)| {
            let stopped = stopped.clone();
            deliver_in_order(lane, events, stopped)
        });
        let delivered = futures::future::join_all(deliveries).await;
        if delivered.contains(&false) {
            // Stopped midway: the batch is delivered again, deduplicated, after a restart.
            return;
        }
        if let Some(last) = batch.last()
            && let Err(error) = storage.save_consumer_position(name, last.position).await
        {
            // Harmless for correctness: the batch will be delivered again and deduplicated.
            tracing::warn!(consumer = %name, %error, "cannot save the consumer position");
        }
    }
}

/// Delivers one lane's events in order; false if told to stop before the last one.
async fn deliver_in_order(lane: &mut EventConsumer, events: Vec<&RecordedEvent>, mut stopped: StopSignal) -> bool {
    for event in events {
        // The consumer's own storage failed (e.g. it cannot park a dead letter): try the
        // same event again rather than skip it.
        while let Err(error) = lane.deliver(event).await {
            tracing::error!(consumer = %lane.definition().name, %error, "consumer storage failed; retrying the event");
            if stopped.pause(POLL_INTERVAL).await {
                return false;
            }
        }
    }
    true
}
