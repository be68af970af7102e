//! The eventshop bus on NATS JetStream, for the distributed deployment (SPEC §8).
//!
//! - Requests (`requests`): each service is a NATS service (the service API of
//!   async-nats), one endpoint per operation, in a queue group per service, so N
//!   instances share the load and `$SRV.PING|INFO|STATS` discovers them.
//! - Events (`relay`, `consumers`): the event store is the outbox. A relay publishes
//!   each service's events to a JetStream stream with `Nats-Msg-Id` = event id. Consumers
//!   are durable, partitioned by stream id, with one message in flight per partition, so
//!   a stream's events are handled in order whatever the number of instances.
//! - Live configuration (`config`): a key-value bucket that running instances watch.
//!
//! Everything lives under a *namespace* (default `eventshop`), so that deployments and
//! tests can share a server without seeing each other.

pub mod config;
pub mod consumers;
pub mod discovery;
pub mod relay;
pub mod requests;
pub mod subjects;
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::EventStore;
use eventshop_core::bus::{
    BusError, EventBus, Reply, Request, RequestBus, RequestHandler, Running, ServiceDefinition, ServiceInstance,
};
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler};

pub use subjects::Namespace;

/// A connection to NATS, shared by everything a process runs on the bus.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    namespace: Namespace,
}

impl NatsBus {
    /// Connects to the NATS server at `url` (e.g. `nats://127.0.0.1:4222`).
    pub async fn connect(url: &str, namespace: Namespace) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("eventshop ({})", namespace.as_str()))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(BusError::transport)?;
        Ok(Self::from_client(client, namespace))
    }

    pub fn from_client(client: async_nats::Client, namespace: Namespace) -> Self {
        let jetstream = async_nats::jetstream::new(client.clone());
        NatsBus { client, jetstream, namespace }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }
}

#[async_trait]
impl RequestBus for NatsBus {
    async fn request(&self, request: Request, timeout: Duration) -> Result<Reply, BusError> {
        requests::request(self, request, timeout).await
    }

    async fn serve(
        &self,
        definition: ServiceDefinition,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Box<dyn Running>, BusError> {
        requests::serve(self, definition, handler).await
    }

    async fn discover(&self) -> Result<Vec<ServiceInstance>, BusError> {
        discovery::discover(self).await
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish_events(&self, service: &str, store: Arc<dyn EventStore>) -> Result<Box<dyn Running>, BusError> {
        relay::start(self, service, store).await
    }

    async fn consume(
        &self,
        definition: ConsumerDefinition,
        handler: Arc<dyn EventHandler>,
        storage: Arc<dyn ConsumerStorage>,
    ) -> Result<ConsumerHandle, BusError> {
        consumers::start(self, definition, handler, storage).await
    }
}
