//! [`PgEventStore`]: the core's [`EventStore`] on PostgreSQL, in one schema.
//!
//! Appending (the inbox's handled appends included) lives in the `append` module, reading
//! the global order in [`crate::global_order`], consumer positions and dead letters in
//! `consumer_storage`; this module ties the first two to the trait and adds stream reads
//! and snapshots.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::store::{AppendSignal, validate_appends, validate_handled_appends};
use eventshop_core::{
    AppendResult, EventId, EventStore, Payload, Position, RecordedEvent, Snapshot, StoreError, StreamAppend, StreamId,
    Version,
};
use sqlx::Row;
use sqlx::postgres::PgPool;
use tracing::instrument;

use crate::append::{AppendFailure, AppendStatement, Handled};
use crate::connect::{PoolSettings, connect_schema};
use crate::decode::{clamped, out_of_range, recorded_events, select_events, unsigned};
use crate::global_order::{self, GapWait};

/// How often an append to a stream at any version is tried when a concurrent writer takes
/// the version it computed. Such appends queue on a stream lock (see the migration), so
/// only a writer with an exact expectation can get in between, and one retry nearly
/// always does; the bound only stops a pathological loop.
const ANY_VERSION_ATTEMPTS: u32 = 5;

/// An event store in one PostgreSQL schema.
///
/// Cloning is cheap and clones share the pool and the in-process append signal.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
    signal: Arc<AppendSignal>,
    gap_wait: GapWait,
}

impl PgEventStore {
    /// Connects to `schema` with a pool of [`DEFAULT_POOL_SIZE`](crate::DEFAULT_POOL_SIZE)
    /// connections, creating and migrating the schema if needed.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, schema, &PoolSettings::default()).await
    }

    pub async fn connect_with(url: &str, schema: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        Ok(Self::from_pool(connect_schema(url, schema, settings).await?))
    }

    /// A store on a pool opened by [`connect_schema`]: its `search_path` names a migrated
    /// schema. Share the pool with [`PgReadModels`](crate::PgReadModels) when the read
    /// models live in the same schema.
    pub fn from_pool(pool: PgPool) -> Self {
        PgEventStore { pool, signal: Arc::new(AppendSignal::default()), gap_wait: GapWait::default() }
    }

    /// Changes how long [`read_all`](EventStore::read_all) waits for transactions that may
    /// still fill a hole in the global order.
    pub fn with_gap_wait(mut self, gap_wait: GapWait) -> Self {
        self.gap_wait = gap_wait;
        self
    }

    /// The pool, whose connections all use this store's schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs an append statement, again if it lost a version of a stream it appends to at
    /// any version, and wakes this process's readers.
    async fn run_append(
        &self,
        statement: &AppendStatement<'_>,
        appends: &[StreamAppend],
    ) -> Result<Vec<AppendResult>, StoreError> {
        let mut attempt = 1;
        let row = loop {
            let error = match statement.execute(&self.pool).await {
                Ok(row) => break row,
                Err(error) => error,
            };
            // A failed statement rolled back whole, inbox row included: trying again is
            // as safe for a handled append as for any other.
            let failure = AppendFailure::classify(error, appends, statement.inbox_entry());
            if !(failure.is_retryable(appends) && attempt < ANY_VERSION_ATTEMPTS) {
                return Err(failure.into_store_error(appends));
            }
            tracing::debug!(
                attempt,
                "a version was taken concurrently from a stream appended at any version; retrying"
            );
            attempt += 1;
        };
        let results = statement.results(&row)?;
        if let Some(head) = results.iter().map(|result| result.position).max() {
            self.signal.appended(head);
        }
        Ok(results)
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    #[instrument(skip_all, fields(streams = appends.len()))]
    async fn append_many(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        validate_appends(&appends)?;
        self.run_append(&AppendStatement::new(&appends)?, &appends).await
    }

    #[instrument(skip_all, fields(consumer, %event_id, streams = appends.len()))]
    async fn append_handled(
        &self,
        consumer: &str,
        event_id: EventId,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        validate_handled_appends(&appends)?;
        let statement = AppendStatement::handled(Handled { consumer, event_id }, &appends)?;
        self.run_append(&statement, &appends).await
    }

    #[instrument(skip_all, fields(stream_id = %stream_id, after_version))]
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: Version,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(select_events!(
            "FROM events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
        ))
        .bind(stream_id.as_str())
        .bind(clamped(after_version))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::backend)?;
        recorded_events(&rows)
    }

    #[instrument(skip_all, fields(after = after.0, limit))]
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        global_order::read_all(&self.pool, after, limit, self.gap_wait).await
    }

    #[instrument(skip_all)]
    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::backend)?;
        u64::try_from(head).map(Position).map_err(|_| out_of_range("position", head))
    }

    async fn wait_for_events(&self, after: Position, timeout: Duration) {
        // Appends through this handle wake the waiter at once. Appends by other processes
        // are found by the caller's next read, after `timeout`: LISTEN/NOTIFY would tell
        // sooner, but NOTIFY takes a database-wide lock at commit and so serialises appends.
        self.signal.wait_past(after, timeout).await;
    }

    #[instrument(skip_all, fields(stream_id = %stream_id))]
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row =
            sqlx::query("SELECT version, schema_version, state::text AS state FROM snapshots WHERE stream_id = $1")
                .bind(stream_id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let schema_version: i32 = row.try_get("schema_version").map_err(StoreError::backend)?;
        Ok(Some(Snapshot {
            stream_id: stream_id.clone(),
            version: unsigned(&row, "version")?,
            schema_version: u32::try_from(schema_version)
                .map_err(|_| out_of_range("schema_version", schema_version.into()))?,
            state: Payload::from_json_unchecked(row.try_get("state").map_err(StoreError::backend)?),
        }))
    }

    #[instrument(skip_all, fields(stream_id = %snapshot.stream_id, version = snapshot.version))]
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let schema_version = i32::try_from(snapshot.schema_version).map_err(|_| {
            StoreError::InvalidAppend(format!("snapshot schema version {} is too large", snapshot.schema_version))
        })?;
        // Replaces only an older snapshot (or one of the same version): a slow writer of
        // an old state must not overwrite a newer one.
        sqlx::query(
            "INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at) \
             VALUES ($1, $2, $3, $4::json, now()) \
             ON CONFLICT (stream_id) DO UPDATE \
                SET version = excluded.version, schema_version = excluded.schema_version, \
                    state = excluded.state, taken_at = excluded.taken_at \
              WHERE snapshots.version <= excluded.version",
        )
        .bind(snapshot.stream_id.as_str())
        .bind(clamped(snapshot.version))
        .bind(schema_version)
        .bind(snapshot.state.as_str())
        .execute(&self.pool)
        .await
        .map_err(StoreError::backend)?;
        Ok(())
    }
}
