//! The ways this backend fails, below the [`StoreError`] contract.
//!
//! Callers see these only as the source of [`StoreError::Backend`] or
//! [`ProjectionError::Failed`]; naming them still makes the log say what broke (the file
//! could not be created, a row did not decode) rather than a bare sqlx message.

use std::path::PathBuf;
use std::sync::Arc;

use eventshop_core::{ProjectionError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SqliteStoreError {
    #[error("cannot create the directory of the database file {path}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create a temporary directory for the database")]
    TemporaryDirectory(#[source] std::io::Error),
    #[error("cannot migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("the database refused a statement")]
    Database(#[source] sqlx::Error),
    /// The group commit failed as a whole: every append in it is answered with this error.
    /// If the transaction failed before COMMIT, none was committed; if COMMIT itself failed
    /// (say, the fsync), SQLite may still replay the commit from the WAL after a crash, so
    /// as for any backend error the appends may or may not have happened.
    #[error("the group commit failed")]
    GroupCommit(#[source] Arc<sqlx::Error>),
    /// The writer task is gone, because the store was closed or its runtime shut down.
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// A stored row does not hold what the schema promises.
    #[error("the row at position {position} is corrupt: {reason}")]
    CorruptEvent { position: i64, reason: String },
    /// Any other value the schema rules out, e.g. a negative version.
    #[error("the database holds an impossible value: {0}")]
    Corrupt(String),
    /// A dead letter's event could not be written as JSON.
    #[error("the dead letter {id} cannot be written as JSON")]
    EncodeDeadLetter {
        id: uuid::Uuid,
        #[source]
        source: serde_json::Error,
    },
    /// A version or position beyond SQLite's 64-bit signed integers.
    #[error("{0} does not fit in SQLite's 64-bit integers")]
    OutOfRange(String),
}

impl From<SqliteStoreError> for StoreError {
    fn from(error: SqliteStoreError) -> Self {
        StoreError::backend(error)
    }
}

/// Any other database failure while serving the event store contract.
pub(crate) fn database(error: sqlx::Error) -> StoreError {
    StoreError::backend(SqliteStoreError::Database(error))
}

/// A read-model database failure; `name` is the projection, or what was being done when
/// there is no projection to name.
pub(crate) fn read_model(name: &str, error: impl Into<SqliteStoreError>) -> ProjectionError {
    ProjectionError::failed(name, error.into())
}

impl From<sqlx::Error> for SqliteStoreError {
    fn from(error: sqlx::Error) -> Self {
        SqliteStoreError::Database(error)
    }
}
