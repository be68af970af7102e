//! The event-sourcing core of eventshop.
//!
//! Everything a service needs to be event-sourced, and nothing that touches a disk, a
//! socket or a clock other than tokio's timers: event envelopes, the aggregate contract
//! (`decide` / `apply`), the [`EventStore`] trait that the storage backends implement,
//! a command handler with optimistic-concurrency retries, snapshots, upcasting,
//! catch-up subscriptions, checkpointed projections and a given/when/then test harness.
//!
//! Backends live in their own crates (`store-sqlite`, `store-postgres`) and are checked
//! against one conformance suite (`store-conformance`). [`InMemoryEventStore`] is the
//! reference implementation used by the core's own tests.

pub mod aggregate;
pub mod bus;
pub mod codec;
pub mod command;
pub mod consumer;
pub mod envelope;
pub mod memory;
pub mod projection;
pub mod settings;
pub mod snapshot;
pub mod stop;
pub mod store;
pub mod subscription;
pub mod testing;
pub mod upcast;

pub use aggregate::Aggregate;
pub use codec::{CodecError, DomainEvent, EventCodec};
pub use command::{CommandError, CommandHandler, Executed, Loaded};
pub use envelope::{EventId, Metadata, NewEvent, Payload, Position, RecordedEvent, StreamId, Version};
pub use memory::InMemoryEventStore;
pub use projection::{Projection, ProjectionError, ProjectionRunner, ReadModelStore};
pub use snapshot::{Snapshot, SnapshotPolicy};
pub use store::{AppendResult, EventStore, ExpectedVersion, StoreError, StreamAppend};
pub use subscription::CatchUpSubscription;
pub use upcast::Upcasters;
