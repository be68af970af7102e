//! The projection the rebuild benches replay: an event log that writes one row per event
//! (position, stream, type), the smallest read model that still does a write per event.
//! One implementation per backend, because each writes through its backend's transaction.
//!
//! The baselines' rebuild (`RawEvents::rebuild` of each backend) writes the same rows and
//! a checkpoint per page, by hand.

use async_trait::async_trait;
use eventshop_core::{Projection, ProjectionError, RecordedEvent};
use sqlx::{Postgres, Sqlite, Transaction};

pub const NAME: &str = "bench_event_log";

pub const POSTGRES_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS bench_event_log (
    position    bigint PRIMARY KEY,
    stream_id   text   NOT NULL,
    event_type  text   NOT NULL
)";

pub const SQLITE_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS bench_event_log (
    position    INTEGER PRIMARY KEY,
    stream_id   TEXT    NOT NULL,
    event_type  TEXT    NOT NULL
) STRICT";

fn failed(error: sqlx::Error) -> ProjectionError {
    ProjectionError::failed(NAME, error)
}

/// The event log on PostgreSQL, for [`store_postgres::PgReadModels`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresEventLog;

#[async_trait]
impl Projection for PostgresEventLog {
    type Tx = Transaction<'static, Postgres>;

    fn name(&self) -> &str {
        NAME
    }

    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        sqlx::query("INSERT INTO bench_event_log (position, stream_id, event_type) VALUES ($1, $2, $3)")
            .bind(event.position.0 as i64)
            .bind(event.stream_id.as_str())
            .bind(&event.event_type)
            .execute(&mut **tx)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        sqlx::query("TRUNCATE bench_event_log").execute(&mut **tx).await.map_err(failed)?;
        Ok(())
    }
}

/// The event log on SQLite, for [`store_sqlite::SqliteReadModels`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteEventLog;

#[async_trait]
impl Projection for SqliteEventLog {
    type Tx = Transaction<'static, Sqlite>;

    fn name(&self) -> &str {
        NAME
    }

    async fn handle(&self, tx: &mut Self::Tx, event: &RecordedEvent) -> Result<(), ProjectionError> {
        sqlx::query("INSERT INTO bench_event_log (position, stream_id, event_type) VALUES (?, ?, ?)")
            .bind(event.position.0 as i64)
            .bind(event.stream_id.as_str())
            .bind(&event.event_type)
            .execute(&mut **tx)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn reset(&self, tx: &mut Self::Tx) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM bench_event_log").execute(&mut **tx).await.map_err(failed)?;
        Ok(())
    }
}
