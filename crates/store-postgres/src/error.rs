//! The errors this crate adds to the core's: failing to reach or prepare a schema, and
//! rows the database should never have returned. Both travel inside the core's error
//! types (`StoreError::Backend`, `ProjectionError::Failed`) at the trait boundary.

use eventshop_core::StoreError;
use sqlx::migrate::MigrateError;

use crate::connect::SchemaName;

/// Connecting a service to its schema failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The schema name is not a plain lowercase SQL identifier.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchemaName { name: String, reason: &'static str },
    /// The database URL could not be parsed. It is not repeated here: it may hold a password.
    #[error("invalid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    #[error("could not create schema {schema}")]
    CreateSchema {
        schema: SchemaName,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not migrate schema {schema}")]
    Migrate {
        schema: SchemaName,
        #[source]
        source: MigrateError,
    },
}

impl From<ConnectError> for StoreError {
    fn from(error: ConnectError) -> Self {
        StoreError::backend(error)
    }
}

/// The database returned something the schema rules out: a broken invariant, not a
/// condition to handle.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("column {column} holds {value}, outside the range of its Rust type")]
    OutOfRange { column: &'static str, value: i64 },
    #[error(
        "append_events returned {versions} versions for {streams} streams and {positions} positions for {events} events"
    )]
    AppendResultShape { versions: usize, streams: usize, positions: usize, events: usize },
    #[error("dead letter {id} holds an event that does not decode")]
    DeadLetterEvent {
        id: uuid::Uuid,
        #[source]
        source: serde_json::Error,
    },
}
