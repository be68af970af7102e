//! Turning rows of `events` into [`RecordedEvent`]s, and Rust's unsigned numbers into
//! PostgreSQL's signed ones and back. Shared by every query that reads events.

use eventshop_core::{Payload, Position, RecordedEvent, StoreError, StreamId};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::DataError;

/// A query of events: `select_events!("FROM events WHERE ...")` selects the columns
/// [`recorded_event`] reads. A macro rather than a constant so that each query is one
/// literal, built at compile time, and not formatted anew on every call. The payload
/// leaves as text: the store hands out JSON text, never a parsed document.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, ",
            "payload::text AS payload, correlation_id, causation_id, acting_user, recorded_at ",
            $rest
        )
    };
}
pub(crate) use select_events;

pub(crate) fn recorded_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let stream_id: String = row.try_get("stream_id").map_err(StoreError::backend)?;
    let payload: String = row.try_get("payload").map_err(StoreError::backend)?;
    Ok(RecordedEvent {
        event_id: row.try_get("event_id").map_err(StoreError::backend)?,
        stream_id: StreamId::from_raw(stream_id),
        stream_version: unsigned(row, "stream_version")?,
        position: Position(unsigned(row, "position")?),
        event_type: row.try_get("event_type").map_err(StoreError::backend)?,
        schema_version: {
            let schema_version: i32 = row.try_get("schema_version").map_err(StoreError::backend)?;
            u32::try_from(schema_version).map_err(|_| out_of_range("schema_version", schema_version.into()))?
        },
        recorded_at: row.try_get("recorded_at").map_err(StoreError::backend)?,
        correlation_id: row.try_get("correlation_id").map_err(StoreError::backend)?,
        causation_id: row.try_get("causation_id").map_err(StoreError::backend)?,
        acting_user: row.try_get("acting_user").map_err(StoreError::backend)?,
        // PostgreSQL parsed it on the way in: the json type accepts only valid JSON.
        payload: Payload::from_json_unchecked(payload),
    })
}

pub(crate) fn recorded_events(rows: &[PgRow]) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(recorded_event).collect()
}

/// A `bigint` column that the schema keeps non-negative (positions, versions).
pub(crate) fn unsigned(row: &PgRow, column: &'static str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column).map_err(StoreError::backend)?;
    u64::try_from(value).map_err(|_| out_of_range(column, value))
}

/// A position or version as a `bigint` bound in a comparison. Values past `i64::MAX`
/// cannot be stored, so clamping them keeps every comparison's meaning.
pub(crate) fn clamped(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn out_of_range(column: &'static str, value: i64) -> StoreError {
    StoreError::backend(DataError::OutOfRange { column, value })
}
