//! [`SqliteReadModels`]: projections' tables and checkpoints in the events' database file.
//!
//! A projection writes its tables and moves its checkpoint in one transaction on the
//! store's single writer connection. Sharing that connection with the appends is not a
//! compromise but the point: SQLite has one writer per file anyway, and a second writing
//! connection would only wait for the lock. The price is that a read-model transaction
//! holds up appends while it is open, so projections should keep their batches short and
//! must never append to the event store while holding a transaction (that append would
//! wait for the connection the projection holds, until the writer's acquire timeout).

use async_trait::async_trait;
use eventshop_core::{Position, ProjectionError, ReadModelStore};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::{SqliteStoreError, read_model};
use crate::rows::{self, to_sql_integer};

/// The transaction a projection on [`SqliteReadModels`] writes through.
pub type ReadModelTransaction = Transaction<'static, Sqlite>;

/// The [`ReadModelStore`] of a [`SqliteEventStore`](crate::SqliteEventStore), from
/// [`SqliteEventStore::read_models`](crate::SqliteEventStore::read_models).
#[derive(Debug, Clone)]
pub struct SqliteReadModels {
    writer_pool: SqlitePool,
    reader_pool: SqlitePool,
}

impl SqliteReadModels {
    pub(crate) fn new(writer_pool: SqlitePool, reader_pool: SqlitePool) -> Self {
        SqliteReadModels { writer_pool, reader_pool }
    }

    /// Read-only connections, for queries against the read models.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader_pool
    }
}

#[async_trait]
impl ReadModelStore for SqliteReadModels {
    type Tx = ReadModelTransaction;

    async fn begin(&self) -> Result<Self::Tx, ProjectionError> {
        // IMMEDIATE takes the write lock at once rather than at the first write, so a
        // transaction that reads before writing cannot fail on a lock upgrade when another
        // process writes the file. Within this process the one-connection writer pool
        // already serialises it with the appends.
        self.writer_pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|error| read_model("read-model transaction", error))
    }

    async fn commit(&self, transaction: Self::Tx) -> Result<(), ProjectionError> {
        transaction.commit().await.map_err(|error| read_model("read-model transaction", error))
    }

    #[tracing::instrument(skip_all, fields(projection = name))]
    async fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        let position: Option<i64> = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader_pool)
            .await
            .map_err(|error| read_model(name, error))?;
        let position = position.unwrap_or(0);
        let position = u64::try_from(position)
            .map_err(|_| read_model(name, SqliteStoreError::Corrupt(format!("checkpoint at {position}"))))?;
        Ok(Position(position))
    }

    #[tracing::instrument(skip_all, fields(projection = name, from = from.0, to = to.0))]
    async fn move_checkpoint(
        &self,
        transaction: &mut Self::Tx,
        name: &str,
        from: Position,
        to: Position,
    ) -> Result<(), ProjectionError> {
        let out_of_range =
            |position: Position| read_model(name, SqliteStoreError::OutOfRange(format!("position {position}")));
        let from_integer = to_sql_integer(from.0).ok_or_else(|| out_of_range(from))?;
        let to_integer = to_sql_integer(to.0).ok_or_else(|| out_of_range(to))?;
        let updated_at = rows::timestamp(chrono::Utc::now());

        // Compare-and-set: only a checkpoint still at `from` moves.
        let moved = sqlx::query(
            "UPDATE projection_checkpoints SET position = ?, updated_at = ? WHERE name = ? AND position = ?",
        )
        .bind(to_integer)
        .bind(&updated_at)
        .bind(name)
        .bind(from_integer)
        .execute(&mut **transaction)
        .await
        .map_err(|error| read_model(name, error))?
        .rows_affected();
        if moved == 1 {
            return Ok(());
        }
        // A projection that never ran has no row: it is at the start.
        if from == Position::START {
            let inserted = sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(to_integer)
            .bind(&updated_at)
            .execute(&mut **transaction)
            .await
            .map_err(|error| read_model(name, error))?
            .rows_affected();
            if inserted == 1 {
                return Ok(());
            }
        }
        Err(ProjectionError::CheckpointMoved { name: name.to_owned() })
    }
}
