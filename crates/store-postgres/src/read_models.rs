//! [`PgReadModels`]: the core's [`ReadModelStore`] on PostgreSQL. Projections write their
//! read models through a transaction that also moves their checkpoint, so a read model
//! and its position can never disagree.

use async_trait::async_trait;
use eventshop_core::{Position, ProjectionError, ReadModelStore};
use sqlx::postgres::{PgPool, Postgres};
use sqlx::{Row, Transaction};
use tracing::instrument;

use crate::connect::{PoolSettings, connect_schema};
use crate::decode::clamped;
use crate::error::{ConnectError, DataError};

/// What failures that belong to no one projection (beginning or committing a
/// transaction) are reported as.
const READ_MODELS: &str = "read models";

/// Read models and projection checkpoints in one PostgreSQL schema.
#[derive(Debug, Clone)]
pub struct PgReadModels {
    pool: PgPool,
}

impl PgReadModels {
    /// Connects to `schema`, creating and migrating it if needed.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, schema, &PoolSettings::default()).await
    }

    pub async fn connect_with(url: &str, schema: &str, settings: &PoolSettings) -> Result<Self, ConnectError> {
        Ok(Self::from_pool(connect_schema(url, schema, settings).await?))
    }

    /// Read models on a pool opened by [`connect_schema`].
    pub fn from_pool(pool: PgPool) -> Self {
        PgReadModels { pool }
    }

    /// The pool, for queries of the read models outside a projection.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl ReadModelStore for PgReadModels {
    type Tx = Transaction<'static, Postgres>;

    async fn begin(&self) -> Result<Self::Tx, ProjectionError> {
        self.pool.begin().await.map_err(|error| ProjectionError::failed(READ_MODELS, error))
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), ProjectionError> {
        tx.commit().await.map_err(|error| ProjectionError::failed(READ_MODELS, error))
    }

    #[instrument(skip_all, fields(projection = name))]
    async fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        let row = sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| ProjectionError::failed(name, error))?;
        let Some(row) = row else {
            return Ok(Position::START);
        };
        let position: i64 = row.try_get("position").map_err(|error| ProjectionError::failed(name, error))?;
        u64::try_from(position).map(Position).map_err(|_| {
            ProjectionError::failed(
                name,
                DataError::OutOfRange { column: "projection_checkpoints.position", value: position },
            )
        })
    }

    /// One conditional statement, so that of two runners that read the same checkpoint,
    /// the second blocks on the first's row lock and then finds the checkpoint moved:
    /// under READ COMMITTED, PostgreSQL re-checks the condition against the row the first
    /// committed. A checkpoint at the start has no row yet, hence the upsert.
    #[instrument(skip_all, fields(projection = name, from = from.0, to = to.0))]
    async fn move_checkpoint(
        &self,
        tx: &mut Self::Tx,
        name: &str,
        from: Position,
        to: Position,
    ) -> Result<(), ProjectionError> {
        let statement = if from == Position::START {
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $3, now()) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                  WHERE projection_checkpoints.position = $2",
            )
        } else {
            sqlx::query(
                "UPDATE projection_checkpoints SET position = $3, updated_at = now() \
                  WHERE name = $1 AND position = $2",
            )
        };
        let moved = statement
            .bind(name)
            .bind(clamped(from.0))
            .bind(clamped(to.0))
            .execute(&mut **tx)
            .await
            .map_err(|error| ProjectionError::failed(name, error))?;
        if moved.rows_affected() == 1 {
            Ok(())
        } else {
            Err(ProjectionError::CheckpointMoved { name: name.to_owned() })
        }
    }
}
