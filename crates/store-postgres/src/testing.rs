//! Test helpers: a fresh, migrated schema in a real PostgreSQL for every test.
//!
//! Tests reach PostgreSQL at `EVENTSHOP_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/eventshop_test`); the database is created if
//! missing. Where PostgreSQL cannot be reached the helpers return `None` and the test
//! skips, saying so on stderr; in CI (`CI=true`) they panic instead, because there every
//! PostgreSQL test must run. Compiled into the library so that other crates' tests (the
//! conformance suite, the services) can use it.
//!
//! A test cannot drop its schema when it ends (there is no async drop), so each test
//! process sweeps away the schemas of runs more than an hour old when it first connects.
//! Schema names carry their creation time: `test_<UUID v7>`.

use std::error::Error as StdError;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::error::ErrorKind;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::connect::{PoolSettings, connect_schema};
use crate::{PgEventStore, PgReadModels};

pub const TEST_URL_VARIABLE: &str = "EVENTSHOP_TEST_POSTGRES_URL";
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/eventshop_test";

/// PostgreSQL's code for "database already exists".
const DUPLICATE_DATABASE: &str = "42P04";

/// Test schemas older than this are left over from earlier runs.
const LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// The database is prepared once per test process; doing it again for every test would
/// only cost connections.
static DATABASE_READY: OnceCell<String> = OnceCell::const_new();

/// The URL of the test database, created if missing; `None` if PostgreSQL is not
/// reachable outside CI.
pub async fn test_database_url() -> Option<String> {
    let url = std::env::var(TEST_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned());
    let ready = DATABASE_READY.get_or_try_init(|| async { prepare_database(&url).await.map(|()| url.clone()) }).await;
    match ready {
        Ok(url) => Some(url.clone()),
        Err(error) => {
            let url = redacted(&url);
            eventshop_core::testing::skip_unless_ci(format!("PostgreSQL not reachable at {url}: {error}"))
        }
    }
}

/// A pool on a new, migrated schema `test_<uuid>` of the test database.
pub async fn fresh_pool() -> Option<PgPool> {
    let url = test_database_url().await?;
    let schema = format!("test_{}", Uuid::now_v7().simple());
    // PostgreSQL answered a moment ago, so failing now is a bug to report, not a skip.
    match connect_schema(&url, &schema, &PoolSettings::default()).await {
        Ok(pool) => Some(pool),
        Err(error) => panic!("could not prepare schema {schema} for a test: {}", error_chain(&error)),
    }
}

/// An event store in a fresh schema.
pub async fn fresh_store() -> Option<PgEventStore> {
    fresh_pool().await.map(PgEventStore::from_pool)
}

/// Read models in a fresh schema.
pub async fn fresh_read_models() -> Option<PgReadModels> {
    fresh_pool().await.map(PgReadModels::from_pool)
}

/// An event store and read models sharing one fresh schema and pool.
pub async fn fresh_store_and_read_models() -> Option<(PgEventStore, PgReadModels)> {
    let pool = fresh_pool().await?;
    Some((PgEventStore::from_pool(pool.clone()), PgReadModels::from_pool(pool)))
}

/// Creates the URL's database unless it exists, through the `postgres` database, then
/// drops the schemas that earlier test runs left in it.
async fn prepare_database(url: &str) -> Result<(), String> {
    let options = PgConnectOptions::from_str(url).map_err(|error| error_chain(&error))?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    // Fail fast: a pool would keep retrying a refused connection until its timeout.
    let administration = options.clone().database("postgres");
    let mut connection = tokio::time::timeout(Duration::from_secs(5), administration.connect())
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
        .map_err(|error| error_chain(&error))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(&database)
        .fetch_one(&mut connection)
        .await
        .map_err(|error| error_chain(&error))?;
    if !exists {
        let create = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        if let Err(error) = sqlx::raw_sql(&create).execute(&mut connection).await {
            // Another test process may have created it in the meantime: either code says so.
            let raced = error.as_database_error().is_some_and(|database_error| {
                database_error.code().as_deref() == Some(DUPLICATE_DATABASE)
                    || database_error.kind() == ErrorKind::UniqueViolation
            });
            if !raced {
                return Err(error_chain(&error));
            }
        }
    }
    let _ = connection.close().await;

    let mut connection = options.connect().await.map_err(|error| error_chain(&error))?;
    drop_leftover_schemas(&mut connection).await;
    let _ = connection.close().await;
    Ok(())
}

/// Best effort: a schema that cannot be dropped now (another process is dropping it, or
/// still using it) is tried again by the next run.
async fn drop_leftover_schemas(connection: &mut PgConnection) {
    let Ok(names) =
        sqlx::query_scalar::<_, String>("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'test\\_%'")
            .fetch_all(&mut *connection)
            .await
    else {
        return;
    };
    let Some(cutoff) = SystemTime::now().checked_sub(LEFTOVER_AGE) else {
        return;
    };
    for name in names {
        let Some(uuid) = name.strip_prefix("test_").and_then(|id| Uuid::try_parse(id).ok()) else {
            continue;
        };
        // Only names this module made: the re-rendered name is a plain identifier.
        let created = uuid.get_timestamp().map(|timestamp| {
            let (seconds, nanoseconds) = timestamp.to_unix();
            UNIX_EPOCH + Duration::new(seconds, nanoseconds)
        });
        if name == format!("test_{}", uuid.simple()) && created.is_some_and(|created| created < cutoff) {
            let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut *connection).await;
        }
    }
}

/// The URL without its password, fit for a message.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

fn error_chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Many errors repeat their source in their own message; say each thing once.
        let cause_message = cause.to_string();
        if !message.contains(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(redacted("postgres://app:secret@db:5432/shop"), "postgres://app:***@db:5432/shop");
        assert_eq!(redacted("postgres://postgres@127.0.0.1/shop"), "postgres://postgres@127.0.0.1/shop");
    }
}
