//! The PostgreSQL side of the benches: finding the server, a fresh `eventshop_bench`
//! database and schemas, and the raw-sqlx baseline that the store is measured against.
//!
//! The baseline table has the store's columns, types and unique indexes (see
//! `store-postgres/migrations`), so the two do the same index maintenance and WAL writes
//! per row. What the baseline leaves out is exactly what the store adds: the expected
//! version check, the transaction id taken for gap-safe reads, the PL/pgSQL call and the
//! decoding into the core's types.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventshop_core::NewEvent;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, FromRow};
use uuid::Uuid;

use crate::baseline::RawBaseline;

/// Where the benches find PostgreSQL. The database is created if missing.
pub const URL_VARIABLE: &str = "EVENTSHOP_BENCH_POSTGRES_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/eventshop_bench";

/// The connections of every pool the benches open, the store's and the baseline's alike:
/// the store's own default, so both sides have the same number of server processes.
pub const POOL_SIZE: u32 = 10;

/// The bench database, reachable and existing.
#[derive(Debug, Clone)]
pub struct BenchDatabase {
    pub url: String,
    /// A small pool for setup: creating schemas and tables, seeding.
    pub admin: PgPool,
}

impl BenchDatabase {
    /// Connects to the bench database, creating it first if needed. An error says why the
    /// server cannot be reached, for the caller to print before it skips its benches.
    pub async fn connect() -> Result<Self, String> {
        let url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let options =
            PgConnectOptions::from_str(&url).map_err(|error| format!("{URL_VARIABLE} is not a URL: {error}"))?;
        let database = options.get_database().unwrap_or("eventshop_bench").to_owned();
        create_database_if_missing(&options, &database).await?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|error| format!("cannot connect to {database}: {error}"))?;
        Ok(BenchDatabase { url, admin })
    }

    /// Drops every schema whose name starts with `prefix`, left over from an earlier run.
    pub async fn drop_schemas(&self, prefix: &str) -> Result<(), sqlx::Error> {
        let schemas: Vec<String> =
            sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
                .bind(prefix)
                .fetch_all(&self.admin)
                .await?;
        for schema in schemas {
            sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE")).execute(&self.admin).await?;
        }
        Ok(())
    }

    /// A pool of [`POOL_SIZE`] connections whose `search_path` is `schema`.
    pub async fn pool_in(&self, schema: &str) -> Result<PgPool, sqlx::Error> {
        let options = PgConnectOptions::from_str(&self.url)?.options([("search_path", schema)]);
        PgPoolOptions::new().max_connections(POOL_SIZE).connect_with(options).await
    }

    /// Runs `sql` (several statements allowed) for setup.
    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&self.admin).await.map(drop)
    }
}

/// Forces a checkpoint, so that the next bench does not share the disk with the writes
/// of one that a seeding (or the bench before) set off: PostgreSQL spreads a checkpoint
/// over minutes, and its writes slow every fsync meanwhile. Needs a superuser (or
/// `pg_checkpoint`); without one it does nothing and says so.
pub async fn checkpoint(pool: &PgPool) {
    if let Err(error) = sqlx::raw_sql("CHECKPOINT").execute(pool).await {
        eprintln!("CHECKPOINT refused ({error}); figures may include checkpoint writes");
    }
}

async fn create_database_if_missing(options: &PgConnectOptions, database: &str) -> Result<(), String> {
    let unreachable = |error: sqlx::Error| format!("PostgreSQL is not reachable: {error}");
    let maintenance = options.clone().database("postgres");
    let mut connection = tokio::time::timeout(Duration::from_secs(5), maintenance.connect())
        .await
        .map_err(|_| "PostgreSQL did not answer within 5 s".to_owned())?
        .map_err(unreachable)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&mut connection)
        .await
        .map_err(unreachable)?;
    if !exists {
        let quoted = database.replace('"', "\"\"");
        // Two bench runs starting at once may both try: the loser's error is harmless.
        let _ = sqlx::raw_sql(&format!("CREATE DATABASE \"{quoted}\"")).execute(&mut connection).await;
    }
    connection.close().await.map_err(unreachable)
}

/// The DDL of a baseline table `name`: the store's `events` columns and unique indexes.
pub fn raw_table_sql(name: &str) -> String {
    format!(
        "CREATE TABLE {name} (
            position        bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
            event_id        uuid        NOT NULL UNIQUE,
            stream_id       text        NOT NULL,
            stream_version  bigint      NOT NULL CHECK (stream_version > 0),
            event_type      text        NOT NULL,
            schema_version  integer     NOT NULL,
            payload         json        NOT NULL,
            correlation_id  uuid        NOT NULL,
            causation_id    uuid        NOT NULL,
            acting_user     uuid        NULL,
            recorded_at     timestamptz NOT NULL,
            UNIQUE (stream_id, stream_version)
        )"
    )
}

/// Plain SQL against a table of the store's shape.
#[derive(Debug, Clone)]
pub struct RawEvents {
    pool: PgPool,
    insert_one: String,
    insert_many: String,
    read_page: String,
    read_stream: String,
}

/// A row as a hand-written reader would fetch it: every column, payload as text.
#[derive(Debug, Clone, FromRow)]
pub struct RawRow {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub acting_user: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

const COLUMNS: &str = "event_id, stream_id, stream_version, event_type, schema_version, payload, \
                       correlation_id, causation_id, acting_user, recorded_at";
const SELECT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, schema_version, \
                              payload::text AS payload, correlation_id, causation_id, acting_user, recorded_at";

impl RawEvents {
    /// Statements against `table` (schema-qualified if the pool's search path does not
    /// reach it).
    pub fn new(pool: PgPool, table: &str) -> Self {
        RawEvents {
            pool,
            insert_one: format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10)"
            ),
            insert_many: format!(
                "INSERT INTO {table} ({COLUMNS})
                 SELECT event_id, $2, $3 + ordinality, event_type, schema_version, payload::json,
                        correlation_id, causation_id, acting_user, $9
                   FROM unnest($1::uuid[], $4::text[], $5::int4[], $6::text[], $7::uuid[], $8::uuid[], $10::uuid[])
                        WITH ORDINALITY AS n(event_id, event_type, schema_version, payload,
                                             correlation_id, causation_id, acting_user, ordinality)"
            ),
            read_page: format!("SELECT {SELECT_COLUMNS} FROM {table} WHERE position > $1 ORDER BY position LIMIT $2"),
            read_stream: format!(
                "SELECT {SELECT_COLUMNS} FROM {table} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"
            ),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One event as version `version` of `stream_id`: one INSERT, its own transaction.
    pub async fn insert_one(&self, stream_id: &str, version: i64, event: &NewEvent) -> Result<(), sqlx::Error> {
        sqlx::query(&self.insert_one)
            .bind(event.event_id)
            .bind(stream_id)
            .bind(version)
            .bind(&event.event_type)
            .bind(event.schema_version as i32)
            .bind(event.payload.as_str())
            .bind(event.metadata.correlation_id)
            .bind(event.metadata.causation_id)
            .bind(event.metadata.acting_user)
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// `events` as the versions after `after_version` of `stream_id`: one multi-row
    /// `INSERT … SELECT FROM unnest(…)`, its own transaction.
    pub async fn insert_many(
        &self,
        stream_id: &str,
        after_version: i64,
        events: &[NewEvent],
    ) -> Result<(), sqlx::Error> {
        let column = |f: fn(&NewEvent) -> Uuid| events.iter().map(f).collect::<Vec<_>>();
        sqlx::query(&self.insert_many)
            .bind(column(|event| event.event_id))
            .bind(stream_id)
            .bind(after_version)
            .bind(events.iter().map(|event| event.event_type.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|event| event.schema_version as i32).collect::<Vec<_>>())
            .bind(events.iter().map(|event| event.payload.as_str()).collect::<Vec<_>>())
            .bind(column(|event| event.metadata.correlation_id))
            .bind(column(|event| event.metadata.causation_id))
            .bind(Utc::now())
            .bind(events.iter().map(|event| event.metadata.acting_user).collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Up to `limit` rows after `after` in position order.
    pub async fn read_page(&self, after: i64, limit: i64) -> Result<Vec<RawRow>, sqlx::Error> {
        sqlx::query_as(&self.read_page).bind(after).bind(limit).fetch_all(&self.pool).await
    }

    /// Every row of `stream_id` after `after_version`, in version order.
    pub async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<RawRow>, sqlx::Error> {
        sqlx::query_as(&self.read_stream).bind(stream_id).bind(after_version).fetch_all(&self.pool).await
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

    /// The projection runner's work done by hand: empty `raw_event_log`, then per page of
    /// `page` events one transaction with one INSERT per event and the checkpoint upsert.
    /// Returns the events replayed. Needs [`RAW_REBUILD_TABLES_SQL`] in the pool's schema.
    pub async fn rebuild(&self, page: i64) -> Result<usize, sqlx::Error> {
        sqlx::query("TRUNCATE raw_event_log").execute(&self.pool).await?;
        let mut after = 0;
        let mut total = 0;
        loop {
            let rows = self.read_page(after, page).await?;
            let Some(last) = rows.last() else {
                return Ok(total);
            };
            let mut tx = self.pool.begin().await?;
            for row in &rows {
                sqlx::query("INSERT INTO raw_event_log (position, stream_id, event_type) VALUES ($1, $2, $3)")
                    .bind(row.position)
                    .bind(&row.stream_id)
                    .bind(&row.event_type)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO raw_checkpoints (name, position) VALUES ($1, $2) \
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
}

/// The tables of [`RawEvents::rebuild`].
pub const RAW_REBUILD_TABLES_SQL: &str = "
    CREATE TABLE IF NOT EXISTS raw_event_log (position bigint PRIMARY KEY, stream_id text NOT NULL, event_type text NOT NULL);
    CREATE TABLE IF NOT EXISTS raw_checkpoints (name text PRIMARY KEY, position bigint NOT NULL);";

#[async_trait]
impl RawBaseline for RawEvents {
    async fn append(&self, stream_id: &str, after_version: i64, events: &[NewEvent]) -> Result<(), sqlx::Error> {
        match events {
            [event] => self.insert_one(stream_id, after_version + 1, event).await,
            events => self.insert_many(stream_id, after_version, events).await,
        }
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
