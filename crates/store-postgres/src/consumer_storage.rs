//! The core's [`ConsumerStorage`] on PostgreSQL: where a service's consumers of other
//! services' events keep their positions and dead letters, in the service's own schema
//! next to its events and its inbox.
//!
//! A dead letter keeps its event whole, as serde writes a [`RecordedEvent`], so that a
//! retry hands the handler exactly what the first delivery did; the columns beside it
//! repeat the parts that are queried.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventshop_core::consumer::{ConsumerStorage, DeadLetter};
use eventshop_core::{Position, RecordedEvent, StoreError, StreamId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tracing::instrument;
use uuid::Uuid;

use crate::decode::{clamped, out_of_range, unsigned};
use crate::error::DataError;
use crate::store::PgEventStore;

/// A query of dead letters: `select_dead_letters!("FROM dead_letters WHERE ...")`
/// selects the columns [`dead_letter`] reads. A macro so that each query is one literal.
macro_rules! select_dead_letters {
    ($rest:literal) => {
        concat!("SELECT id, consumer, event::text AS event, reason, attempts, parked_at ", $rest)
    };
}

#[async_trait]
impl ConsumerStorage for PgEventStore {
    #[instrument(skip_all, fields(consumer))]
    async fn consumer_position(&self, consumer: &str) -> Result<Position, StoreError> {
        let row = sqlx::query("SELECT position FROM consumer_positions WHERE consumer = $1")
            .bind(consumer)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::backend)?;
        match row {
            Some(row) => Ok(Position(unsigned(&row, "position")?)),
            None => Ok(Position::START),
        }
    }

    #[instrument(skip_all, fields(consumer, position = position.0))]
    async fn save_consumer_position(&self, consumer: &str, position: Position) -> Result<(), StoreError> {
        // Overwritten whatever it was: a consumer may be set back to read again.
        sqlx::query(
            "INSERT INTO consumer_positions (consumer, position, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(clamped(position.0))
        .execute(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(())
    }

    #[instrument(skip_all, fields(consumer = %letter.consumer, id = %letter.id, event_id = %letter.event.event_id))]
    async fn park(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let event = serde_json::to_string(&letter.event).map_err(StoreError::backend)?;
        sqlx::query(
            "INSERT INTO dead_letters (id, consumer, stream_id, stream_version, position, event, reason, attempts, \
                                       parked_at) \
             VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9)",
        )
        .bind(letter.id)
        .bind(&letter.consumer)
        .bind(letter.event.stream_id.as_str())
        .bind(clamped(letter.event.stream_version))
        .bind(clamped(letter.event.position.0))
        .bind(event)
        .bind(&letter.reason)
        .bind(attempts_column(letter.attempts))
        .bind(letter.parked_at)
        .execute(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(())
    }

    #[instrument(skip_all, fields(consumer, limit))]
    async fn dead_letters(&self, consumer: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        // Ids are UUID v7 made at parking (uuid's are monotonic within a process), so id
        // order is oldest first, and the primary key serves it.
        let rows = sqlx::query(select_dead_letters!(
            "FROM dead_letters WHERE $1::text IS NULL OR consumer = $1 ORDER BY id LIMIT $2"
        ))
        .bind(consumer)
        .bind(clamped(limit as u64))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter().map(dead_letter).collect()
    }

    #[instrument(skip_all, fields(consumer, stream_id = %stream_id))]
    async fn stream_dead_letters(&self, consumer: &str, stream_id: &StreamId) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(select_dead_letters!(
            "FROM dead_letters WHERE consumer = $1 AND stream_id = $2 ORDER BY stream_version, id"
        ))
        .bind(consumer)
        .bind(stream_id.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter().map(dead_letter).collect()
    }

    #[instrument(skip_all, fields(consumer))]
    async fn blocked_streams(&self, consumer: &str) -> Result<Vec<StreamId>, StoreError> {
        // Byte order, as StreamId's own, whatever the database's collation.
        let streams: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT stream_id COLLATE \"C\" AS stream_id FROM dead_letters WHERE consumer = $1 \
             ORDER BY 1",
        )
        .bind(consumer)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(streams.into_iter().map(StreamId::from_raw).collect())
    }

    #[instrument(skip_all, fields(%id, attempts))]
    async fn update_dead_letter(&self, id: Uuid, reason: &str, attempts: u32) -> Result<(), StoreError> {
        sqlx::query("UPDATE dead_letters SET reason = $2, attempts = $3 WHERE id = $1")
            .bind(id)
            .bind(reason)
            .bind(attempts_column(attempts))
            .execute(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    #[instrument(skip_all, fields(%id))]
    async fn remove_dead_letter(&self, id: Uuid) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(removed.rows_affected() > 0)
    }
}

fn dead_letter(row: &PgRow) -> Result<DeadLetter, StoreError> {
    let id: Uuid = row.try_get("id").map_err(StoreError::backend)?;
    let event: String = row.try_get("event").map_err(StoreError::backend)?;
    let event: RecordedEvent = serde_json::from_str(&event)
        .map_err(|source| StoreError::backend(DataError::DeadLetterEvent { id, source }))?;
    let attempts: i32 = row.try_get("attempts").map_err(StoreError::backend)?;
    let parked_at: DateTime<Utc> = row.try_get("parked_at").map_err(StoreError::backend)?;
    Ok(DeadLetter {
        id,
        consumer: row.try_get("consumer").map_err(StoreError::backend)?,
        event,
        reason: row.try_get("reason").map_err(StoreError::backend)?,
        attempts: u32::try_from(attempts).map_err(|_| out_of_range("attempts", attempts.into()))?,
        parked_at,
    })
}

/// Handler attempts as the `integer` column holds them. No consumer makes two billion
/// attempts; if one did, the count would stop there rather than the letter be lost.
fn attempts_column(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}
