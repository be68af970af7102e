//! The raw-sqlx baseline on SQLite: a file with the store's `events` table (columns,
//! STRICT types, CHECKs and unique indexes, see `store-sqlite/migrations`), opened the way
//! the store opens its own (WAL, `synchronous = FULL`, one writer connection), written one
//! `BEGIN IMMEDIATE … COMMIT` per append.
//!
//! What the baseline leaves out is what the store adds: the expected-version check, the
//! savepoint per append, the hand-off to the writer task, the decoding into the core's
//! types. What it also leaves out is the store's group commit: each raw append pays its
//! own fsync, which is the point of comparing them with 8 writers.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use eventshop_core::NewEvent;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use crate::baseline::RawBaseline;

pub const RAW_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS raw_events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    acting_user     TEXT,
    recorded_at     TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT";

/// The tables of [`RawEvents::raw_rebuild`].
pub const RAW_REBUILD_TABLES_SQL: &str = "
    CREATE TABLE IF NOT EXISTS raw_event_log (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, event_type TEXT NOT NULL) STRICT;
    CREATE TABLE IF NOT EXISTS raw_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) STRICT;";

const COLUMNS: &str = "event_id, stream_id, stream_version, event_type, schema_version, payload, \
                       correlation_id, causation_id, acting_user, recorded_at";
const SELECT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, schema_version, \
                              payload, correlation_id, causation_id, acting_user, recorded_at";

/// A row as a hand-written reader would fetch it: every column as SQLite stores it.
#[derive(Debug, Clone, FromRow)]
pub struct RawRow {
    pub position: i64,
    pub event_id: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i64,
    pub payload: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub acting_user: Option<String>,
    pub recorded_at: String,
}

/// Plain SQL on a baseline table, or for reads on the store's own `events` table.
#[derive(Debug, Clone)]
pub struct RawEvents {
    writer: SqlitePool,
    reader: SqlitePool,
    table: String,
}

impl RawEvents {
    /// Opens (creating if needed) the baseline table `raw_events` in the file at `path`,
    /// like the store opens its file.
    pub async fn create(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::raw_sql(RAW_TABLE_SQL).execute(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(RawEvents { writer, reader, table: "raw_events".to_owned() })
    }

    /// `table` in an existing file, e.g. the store's own `events`, for the read baselines.
    /// Writes (the raw rebuild's) go through a connection of its own: do not append to the
    /// store while they run.
    pub async fn open_existing(path: &Path, table: &str) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(5))
            .synchronous(SqliteSynchronous::Full);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(RawEvents { writer, reader, table: table.to_owned() })
    }

    /// The projection runner's work done by hand: empty `raw_event_log`, then per page of
    /// `page` events one transaction with one INSERT per event and the checkpoint upsert.
    /// Returns the events replayed. Needs [`RAW_REBUILD_TABLES_SQL`].
    pub async fn rebuild(&self, page: i64) -> Result<usize, sqlx::Error> {
        sqlx::query("DELETE FROM raw_event_log").execute(&self.writer).await?;
        let mut after = 0;
        let mut total = 0;
        loop {
            let rows = self.read_page(after, page).await?;
            let Some(last) = rows.last() else {
                return Ok(total);
            };
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            for row in &rows {
                sqlx::query("INSERT INTO raw_event_log (position, stream_id, event_type) VALUES (?, ?, ?)")
                    .bind(row.position)
                    .bind(&row.stream_id)
                    .bind(&row.event_type)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO raw_checkpoints (name, position) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            )
            .bind(crate::projection::NAME)
            .bind(last.position)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            after = last.position;
            total += rows.len();
        }
    }

    /// Runs `sql` (several statements allowed) on the writer connection.
    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&self.writer).await.map(drop)
    }

    /// `events` as the versions after `after_version` of `stream_id`: one INSERT (multi-row
    /// VALUES when there are several) in its own `BEGIN IMMEDIATE` transaction.
    pub async fn insert(&self, stream_id: &str, after_version: i64, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        let recorded_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut transaction = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut insert = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {} ({COLUMNS}) ", self.table));
        let mut version = after_version;
        insert.push_values(events, |mut row, event| {
            version += 1;
            row.push_bind(event.event_id.hyphenated().to_string())
                .push_bind(stream_id.to_owned())
                .push_bind(version)
                .push_bind(event.event_type.clone())
                .push_bind(i64::from(event.schema_version))
                .push_bind(event.payload.as_str().to_owned())
                .push_bind(event.metadata.correlation_id.hyphenated().to_string())
                .push_bind(event.metadata.causation_id.hyphenated().to_string())
                .push_bind(event.metadata.acting_user.map(|user| user.hyphenated().to_string()))
                .push_bind(recorded_at.clone());
        });
        insert.build().execute(&mut *transaction).await?;
        transaction.commit().await
    }

    /// Up to `limit` rows after `after` in position order.
    pub async fn read_page(&self, after: i64, limit: i64) -> Result<Vec<RawRow>, sqlx::Error> {
        let sql = format!("SELECT {SELECT_COLUMNS} FROM {} WHERE position > ? ORDER BY position LIMIT ?", self.table);
        sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(&self.reader).await
    }

    /// Every row of `stream_id` after `after_version`, in version order.
    pub async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<RawRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM {} WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version",
            self.table
        );
        sqlx::query_as(&sql).bind(stream_id).bind(after_version).fetch_all(&self.reader).await
    }

    /// Pages through the whole table, `page` rows at a time; returns the rows read.
    pub async fn read_everything(&self, page: i64) -> Result<usize, sqlx::Error> {
        let mut after = 0;
        let mut total = 0;
        loop {
            let rows = self.read_page(after, page).await?;
            let Some(last) = rows.last() else {
                return Ok(total);
            };
            after = last.position;
            total += rows.len();
        }
    }

    /// The version of the SQLite library sqlx links (the bundled one).
    pub async fn sqlite_version(&self) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&self.writer).await
    }

    /// The setting every baseline commit runs with, as SQLite reports it (2 = FULL).
    pub async fn synchronous(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&self.writer).await
    }
}

#[async_trait]
impl RawBaseline for RawEvents {
    async fn append(&self, stream_id: &str, after_version: i64, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        self.insert(stream_id, after_version, events).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<usize, sqlx::Error> {
        Ok(RawEvents::read_stream(self, stream_id, after_version).await?.len())
    }

    async fn read_everything(&self, page: i64) -> Result<usize, sqlx::Error> {
        RawEvents::read_everything(self, page).await
    }

    async fn rebuild(&self, page: i64) -> Result<usize, sqlx::Error> {
        RawEvents::rebuild(self, page).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::deposit_events;

    #[tokio::test]
    async fn the_baseline_writes_and_pages_back_what_it_wrote() {
        let directory = tempfile::tempdir().unwrap();
        let raw = RawEvents::create(&directory.path().join("raw.sqlite3")).await.unwrap();
        assert_eq!(raw.synchronous().await.unwrap(), 2);
        raw.insert("account-1", 0, &deposit_events(1)).await.unwrap();
        raw.insert("account-1", 1, &deposit_events(10)).await.unwrap();
        assert!(raw.insert("account-1", 0, &deposit_events(1)).await.is_err(), "version 1 is taken");
        assert_eq!(raw.read_everything(3).await.unwrap(), 11);
        let stream = raw.read_stream("account-1", 5).await.unwrap();
        assert_eq!(stream.iter().map(|row| row.stream_version).collect::<Vec<_>>(), (6..=11).collect::<Vec<_>>());
    }
}
