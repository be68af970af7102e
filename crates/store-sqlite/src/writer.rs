//! The single writer: one task that owns every append and commits them in groups.
//!
//! SQLite lets one connection write at a time, and with `synchronous = FULL` every commit
//! costs an fsync. Appends therefore go through a queue to one task. Whatever has queued
//! up while the previous commit was being fsynced is taken at once and written in one
//! transaction, each append inside its own SAVEPOINT: an append that is refused (wrong
//! expected version, duplicate event id, an event its consumer has already handled) is
//! rolled back alone and answered with its error, the others commit together and share
//! one fsync. No timer is involved: under no load a group is a single append and commits
//! at once; under load the groups grow by themselves.
//!
//! An `append_handled` is an append like any other that also inserts its consumer's inbox
//! row inside its savepoint, so the row and the events commit or roll back together.
//!
//! The task borrows the writer connection from the one-connection writer pool for each
//! group and gives it back after the commit, so that read-model transactions and
//! snapshots, which take the same connection from the same pool, get their turn in
//! between (the pool queues its waiters fairly).
//!
//! Because the task, not the caller, runs the transaction, a caller that gives up (its
//! future is dropped) cannot leave a transaction half done: its append still commits or
//! fails as a whole, and nobody hears the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use eventshop_core::store::AppendSignal;
use eventshop_core::{
    AppendResult, EventId, NewEvent, Position, RecordedEvent, StoreError, StreamAppend, StreamId, Version,
};
use sqlx::error::ErrorKind;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::error::{SqliteStoreError, database};
use crate::recent::Recent;
use crate::rows::{self, to_sql_integer, uuid_text};

/// SQLite's default limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER
/// since 3.32; the bundled SQLite is 3.46).
const MAX_VARIABLES: usize = 32_766;
/// The parameters one event binds in the INSERT below.
const VARIABLES_PER_EVENT: usize = 10;
/// Events per multi-row INSERT: one statement per chunk instead of one per event.
const EVENTS_PER_INSERT: usize = MAX_VARIABLES / VARIABLES_PER_EVENT;

/// How many appends may wait for the writer before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 4096;

type Reply = Result<Vec<AppendResult>, StoreError>;

/// One `append_many` or `append_handled` call waiting for the writer.
struct AppendJob {
    appends: Vec<StreamAppend>,
    /// What an `append_handled` records in the inbox with its appends.
    handled: Option<Handled>,
    reply: oneshot::Sender<Reply>,
}

/// An inbox entry: `consumer` has handled the event `event_id`.
#[derive(Debug)]
pub(crate) struct Handled {
    pub(crate) consumer: String,
    pub(crate) event_id: EventId,
}

/// The handle through which the store hands appends to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<AppendJob>,
    counters: Arc<Counters>,
}

/// What the writer has committed since the store was opened: how well group commit works
/// is `appends_committed / groups_committed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed, each holding one or more appends.
    pub groups_committed: u64,
    /// `append_many` and `append_handled` calls committed.
    pub appends_committed: u64,
    /// `append_many` and `append_handled` calls handed to the writer and not yet answered.
    pub appends_waiting: u64,
}

#[derive(Debug, Default)]
struct Counters {
    groups_committed: AtomicU64,
    appends_committed: AtomicU64,
    appends_waiting: AtomicU64,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime. It stops when the last handle
    /// is dropped, after answering every append already queued.
    pub(crate) fn spawn(
        pool: SqlitePool,
        signal: Arc<AppendSignal>,
        recent: Arc<Recent>,
        max_group_commit: usize,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, queue, signal, recent, counters.clone(), max_group_commit.max(1)));
        Writer { jobs, counters }
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            groups_committed: self.counters.groups_committed.load(Ordering::Relaxed),
            appends_committed: self.counters.appends_committed.load(Ordering::Relaxed),
            appends_waiting: self.counters.appends_waiting.load(Ordering::Relaxed),
        }
    }

    /// Appends through the writer task, recording `handled` in the inbox with the events
    /// when given, and waits for the commit.
    pub(crate) async fn append(&self, appends: Vec<StreamAppend>, handled: Option<Handled>) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.counters.appends_waiting.fetch_add(1, Ordering::Relaxed);
        let _answered = Answered(&self.counters);
        let job = AppendJob { appends, handled, reply };
        self.jobs.send(job).await.map_err(|_| SqliteStoreError::WriterStopped)?;
        answer.await.map_err(|_| SqliteStoreError::WriterStopped)?
    }
}

/// Counts an append as answered when its caller stops waiting, however that happens.
struct Answered<'a>(&'a Counters);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.appends_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<AppendJob>,
    signal: Arc<AppendSignal>,
    recent: Arc<Recent>,
    counters: Arc<Counters>,
    max_group: usize,
) {
    let mut group = Vec::with_capacity(max_group);
    while queue.recv_many(&mut group, max_group).await > 0 {
        let span = tracing::debug_span!("group_commit", appends = group.len());
        match commit_group(&pool, &recent, &group).instrument(span).await {
            Ok((replies, written)) => {
                let committed = replies.iter().filter(|reply| reply.is_ok()).count() as u64;
                counters.groups_committed.fetch_add(1, Ordering::Relaxed);
                counters.appends_committed.fetch_add(committed, Ordering::Relaxed);
                // Publish what committed before anyone hears of it: callers may read their
                // writes at once, and tailing readers are woken below.
                let head = written.events.last().map(|event| event.position);
                recent.committed(written.events);
                if let Some(head) = head {
                    signal.appended(head);
                }
                for (job, reply) in group.drain(..).zip(replies) {
                    // The caller may have given up waiting; its append stands regardless.
                    let _ = job.reply.send(reply);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, appends = group.len(), "group commit failed");
                let error = Arc::new(error);
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(SqliteStoreError::GroupCommit(error.clone()).into()));
                }
            }
        }
    }
}

/// What a transaction has written so far: the events, in position order, and each written
/// stream's version after them.
#[derive(Debug, Default)]
struct Written {
    heads: HashMap<StreamId, Version>,
    events: Vec<RecordedEvent>,
}

impl Written {
    fn extend(&mut self, job: Written) {
        self.heads.extend(job.heads);
        self.events.extend(job.events);
    }
}

/// Writes a group in one transaction and returns each append's answer and what was
/// written, or the error that made the whole group fail.
async fn commit_group(
    pool: &SqlitePool,
    recent: &Recent,
    group: &[AppendJob],
) -> Result<(Vec<Reply>, Written), sqlx::Error> {
    // IMMEDIATE takes the write lock before the first read, so that the versions read below
    // cannot change before the commit, even if another process opened the file. Within this
    // process the one-connection pool already serialises writers. Serialised commits are
    // also what makes `read_all` gap-safe: positions are assigned inside the write lock, so
    // a transaction can only commit positions above every position committed before it.
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    let recorded_at = rows::now();
    let mut written = Written::default();

    // Alone, an append needs no savepoint: if it is refused, the transaction is rolled
    // back. This spares two statements on every append made without contention.
    if let [job] = group {
        let reply = write_job(&mut transaction, recent, &mut written, job, recorded_at).await;
        if reply.is_ok() {
            transaction.commit().await?;
        } else if let Err(error) = transaction.rollback().await {
            // Nothing was committed either way, so the refusal stands. (If SQLite already
            // rolled back on its own, there is no transaction left to roll back.)
            tracing::warn!(error = %error, "rolling back a refused append failed");
        }
        return Ok((vec![reply], written));
    }

    let mut replies = Vec::with_capacity(group.len());
    for job in group {
        sqlx::query("SAVEPOINT append").execute(&mut *transaction).await?;
        let reply = write_job(&mut transaction, recent, &mut written, job, recorded_at).await;
        if reply.is_err() {
            // If SQLite rolled back the whole transaction on its own (disk full, I/O error),
            // the savepoint is gone and this fails, failing the group: nothing is committed,
            // including the appends answered Ok so far.
            sqlx::query("ROLLBACK TO append").execute(&mut *transaction).await?;
        }
        // ROLLBACK TO leaves the savepoint open; RELEASE closes it either way.
        sqlx::query("RELEASE append").execute(&mut *transaction).await?;
        replies.push(reply);
    }
    transaction.commit().await?;
    Ok((replies, written))
}

/// One job inside the group's transaction: its inbox entry first, so that an event
/// already handled is refused before anything else is looked at, then its appends. What it
/// writes joins `written` only if it succeeds (a refused job is rolled back).
async fn write_job(
    connection: &mut SqliteConnection,
    recent: &Recent,
    written: &mut Written,
    job: &AppendJob,
    recorded_at: DateTime<Utc>,
) -> Reply {
    if let Some(handled) = &job.handled {
        record_handled(connection, handled, recorded_at).await?;
    }
    let mut mine = Written::default();
    let results = append_streams(connection, recent, &written.heads, &mut mine, &job.appends, recorded_at).await?;
    written.extend(mine);
    Ok(results)
}

/// Inserts the inbox row; an existing row means the consumer has handled the event.
/// Only the statement is refused: the caller rolls back to the job's savepoint.
async fn record_handled(
    connection: &mut SqliteConnection,
    handled: &Handled,
    recorded_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query("INSERT INTO inbox (consumer, event_id, handled_at) VALUES (?, ?, ?)")
        .bind(handled.consumer.as_str())
        .bind(uuid_text(handled.event_id))
        .bind(rows::timestamp(recorded_at))
        .execute(connection)
        .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if error.as_database_error().is_some_and(|error| error.kind() == ErrorKind::UniqueViolation) => {
            Err(StoreError::AlreadyHandled { consumer: handled.consumer.clone(), event_id: handled.event_id })
        }
        Err(error) => Err(database(error)),
    }
}

/// The appends of one job inside the group's transaction. `group_heads` are the versions
/// the group's earlier jobs left; `mine` collects what this job writes.
async fn append_streams(
    connection: &mut SqliteConnection,
    recent: &Recent,
    group_heads: &HashMap<StreamId, Version>,
    mine: &mut Written,
    appends: &[StreamAppend],
    recorded_at: DateTime<Utc>,
) -> Result<Vec<AppendResult>, StoreError> {
    // Check every expectation before writing, so a refusal never follows a partial write.
    let mut current_versions = Vec::with_capacity(appends.len());
    for append in appends {
        let known = group_heads.get(&append.stream_id).copied().or_else(|| recent.head(&append.stream_id));
        let mut current = match known {
            Some(version) => version,
            None => current_version(connection, recent, &append.stream_id).await?,
        };
        if !append.expected.is_satisfied_by(current) && known.is_some() && !group_heads.contains_key(&append.stream_id)
        {
            // A head remembered from an earlier commit is only refused on the database's word:
            // another process may have moved the stream since.
            current = current_version(connection, recent, &append.stream_id).await?;
        }
        if !append.expected.is_satisfied_by(current) {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: append.stream_id.clone(),
                expected: append.expected,
            });
        }
        current_versions.push(current);
    }

    let recorded_at_text = rows::timestamp(recorded_at);
    let mut results = Vec::with_capacity(appends.len());
    for (append, current) in appends.iter().zip(current_versions) {
        let mut version = current;
        let mut position = Position::START;
        for chunk in append.events.chunks(EVENTS_PER_INSERT) {
            let positions = match insert_events(connection, append, version, chunk, &recorded_at_text).await {
                Ok(positions) => positions,
                Err(error) => {
                    if error.is_conflict() {
                        recent.forget_head(&append.stream_id);
                    }
                    return Err(error);
                }
            };
            for (event, event_position) in chunk.iter().zip(&positions) {
                version += 1;
                position = *event_position;
                mine.events.push(recorded(append, event, version, position, recorded_at));
            }
        }
        mine.heads.insert(append.stream_id.clone(), version);
        results.push(AppendResult { version, position });
    }
    Ok(results)
}

/// An event as it was committed: what a reader of the database would get back.
fn recorded(
    append: &StreamAppend,
    event: &NewEvent,
    version: Version,
    position: Position,
    recorded_at: DateTime<Utc>,
) -> RecordedEvent {
    RecordedEvent {
        event_id: event.event_id,
        stream_id: append.stream_id.clone(),
        stream_version: version,
        position,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        recorded_at,
        correlation_id: event.metadata.correlation_id,
        causation_id: event.metadata.causation_id,
        acting_user: event.metadata.acting_user,
        payload: event.payload.clone(),
    }
}

/// The stream's version: its highest event version, found through the unique index on
/// (stream_id, stream_version) without reading the events.
async fn current_version(
    connection: &mut SqliteConnection,
    recent: &Recent,
    stream_id: &StreamId,
) -> Result<Version, StoreError> {
    let version: Option<i64> = sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?")
        .bind(stream_id.as_str())
        .fetch_one(connection)
        .await
        .map_err(database)?;
    let version = version.unwrap_or(0);
    let version = Version::try_from(version)
        .map_err(|_| SqliteStoreError::Corrupt(format!("stream {stream_id} is at version {version}")))?;
    // Read under the write lock, so it is the committed head.
    recent.know_head(stream_id, version);
    Ok(version)
}

/// Inserts `events` as the versions after `version` in one statement; returns their
/// positions, in the events' order.
async fn insert_events(
    connection: &mut SqliteConnection,
    append: &StreamAppend,
    version: Version,
    events: &[NewEvent],
    recorded_at: &str,
) -> Result<Vec<Position>, StoreError> {
    let last_version = version + events.len() as Version;
    let (Some(mut next_version), Some(_)) = (to_sql_integer(version), to_sql_integer(last_version)) else {
        return Err(StoreError::InvalidAppend(format!("stream {} would exceed the largest version", append.stream_id)));
    };
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, payload, \
         correlation_id, causation_id, acting_user, recorded_at) ",
    );
    insert.push_values(events, |mut row, event| {
        next_version += 1;
        let metadata = &event.metadata;
        row.push_bind(uuid_text(event.event_id))
            .push_bind(append.stream_id.as_str())
            .push_bind(next_version)
            .push_bind(event.event_type.as_str())
            .push_bind(i64::from(event.schema_version))
            .push_bind(event.payload.as_str())
            .push_bind(uuid_text(metadata.correlation_id))
            .push_bind(uuid_text(metadata.causation_id))
            .push_bind(metadata.acting_user.map(uuid_text))
            .push_bind(recorded_at);
    });
    // One statement's rows get ascending positions in the order of its VALUES, but SQLite
    // returns RETURNING rows in no promised order: sort them.
    insert.push(" RETURNING position");
    let inserted = insert.build_query_scalar::<i64>().fetch_all(&mut *connection).await;
    let mut positions = match inserted {
        Ok(positions) => positions,
        Err(error) => return Err(refusal(connection, error, append, events).await),
    };
    positions.sort_unstable();
    positions
        .into_iter()
        .map(|position| {
            u64::try_from(position)
                .map(Position)
                .map_err(|_| SqliteStoreError::CorruptEvent { position, reason: "negative position".into() }.into())
        })
        .collect()
}

/// Turns a failed INSERT into the contract's error. Only the statement failed: SQLite
/// keeps the transaction, and the caller rolls back to the append's savepoint.
async fn refusal(
    connection: &mut SqliteConnection,
    error: sqlx::Error,
    append: &StreamAppend,
    events: &[NewEvent],
) -> StoreError {
    let Some(database_error) = error.as_database_error() else {
        return database(error);
    };
    let message = database_error.message();
    match database_error.kind() {
        ErrorKind::UniqueViolation if message.contains("events.event_id") => {
            match stored_event_id(connection, events).await {
                Ok(Some(event_id)) => StoreError::DuplicateEvent(event_id),
                Ok(None) | Err(_) => database(error),
            }
        }
        // The versions were read under the write lock, so this means the file was written
        // behind this store's back; still, it is a conflict like any other.
        ErrorKind::UniqueViolation if message.contains("events.stream_id") => {
            StoreError::WrongExpectedVersion { stream_id: append.stream_id.clone(), expected: append.expected }
        }
        // CHECK (json_valid(payload)): a payload built with `from_json_unchecked` that was
        // not JSON after all.
        ErrorKind::CheckViolation => {
            StoreError::InvalidAppend(format!("an event for stream {} was refused: {message}", append.stream_id))
        }
        _ => database(error),
    }
}

/// Which of `events` is already stored: the name a duplicate-id refusal should give.
async fn stored_event_id(
    connection: &mut SqliteConnection,
    events: &[NewEvent],
) -> Result<Option<EventId>, sqlx::Error> {
    let mut select = QueryBuilder::<Sqlite>::new("SELECT event_id FROM events WHERE event_id IN (");
    let mut ids = select.separated(", ");
    for event in events {
        ids.push_bind(uuid_text(event.event_id));
    }
    select.push(") LIMIT 1");
    let stored: Option<uuid::fmt::Hyphenated> = select.build_query_scalar().fetch_optional(connection).await?;
    Ok(stored.map(uuid::fmt::Hyphenated::into_uuid))
}
