//! Appending: an append as a call of one of the migration's functions, and the database's
//! refusals in the store's terms.
//!
//! An append is one statement, so one round trip and one commit: a statement is its own
//! transaction. One event goes to `append_event` with plain parameters, several events
//! for one stream to `append_to_stream`, several streams to `append_events`; the split is
//! for speed (see the migration). All three check the expected versions, then insert. A
//! writer that passed the check but lost the race for a version to a concurrent writer is
//! stopped by the unique index on `(stream_id, stream_version)`; both refusals become
//! [`StoreError::WrongExpectedVersion`], never a silent overwrite.
//!
//! An append that also records a consumer's handling of an event (the inbox) goes to
//! `append_handled_events`, which writes the inbox row and then appends as
//! `append_events` does, in the same statement.

use chrono::Utc;
use eventshop_core::envelope::EventId;
use eventshop_core::{AppendResult, ExpectedVersion, NewEvent, Position, StoreError, StreamAppend};
use sqlx::Row;
use sqlx::error::ErrorKind;
use sqlx::postgres::{PgArguments, PgDatabaseError, PgPool, PgRow, Postgres};
use sqlx::query::Query;
use uuid::Uuid;

use crate::decode::{out_of_range, unsigned};
use crate::error::DataError;

/// Raised by the append functions when a stream is not at the expected version.
const WRONG_EXPECTED_VERSION: &str = "ES001";
/// Raised by `append_handled_events` when the consumer has handled the event before.
const ALREADY_HANDLED: &str = "ES003";
const INBOX_PRIMARY_KEY: &str = "inbox_pkey";
const STREAM_VERSION_UNIQUE: &str = "events_stream_version_unique";
const EVENT_ID_UNIQUE: &str = "events_event_id_unique";

/// A validated append, ready to send.
#[derive(Debug)]
pub(crate) enum AppendStatement<'a> {
    /// One event to one stream: `append_event`.
    Event { append: &'a StreamAppend, event: &'a NewEvent, expected: i64, schema_version: i32 },
    /// Several events to one stream: `append_to_stream`.
    Stream { append: &'a StreamAppend, expected: i64, events: EventColumns<'a> },
    /// Several streams: `append_events`.
    Streams { streams: StreamColumns<'a>, events: EventColumns<'a> },
    /// Any number of streams, none included, and an inbox entry: `append_handled_events`.
    Handled { handled: Handled<'a>, streams: StreamColumns<'a>, events: EventColumns<'a> },
}

/// The inbox entry of an append: `consumer` has handled the event `event_id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handled<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) event_id: EventId,
}

impl<'a> AppendStatement<'a> {
    /// `appends` must have passed [`validate_appends`](eventshop_core::store::validate_appends).
    pub(crate) fn new(appends: &'a [StreamAppend]) -> Result<Self, StoreError> {
        match appends {
            [append] => match append.events.as_slice() {
                [event] => Ok(AppendStatement::Event {
                    append,
                    event,
                    expected: encode_expected(append)?,
                    schema_version: encode_schema_version(event)?,
                }),
                events => Ok(AppendStatement::Stream {
                    append,
                    expected: encode_expected(append)?,
                    events: EventColumns::new(events.iter())?,
                }),
            },
            _ => Ok(AppendStatement::Streams {
                streams: StreamColumns::new(appends)?,
                events: EventColumns::new(appends.iter().flat_map(|append| &append.events))?,
            }),
        }
    }

    /// `appends` must have passed
    /// [`validate_handled_appends`](eventshop_core::store::validate_handled_appends).
    pub(crate) fn handled(handled: Handled<'a>, appends: &'a [StreamAppend]) -> Result<Self, StoreError> {
        Ok(AppendStatement::Handled {
            handled,
            streams: StreamColumns::new(appends)?,
            events: EventColumns::new(appends.iter().flat_map(|append| &append.events))?,
        })
    }

    /// The inbox entry the statement records, if any.
    pub(crate) fn inbox_entry(&self) -> Option<Handled<'a>> {
        match self {
            AppendStatement::Handled { handled, .. } => Some(*handled),
            _ => None,
        }
    }

    pub(crate) async fn execute(&self, pool: &PgPool) -> Result<PgRow, sqlx::Error> {
        let query = match self {
            AppendStatement::Event { append, event, expected, schema_version } => sqlx::query(
                "SELECT version_before, last_position \
                   FROM append_event($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(append.stream_id.as_str())
            .bind(expected)
            .bind(event.event_id)
            .bind(&event.event_type)
            .bind(schema_version)
            .bind(event.payload.as_str())
            .bind(event.metadata.correlation_id)
            .bind(event.metadata.causation_id)
            .bind(event.metadata.acting_user),
            AppendStatement::Stream { append, expected, events } => events.bind(
                sqlx::query(
                    "SELECT version_before, last_position \
                       FROM append_to_stream($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(append.stream_id.as_str())
                .bind(expected),
            ),
            AppendStatement::Streams { streams, events } => events.bind(streams.bind(sqlx::query(
                "SELECT versions_before, positions \
                   FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            ))),
            AppendStatement::Handled { handled, streams, events } => events.bind(
                streams.bind(
                    sqlx::query(
                        "SELECT versions_before, positions \
                           FROM append_handled_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    )
                    .bind(handled.consumer)
                    .bind(handled.event_id),
                ),
            ),
        };
        query.bind(Utc::now()).fetch_one(pool).await
    }

    /// Where the append left each stream, from the row the function returned.
    pub(crate) fn results(&self, row: &PgRow) -> Result<Vec<AppendResult>, StoreError> {
        let one_stream = |added: usize| -> Result<Vec<AppendResult>, StoreError> {
            Ok(vec![AppendResult {
                version: unsigned(row, "version_before")? + added as u64,
                position: Position(unsigned(row, "last_position")?),
            }])
        };
        match self {
            AppendStatement::Event { .. } => one_stream(1),
            AppendStatement::Stream { append, .. } => one_stream(append.events.len()),
            AppendStatement::Streams { streams, .. } | AppendStatement::Handled { streams, .. } => streams.results(row),
        }
    }
}

/// The events of an append as the parallel arrays `append_to_stream` and `append_events`
/// take.
#[derive(Debug, Default)]
pub(crate) struct EventColumns<'a> {
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    payloads: Vec<&'a str>,
    correlation_ids: Vec<Uuid>,
    causation_ids: Vec<Uuid>,
    acting_users: Vec<Option<Uuid>>,
}

impl<'a> EventColumns<'a> {
    fn new(events: impl Iterator<Item = &'a NewEvent>) -> Result<Self, StoreError> {
        let mut columns = EventColumns::default();
        for event in events {
            columns.event_ids.push(event.event_id);
            columns.event_types.push(&event.event_type);
            columns.schema_versions.push(encode_schema_version(event)?);
            columns.payloads.push(event.payload.as_str());
            columns.correlation_ids.push(event.metadata.correlation_id);
            columns.causation_ids.push(event.metadata.causation_id);
            columns.acting_users.push(event.metadata.acting_user);
        }
        Ok(columns)
    }

    /// Binds the arrays, in the functions' parameter order.
    fn bind<'q>(&'q self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.event_ids)
            .bind(&self.event_types)
            .bind(&self.schema_versions)
            .bind(&self.payloads)
            .bind(&self.correlation_ids)
            .bind(&self.causation_ids)
            .bind(&self.acting_users)
    }
}

/// The streams of a multi-stream append as the arrays `append_events` takes: one entry
/// per stream, then for each event its stream's 1-based index and its place among that
/// stream's new events.
#[derive(Debug)]
pub(crate) struct StreamColumns<'a> {
    stream_ids: Vec<&'a str>,
    expected_versions: Vec<i64>,
    event_stream_indexes: Vec<i32>,
    /// The event's place among its stream's new events, from 1: its version is the
    /// stream's version before the append plus this.
    event_offsets: Vec<i32>,
    /// For each stream, the index of its last event in the event arrays.
    last_event_indexes: Vec<usize>,
}

impl<'a> StreamColumns<'a> {
    fn new(appends: &'a [StreamAppend]) -> Result<Self, StoreError> {
        let too_many = || StoreError::InvalidAppend("too many streams or events in one append".into());
        let mut columns = StreamColumns {
            stream_ids: Vec::with_capacity(appends.len()),
            expected_versions: Vec::with_capacity(appends.len()),
            event_stream_indexes: Vec::new(),
            event_offsets: Vec::new(),
            last_event_indexes: Vec::with_capacity(appends.len()),
        };
        for (index, append) in appends.iter().enumerate() {
            let stream_index = i32::try_from(index + 1).map_err(|_| too_many())?;
            columns.stream_ids.push(append.stream_id.as_str());
            columns.expected_versions.push(encode_expected(append)?);
            for offset in 1..=append.events.len() {
                columns.event_stream_indexes.push(stream_index);
                columns.event_offsets.push(i32::try_from(offset).map_err(|_| too_many())?);
            }
            // Validation guarantees every stream at least one event.
            columns.last_event_indexes.push(columns.event_offsets.len().saturating_sub(1));
        }
        Ok(columns)
    }

    /// Binds the stream arrays, in the functions' parameter order.
    fn bind<'q>(&'q self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.stream_ids)
            .bind(&self.expected_versions)
            .bind(&self.event_stream_indexes)
            .bind(&self.event_offsets)
    }

    /// Each stream's new version (its version before plus its event count) and the
    /// position of its last event.
    fn results(&self, row: &PgRow) -> Result<Vec<AppendResult>, StoreError> {
        let versions_before: Vec<i64> = row.try_get("versions_before").map_err(StoreError::backend)?;
        let positions: Vec<i64> = row.try_get("positions").map_err(StoreError::backend)?;
        if versions_before.len() != self.stream_ids.len() || positions.len() != self.event_offsets.len() {
            return Err(StoreError::backend(DataError::AppendResultShape {
                versions: versions_before.len(),
                streams: self.stream_ids.len(),
                positions: positions.len(),
                events: self.event_offsets.len(),
            }));
        }
        let mut results = Vec::with_capacity(self.stream_ids.len());
        for (&before, &last_event) in versions_before.iter().zip(&self.last_event_indexes) {
            let before = u64::try_from(before).map_err(|_| out_of_range("stream_version", before))?;
            let added = self.event_offsets[last_event] as u64;
            let position = positions[last_event];
            results.push(AppendResult {
                version: before + added,
                position: Position(u64::try_from(position).map_err(|_| out_of_range("position", position))?),
            });
        }
        Ok(results)
    }
}

/// -1 for any version, 0 for no stream, n for exactly n: what the functions take.
fn encode_expected(append: &StreamAppend) -> Result<i64, StoreError> {
    match append.expected {
        ExpectedVersion::Any => Ok(-1),
        ExpectedVersion::NoStream => Ok(0),
        // No stream can reach a version past i64::MAX, so such an expectation can never
        // hold: refused as the conflict it is.
        ExpectedVersion::Exact(version) => i64::try_from(version).map_err(|_| StoreError::WrongExpectedVersion {
            stream_id: append.stream_id.clone(),
            expected: append.expected,
        }),
    }
}

fn encode_schema_version(event: &NewEvent) -> Result<i32, StoreError> {
    i32::try_from(event.schema_version).map_err(|_| {
        StoreError::InvalidAppend(format!(
            "event {}: schema version {} is too large",
            event.event_id, event.schema_version
        ))
    })
}

/// Why an append failed, in the store's terms.
#[derive(Debug)]
pub(crate) enum AppendFailure {
    /// A stream was not at its expected version when checked.
    WrongVersion {
        stream: usize,
    },
    /// A concurrent writer inserted the version this append computed for a stream.
    VersionTaken {
        stream: usize,
    },
    DuplicateEvent(EventId),
    /// The consumer had handled the event before.
    AlreadyHandled {
        consumer: String,
        event_id: EventId,
    },
    Backend(sqlx::Error),
}

impl AppendFailure {
    /// `handled` is the inbox entry the failed statement was to record, if any.
    pub(crate) fn classify(error: sqlx::Error, appends: &[StreamAppend], handled: Option<Handled<'_>>) -> Self {
        let Some(database_error) = error.as_database_error() else {
            return AppendFailure::Backend(error);
        };
        let detail = database_error.try_downcast_ref::<PgDatabaseError>().and_then(PgDatabaseError::detail);
        // `append_handled_events` raises its own code when it finds the inbox row; the
        // primary key would say the same if the row were ever inserted without that look.
        let inbox_refused = database_error.code().as_deref() == Some(ALREADY_HANDLED)
            || (database_error.kind() == ErrorKind::UniqueViolation
                && database_error.constraint() == Some(INBOX_PRIMARY_KEY));
        if inbox_refused {
            return match handled {
                Some(handled) => {
                    AppendFailure::AlreadyHandled { consumer: handled.consumer.to_owned(), event_id: handled.event_id }
                }
                None => AppendFailure::Backend(error),
            };
        }
        if database_error.code().as_deref() == Some(WRONG_EXPECTED_VERSION) {
            // The functions put the stream id in DETAIL.
            let stream = appends.iter().position(|append| Some(append.stream_id.as_str()) == detail);
            return match stream {
                Some(stream) => AppendFailure::WrongVersion { stream },
                None => AppendFailure::Backend(error),
            };
        }
        if database_error.kind() != ErrorKind::UniqueViolation {
            return AppendFailure::Backend(error);
        }
        match database_error.constraint() {
            Some(STREAM_VERSION_UNIQUE) => AppendFailure::VersionTaken { stream: taken_stream(detail, appends) },
            Some(EVENT_ID_UNIQUE) => {
                // DETAIL reads "Key (event_id)=(<uuid>) already exists."; find which of ours.
                let duplicate = appends
                    .iter()
                    .flat_map(|append| &append.events)
                    .map(|event| event.event_id)
                    .find(|event_id| detail.is_some_and(|detail| detail.contains(&event_id.to_string())));
                match duplicate {
                    Some(event_id) => AppendFailure::DuplicateEvent(event_id),
                    None => AppendFailure::Backend(error),
                }
            }
            _ => AppendFailure::Backend(error),
        }
    }

    /// Whether trying again may succeed: the version was taken from a stream the append
    /// wanted at whatever version it is.
    pub(crate) fn is_retryable(&self, appends: &[StreamAppend]) -> bool {
        matches!(self, AppendFailure::VersionTaken { stream } if appends[*stream].expected == ExpectedVersion::Any)
    }

    pub(crate) fn into_store_error(self, appends: &[StreamAppend]) -> StoreError {
        match self {
            AppendFailure::WrongVersion { stream } | AppendFailure::VersionTaken { stream } => {
                StoreError::WrongExpectedVersion {
                    stream_id: appends[stream].stream_id.clone(),
                    expected: appends[stream].expected,
                }
            }
            AppendFailure::DuplicateEvent(event_id) => StoreError::DuplicateEvent(event_id),
            AppendFailure::AlreadyHandled { consumer, event_id } => StoreError::AlreadyHandled { consumer, event_id },
            AppendFailure::Backend(error) => StoreError::backend(error),
        }
    }
}

/// Which stream lost the race for a version. DETAIL reads
/// "Key (stream_id, stream_version)=(<stream>, <version>) already exists."; without it,
/// the first stream with a definite expectation is blamed (retrying cannot help that one).
fn taken_stream(detail: Option<&str>, appends: &[StreamAppend]) -> usize {
    let named = detail.and_then(|detail| {
        appends
            .iter()
            .position(|append| detail.starts_with(&format!("Key (stream_id, stream_version)=({}, ", append.stream_id)))
    });
    named.or_else(|| appends.iter().position(|append| append.expected != ExpectedVersion::Any)).unwrap_or(0)
}
