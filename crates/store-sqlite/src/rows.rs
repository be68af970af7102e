//! The mapping between eventshop's types and the columns of the `events` table.
//!
//! One place decides how a UUID, a version or a timestamp is spelled in SQLite, so that
//! the writer and the readers cannot disagree about it.

use chrono::{DateTime, SecondsFormat, Utc};
use eventshop_core::{Payload, Position, RecordedEvent, StreamId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::SqliteStoreError;

/// The columns [`decode_event`] expects, in its order.
pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, schema_version, \
     payload, correlation_id, causation_id, acting_user, recorded_at";

/// A time as stored: RFC 3339 in UTC with exactly six fractional digits, so that text
/// order is time order and PostgreSQL's precision is matched.
pub(crate) fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The time an append is recorded at, truncated to what is stored so that the value the
/// writer saw and the value read back are the same.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// A UUID as stored: hyphenated text.
pub(crate) fn uuid_text(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

/// A version or position as SQLite's signed 64-bit integer. Anything beyond `i64::MAX`
/// cannot be stored, and cannot have been stored either.
pub(crate) fn to_sql_integer(value: u64) -> Option<i64> {
    i64::try_from(value).ok()
}

pub(crate) fn decode_event(row: &SqliteRow) -> Result<RecordedEvent, SqliteStoreError> {
    let position: i64 = row.try_get(0)?;
    let corrupt = |reason: String| SqliteStoreError::CorruptEvent { position, reason };
    let unsigned =
        |value: i64, column: &str| u64::try_from(value).map_err(|_| corrupt(format!("{column} is negative: {value}")));
    let uuid = |text: &str, column: &str| {
        Uuid::parse_str(text).map_err(|error| corrupt(format!("{column} is not a UUID: {error}")))
    };

    let event_id: &str = row.try_get(1)?;
    let stream_id: String = row.try_get(2)?;
    let stream_version: i64 = row.try_get(3)?;
    let event_type: String = row.try_get(4)?;
    let schema_version: i64 = row.try_get(5)?;
    let payload: String = row.try_get(6)?;
    let correlation_id: &str = row.try_get(7)?;
    let causation_id: &str = row.try_get(8)?;
    let acting_user: Option<&str> = row.try_get(9)?;
    let recorded_at: &str = row.try_get(10)?;

    Ok(RecordedEvent {
        event_id: uuid(event_id, "event_id")?,
        stream_id: StreamId::from_raw(stream_id),
        stream_version: unsigned(stream_version, "stream_version")?,
        position: Position(unsigned(position, "position")?),
        event_type,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema_version is out of range: {schema_version}")))?,
        recorded_at: DateTime::parse_from_rfc3339(recorded_at)
            .map_err(|error| corrupt(format!("recorded_at is not RFC 3339: {error}")))?
            .with_timezone(&Utc),
        correlation_id: uuid(correlation_id, "correlation_id")?,
        causation_id: uuid(causation_id, "causation_id")?,
        acting_user: acting_user.map(|text| uuid(text, "acting_user")).transpose()?,
        // The table's CHECK (json_valid(payload)) vouches for the text.
        payload: Payload::from_json_unchecked(payload),
    })
}
