//! [`SqliteEventStore`]: opening the file, the two pools, and the reads.
//!
//! A store is one database file with two pools on it. The writer pool has exactly one
//! connection, because SQLite has one writer at a time: a second writing connection would
//! only wait for the lock, or worse, deadlock trying to upgrade a read transaction to a
//! write (SQLITE_BUSY that no timeout cures). Appends reach that connection through the
//! group-committing writer task (`writer.rs`); snapshots and read-model transactions
//! take it from the pool directly. The reader pool holds read-only connections; in WAL
//! mode they read a consistent snapshot while the writer writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventshop_core::store::{AppendSignal, validate_appends, validate_handled_appends};
use eventshop_core::{
    AppendResult, EventId, EventStore, Payload, Position, RecordedEvent, Snapshot, StoreError, StreamAppend, StreamId,
    Version,
};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tempfile::TempDir;

use crate::error::{SqliteStoreError, database};
use crate::options::SqliteStoreOptions;
use crate::read_models::SqliteReadModels;
use crate::recent::Recent;
use crate::rows::{self, EVENT_COLUMNS, decode_event, to_sql_integer};
use crate::writer::{Handled, Writer, WriterStats};

/// The schema: events, snapshots, projection checkpoints, and the consumers' inbox,
/// positions and dead letters, from `migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!();

/// The embedded event store: one SQLite database file per service.
///
/// Cheap to share behind an `Arc`; dropping the last handle stops the writer task after
/// it has answered the appends already queued.
#[derive(Debug)]
pub struct SqliteEventStore {
    path: PathBuf,
    writer_pool: SqlitePool,
    reader_pool: SqlitePool,
    writer: Writer,
    signal: Arc<AppendSignal>,
    /// What this process committed last, to answer tail reads without a query.
    recent: Arc<Recent>,
    /// The directory of a [`temporary`](SqliteEventStore::temporary) store, removed when
    /// the store is dropped.
    _temporary_directory: Option<TempDir>,
}

impl SqliteEventStore {
    /// Opens the database file at `path`, creating it and its parent directories if
    /// needed, and brings its schema up to date.
    ///
    /// Must be called inside a tokio runtime: it starts the writer task.
    pub async fn open(path: impl AsRef<Path>, options: SqliteStoreOptions) -> Result<Self, StoreError> {
        Ok(Self::connect(path.as_ref(), options, None).await?)
    }

    /// A store in a file of its own in a fresh temporary directory, removed when the store
    /// is dropped. For tests: unlike `:memory:`, it behaves exactly like a store opened
    /// with [`open`](SqliteEventStore::open), WAL and separate readers included.
    pub async fn temporary(options: SqliteStoreOptions) -> Result<Self, StoreError> {
        let directory = tempfile::Builder::new()
            .prefix("eventshop-sqlite-")
            .tempdir()
            .map_err(SqliteStoreError::TemporaryDirectory)?;
        let path = directory.path().join("events.sqlite3");
        Ok(Self::connect(&path, options, Some(directory)).await?)
    }

    async fn connect(
        path: &Path,
        options: SqliteStoreOptions,
        temporary_directory: Option<TempDir>,
    ) -> Result<Self, SqliteStoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            // Blocking, but once per process at startup, before anything else waits on it.
            std::fs::create_dir_all(parent)
                .map_err(|source| SqliteStoreError::CreateDirectory { path: parent.to_owned(), source })?;
        }
        let open_error = |source| SqliteStoreError::Open { path: path.to_owned(), source };

        let common = SqliteConnectOptions::new().filename(path).busy_timeout(options.busy_timeout).foreign_keys(true);
        let writer_options = common
            .clone()
            .create_if_missing(true)
            // WAL: readers do not block the writer nor the writer the readers, and a commit
            // appends to one file instead of rewriting pages in place.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(options.synchronous.to_sqlx())
            // So that `INSERT OR REPLACE` through this connection cannot remove an event
            // without the delete trigger seeing it (REPLACE fires delete triggers only then).
            .pragma("recursive_triggers", "ON");
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.writer_acquire_timeout)
            // A local file does not go stale like a socket: no ping before each use, and the
            // one connection lives as long as the store.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&writer_pool).await.map_err(SqliteStoreError::Migrate)?;

        // Opened after the writer has created the file and switched it to WAL.
        let reader_pool = SqlitePoolOptions::new()
            .max_connections(options.reader_connections.max(1))
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(common.read_only(true))
            .await
            .map_err(open_error)?;

        let signal = Arc::new(AppendSignal::default());
        let recent = Arc::new(Recent::default());
        let writer = Writer::spawn(writer_pool.clone(), signal.clone(), recent.clone(), options.max_group_commit);
        Ok(SqliteEventStore {
            path: path.to_owned(),
            writer_pool,
            reader_pool,
            writer,
            signal,
            recent,
            _temporary_directory: temporary_directory,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read models kept in the same database file, written through the same single writer
    /// connection, so that a projection's tables and checkpoint commit together.
    pub fn read_models(&self) -> SqliteReadModels {
        SqliteReadModels::new(self.writer_pool.clone(), self.reader_pool.clone())
    }

    /// What the writer has committed so far; see [`WriterStats`].
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// The one-connection pool that non-append writes (snapshots, consumer positions, dead
    /// letters) take the writer connection from.
    pub(crate) fn writer_pool(&self) -> &SqlitePool {
        &self.writer_pool
    }

    /// The read-only connections.
    pub(crate) fn reader_pool(&self) -> &SqlitePool {
        &self.reader_pool
    }

    /// Closes the connections, waiting for the writer to finish the group it is writing.
    /// Appends after this fail with a backend error.
    pub async fn close(&self) {
        self.reader_pool.close().await;
        self.writer_pool.close().await;
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    #[tracing::instrument(skip_all, fields(streams = appends.len()))]
    async fn append_many(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        validate_appends(&appends)?;
        self.writer.append(appends, None).await
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer, event_id = %event_id, streams = appends.len()))]
    async fn append_handled(
        &self,
        consumer: &str,
        event_id: EventId,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        validate_handled_appends(&appends)?;
        let handled = Handled { consumer: consumer.to_owned(), event_id };
        self.writer.append(appends, Some(handled)).await
    }

    #[tracing::instrument(skip_all, fields(stream_id = %stream_id, after_version = after_version))]
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: Version,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.recent.head(stream_id).is_some_and(|head| head <= after_version) {
            return Ok(Vec::new());
        }
        let Some(after_version) = to_sql_integer(after_version) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version"
        ))
        .bind(stream_id.as_str())
        .bind(after_version)
        .fetch_all(&self.reader_pool)
        .await
        .map_err(database)?;
        rows.iter().map(|row| decode_event(row).map_err(StoreError::from)).collect()
    }

    #[tracing::instrument(skip_all, fields(after = after.0, limit = limit))]
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // Gap-safe without further ado: commits are serialised by the single writer and
        // positions are assigned inside its lock, so what a reader sees is always every
        // position up to some point, never a later one without an earlier one.
        if let Some(events) = self.recent.read_all(after, limit) {
            return Ok(events);
        }
        let Some(after) = to_sql_integer(after.0) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.reader_pool)
                .await
                .map_err(database)?;
        rows.iter().map(|row| decode_event(row).map_err(StoreError::from)).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(&self.reader_pool)
            .await
            .map_err(database)?;
        let head = head.unwrap_or(0);
        let head =
            u64::try_from(head).map_err(|_| SqliteStoreError::Corrupt(format!("the head position is {head}")))?;
        Ok(Position(head))
    }

    async fn wait_for_events(&self, after: Position, timeout: Duration) {
        self.signal.wait_past(after, timeout).await;
    }

    #[tracing::instrument(skip_all, fields(stream_id = %stream_id))]
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<(i64, i64, String)> =
            sqlx::query_as("SELECT version, schema_version, state FROM snapshots WHERE stream_id = ?")
                .bind(stream_id.as_str())
                .fetch_optional(&self.reader_pool)
                .await
                .map_err(database)?;
        let Some((version, schema_version, state)) = row else {
            return Ok(None);
        };
        let corrupt = || SqliteStoreError::Corrupt(format!("the snapshot of {stream_id} is at version {version}"));
        Ok(Some(Snapshot {
            stream_id: stream_id.clone(),
            version: Version::try_from(version).map_err(|_| corrupt())?,
            schema_version: u32::try_from(schema_version).map_err(|_| corrupt())?,
            // CHECK (json_valid(state)) vouches for the text.
            state: Payload::from_json_unchecked(state),
        }))
    }

    #[tracing::instrument(skip_all, fields(stream_id = %snapshot.stream_id, version = snapshot.version))]
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let version = to_sql_integer(snapshot.version)
            .ok_or_else(|| SqliteStoreError::OutOfRange(format!("snapshot version {}", snapshot.version)))?;
        // Replaces a snapshot of the same version too, like the reference store: after an
        // aggregate changes its snapshot shape, the new shape must win over the old.
        sqlx::query(
            "INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
             schema_version = excluded.schema_version, state = excluded.state, taken_at = excluded.taken_at \
             WHERE excluded.version >= snapshots.version",
        )
        .bind(snapshot.stream_id.as_str())
        .bind(version)
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.state.as_str())
        .bind(rows::timestamp(chrono::Utc::now()))
        .execute(&self.writer_pool)
        .await
        .map_err(database)?;
        Ok(())
    }
}
