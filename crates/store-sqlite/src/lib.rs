//! The embedded eventshop event store: one SQLite database file per service.
//!
//! [`SqliteEventStore`] implements [`eventshop_core::EventStore`] and
//! [`eventshop_core::consumer::ConsumerStorage`], and [`SqliteReadModels`] implements
//! [`eventshop_core::ReadModelStore`] on the same file, so a projection living in the same
//! service commits its tables and checkpoint together, and a consumer records the event it
//! handled in the same transaction as the events its handling appended (the inbox).
//!
//! The shape follows from SQLite having one writer at a time:
//! - one writer connection, owned for appends by a task that commits whatever appends have
//!   queued up in one transaction (group commit: one fsync for many appends), each append
//!   in its own savepoint so a refused one fails alone (`writer.rs`);
//! - a pool of read-only connections for reads, which WAL lets run beside the writer;
//! - the database itself refuses to update or delete an event (triggers), and the schema
//!   lives in `migrations/`, applied on open.
//!
//! Durability is chosen in [`SqliteStoreOptions`]: `synchronous = FULL` by default, so an
//! acknowledged append survives even an operating system crash.

mod consumers;
mod error;
mod options;
mod read_models;
mod recent;
mod rows;
mod store;
mod writer;

pub use error::SqliteStoreError;
pub use options::{SqliteStoreOptions, Synchronous};
pub use read_models::{ReadModelTransaction, SqliteReadModels};
pub use store::SqliteEventStore;
pub use writer::WriterStats;
