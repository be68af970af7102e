//! Connecting a service to its own schema: the pool, the schema and the migrations.
//!
//! Services share a PostgreSQL database but never a table: each gets a schema, and the
//! pool puts it in `search_path` for every connection, so the SQL in this crate and in
//! the migrations never names a schema and one migration set serves every service.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tracing::instrument;

use crate::error::ConnectError;

/// Connections per pool unless told otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// Serialises `CREATE SCHEMA IF NOT EXISTS` between instances starting at once: run
/// concurrently it can fail on the catalog's unique index instead of doing nothing.
/// An arbitrary constant ("eventshp" in ASCII); advisory locks are per database.
const CREATE_SCHEMA_LOCK: i64 = 0x6576_656e_7473_6870;

/// The tables, triggers and functions of a service's schema. sqlx's migrator keeps its
/// ledger (`_sqlx_migrations`) in the same schema and takes its own advisory lock, so
/// instances starting together apply each migration once.
static MIGRATOR: Migrator = sqlx::migrate!();

/// A PostgreSQL schema name that can be spliced into SQL unquoted: lowercase ASCII
/// letters, digits and underscores, not starting with a digit, at most 63 bytes, and not
/// in the `pg_` namespace that PostgreSQL reserves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1).
    const MAX_LENGTH: usize = 63;

    pub fn parse(name: &str) -> Result<Self, ConnectError> {
        let invalid = |reason| Err(ConnectError::InvalidSchemaName { name: name.to_owned(), reason });
        let Some(first) = name.chars().next() else {
            return invalid("it is empty");
        };
        if name.len() > Self::MAX_LENGTH {
            return invalid("it is longer than 63 bytes");
        }
        if !(first.is_ascii_lowercase() || first == '_') {
            return invalid("it must start with a lowercase letter or an underscore");
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return invalid("it may hold only lowercase letters, digits and underscores");
        }
        if name.starts_with("pg_") {
            return invalid("names starting with pg_ are reserved by PostgreSQL");
        }
        Ok(SchemaName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SchemaName {
    type Err = ConnectError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        SchemaName::parse(name)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How big a pool to open and how long to wait for one of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: DEFAULT_POOL_SIZE, acquire_timeout: Duration::from_secs(30) }
    }
}

/// Opens a pool whose connections all use `schema`, creating the schema if needed and
/// bringing it up to date with this crate's migrations.
///
/// Several instances may call this at once: schema creation and each migration run under
/// advisory locks.
#[instrument(skip_all, fields(schema = schema))]
pub async fn connect_schema(url: &str, schema: &str, settings: &PoolSettings) -> Result<PgPool, ConnectError> {
    let schema = SchemaName::parse(schema)?;
    let options =
        PgConnectOptions::from_str(url).map_err(ConnectError::InvalidUrl)?.options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(ConnectError::Connect)?;
    create_schema(&pool, &schema).await?;
    MIGRATOR.run(&pool).await.map_err(|source| ConnectError::Migrate { schema: schema.clone(), source })?;
    Ok(pool)
}

async fn create_schema(pool: &PgPool, schema: &SchemaName) -> Result<(), ConnectError> {
    // Several statements in one simple query run as one implicit transaction, which holds
    // the advisory lock until the schema exists. The name was checked to be a plain
    // identifier, so it can be spliced in: DDL takes no bind parameters.
    let sql = format!("SELECT pg_advisory_xact_lock({CREATE_SCHEMA_LOCK}); CREATE SCHEMA IF NOT EXISTS {schema};");
    match sqlx::raw_sql(&sql).execute(pool).await {
        Ok(_) => Ok(()),
        Err(source) => Err(ConnectError::CreateSchema { schema: schema.clone(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_schema_names() {
        for name in ["orders", "catalog_v2", "_private", "test_0192abcdef"] {
            assert_eq!(SchemaName::parse(name).map(|schema| schema.to_string()).ok().as_deref(), Some(name));
        }
    }

    #[test]
    fn anything_needing_quotes_is_refused() {
        let too_long = "a".repeat(64);
        for name in ["", "Orders", "9lives", "pg_catalog", "orders;drop", "a b", "a\"b", "café", too_long.as_str()] {
            assert!(SchemaName::parse(name).is_err(), "{name:?} was accepted");
        }
    }
}
