//! The PostgreSQL backend of eventshop: [`PgEventStore`] implements the core's
//! [`EventStore`](eventshop_core::EventStore), inbox included, and its
//! [`ConsumerStorage`](eventshop_core::consumer::ConsumerStorage); [`PgReadModels`]
//! implements its [`ReadModelStore`](eventshop_core::ReadModelStore).
//!
//! Each service keeps everything in a schema of its own, named once in the pool's
//! `search_path` ([`connect_schema`]); no SQL in this crate names a schema. One set of
//! migrations (`migrations/`, applied on connect) makes the schema's tables, triggers and
//! append functions, for the events, the consumers' inbox, positions and dead letters, and
//! the projection checkpoints alike, so the event store and the read models can share a
//! schema and a pool or live apart.
//!
//! The two hard parts, each in its own module:
//! - appending is one statement, a PL/pgSQL function that checks the expected versions and
//!   inserts the events in one insert (`append`); an append that records a consumer's
//!   handling of an event writes its inbox row in the same statement;
//! - reading the global order is gap-safe although transactions commit out of position
//!   order ([`global_order`]).

mod append;
mod connect;
mod consumer_storage;
mod decode;
mod error;
pub mod global_order;
mod read_models;
mod store;
pub mod testing;

pub use connect::{DEFAULT_POOL_SIZE, PoolSettings, SchemaName, connect_schema};
pub use error::{ConnectError, DataError};
pub use global_order::GapWait;
pub use read_models::PgReadModels;
pub use store::PgEventStore;
