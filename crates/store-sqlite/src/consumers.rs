//! [`ConsumerStorage`] for [`SqliteEventStore`]: where the service's consumers of other
//! services' events keep their positions and dead letters, in the service's own file.
//!
//! These are not appends, so they take the writer connection from the writer pool
//! directly, as snapshots do, and read through the reader pool. (The consumers' inbox is
//! written by the group-committing writer with the appends it belongs to: `writer.rs`.)

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use eventshop_core::consumer::{ConsumerStorage, DeadLetter};
use eventshop_core::{Position, RecordedEvent, StoreError, StreamId};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use crate::error::{SqliteStoreError, database};
use crate::rows::{self, to_sql_integer, uuid_text};
use crate::store::SqliteEventStore;

/// The columns [`decode_dead_letter`] expects, in its order.
const DEAD_LETTER_COLUMNS: &str = "id, consumer, event, reason, attempts, parked_at";

/// When a letter was parked, as stored: RFC 3339 in UTC with exactly nine fractional
/// digits. Unlike event times, which the store takes itself, this time comes from the
/// caller, and a dead letter must read back exactly as it was parked.
fn parked_at_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn out_of_range(what: String) -> StoreError {
    SqliteStoreError::OutOfRange(what).into()
}

#[async_trait]
impl ConsumerStorage for SqliteEventStore {
    #[tracing::instrument(skip_all, fields(consumer = consumer))]
    async fn consumer_position(&self, consumer: &str) -> Result<Position, StoreError> {
        let position: Option<i64> = sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = ?")
            .bind(consumer)
            .fetch_optional(self.reader_pool())
            .await
            .map_err(database)?;
        let position = position.unwrap_or(0);
        let position = u64::try_from(position)
            .map_err(|_| SqliteStoreError::Corrupt(format!("consumer {consumer} is at position {position}")))?;
        Ok(Position(position))
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer, position = position.0))]
    async fn save_consumer_position(&self, consumer: &str, position: Position) -> Result<(), StoreError> {
        let position_integer =
            to_sql_integer(position.0).ok_or_else(|| out_of_range(format!("consumer position {position}")))?;
        sqlx::query(
            "INSERT INTO consumer_positions (consumer, position, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(consumer)
        .bind(position_integer)
        .bind(rows::timestamp(Utc::now()))
        .execute(self.writer_pool())
        .await
        .map_err(database)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(consumer = %letter.consumer, id = %letter.id, event_id = %letter.event.event_id))]
    async fn park(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let event = &letter.event;
        let stream_version = to_sql_integer(event.stream_version)
            .ok_or_else(|| out_of_range(format!("dead letter version {}", event.stream_version)))?;
        let position = to_sql_integer(event.position.0)
            .ok_or_else(|| out_of_range(format!("dead letter position {}", event.position)))?;
        // Fails only on a payload built with `from_json_unchecked` that is not JSON after all.
        let event_json = serde_json::to_string(event)
            .map_err(|source| SqliteStoreError::EncodeDeadLetter { id: letter.id, source })?;
        sqlx::query(
            "INSERT INTO dead_letters \
             (id, consumer, stream_id, stream_version, position, event, reason, attempts, parked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(uuid_text(letter.id))
        .bind(letter.consumer.as_str())
        .bind(event.stream_id.as_str())
        .bind(stream_version)
        .bind(position)
        .bind(event_json)
        .bind(letter.reason.as_str())
        .bind(i64::from(letter.attempts))
        .bind(parked_at_text(letter.parked_at))
        .execute(self.writer_pool())
        .await
        .map_err(database)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer, limit = limit))]
    async fn dead_letters(&self, consumer: Option<&str>, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut select = QueryBuilder::<Sqlite>::new(format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters"));
        if let Some(consumer) = consumer {
            select.push(" WHERE consumer = ").push_bind(consumer);
        }
        // Oldest first; the id (UUID v7, time-ordered) settles letters parked at the same instant.
        select.push(" ORDER BY parked_at, id LIMIT ").push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = select.build().fetch_all(self.reader_pool()).await.map_err(database)?;
        rows.iter().map(decode_dead_letter).collect()
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer, stream_id = %stream_id))]
    async fn stream_dead_letters(&self, consumer: &str, stream_id: &StreamId) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE consumer = ? AND stream_id = ? \
             ORDER BY stream_version, parked_at, id"
        ))
        .bind(consumer)
        .bind(stream_id.as_str())
        .fetch_all(self.reader_pool())
        .await
        .map_err(database)?;
        rows.iter().map(decode_dead_letter).collect()
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer))]
    async fn blocked_streams(&self, consumer: &str) -> Result<Vec<StreamId>, StoreError> {
        let streams: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT stream_id FROM dead_letters WHERE consumer = ? ORDER BY stream_id")
                .bind(consumer)
                .fetch_all(self.reader_pool())
                .await
                .map_err(database)?;
        Ok(streams.into_iter().map(StreamId::from_raw).collect())
    }

    #[tracing::instrument(skip_all, fields(id = %id, attempts = attempts))]
    async fn update_dead_letter(&self, id: Uuid, reason: &str, attempts: u32) -> Result<(), StoreError> {
        sqlx::query("UPDATE dead_letters SET reason = ?, attempts = ? WHERE id = ?")
            .bind(reason)
            .bind(i64::from(attempts))
            .bind(uuid_text(id))
            .execute(self.writer_pool())
            .await
            .map_err(database)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    async fn remove_dead_letter(&self, id: Uuid) -> Result<bool, StoreError> {
        let removed = sqlx::query("DELETE FROM dead_letters WHERE id = ?")
            .bind(uuid_text(id))
            .execute(self.writer_pool())
            .await
            .map_err(database)?
            .rows_affected();
        Ok(removed > 0)
    }
}

fn decode_dead_letter(row: &SqliteRow) -> Result<DeadLetter, StoreError> {
    let id: &str = row.try_get(0).map_err(database)?;
    let corrupt = |reason: String| StoreError::from(SqliteStoreError::Corrupt(format!("dead letter {id}: {reason}")));
    let consumer: String = row.try_get(1).map_err(database)?;
    let event: &str = row.try_get(2).map_err(database)?;
    let reason: String = row.try_get(3).map_err(database)?;
    let attempts: i64 = row.try_get(4).map_err(database)?;
    let parked_at: &str = row.try_get(5).map_err(database)?;

    Ok(DeadLetter {
        id: Uuid::parse_str(id).map_err(|error| corrupt(format!("the id is not a UUID: {error}")))?,
        consumer,
        event: serde_json::from_str::<RecordedEvent>(event)
            .map_err(|error| corrupt(format!("the event does not decode: {error}")))?,
        reason,
        attempts: u32::try_from(attempts).map_err(|_| corrupt(format!("attempts is out of range: {attempts}")))?,
        parked_at: DateTime::parse_from_rfc3339(parked_at)
            .map_err(|error| corrupt(format!("parked_at is not RFC 3339: {error}")))?
            .with_timezone(&Utc),
    })
}
