//! How a store is opened: durability, pool sizes and group-commit limits.
//!
//! Kept apart from the store so that a service's configuration can build one without
//! touching sqlx: these types name the choices eventshop allows and nothing more.

use std::time::Duration;

use sqlx::sqlite::SqliteSynchronous;

/// When a commit is reported done, relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged: a crash of the process or of the
    /// operating system loses no acknowledged append. The default.
    #[default]
    Full,
    /// In WAL mode the WAL is fsynced only at checkpoints: an acknowledged append survives a
    /// crash of the process, but a power loss or kernel panic may undo the last commits.
    /// Faster; the database file is never corrupted either way.
    Normal,
}

impl Synchronous {
    pub(crate) fn to_sqlx(self) -> SqliteSynchronous {
        match self {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        }
    }
}

/// Options of [`SqliteEventStore::open`](crate::SqliteEventStore::open).
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    /// Durability of a commit; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// How long a connection waits for a lock held by another process before it fails with
    /// SQLITE_BUSY. Within this process writes are serialised and never wait on SQLite.
    pub busy_timeout: Duration,
    /// Read-only connections serving reads; in WAL mode they never block the writer.
    pub reader_connections: u32,
    /// The most appends the writer commits in one transaction. 1 turns group commit off:
    /// every append is then its own transaction and its own fsync.
    pub max_group_commit: usize,
    /// How long a write waits for the writer connection, e.g. while a long read-model
    /// transaction holds it, before it fails.
    pub writer_acquire_timeout: Duration,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            reader_connections: 4,
            max_group_commit: 256,
            writer_acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl SqliteStoreOptions {
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    pub fn with_reader_connections(mut self, reader_connections: u32) -> Self {
        self.reader_connections = reader_connections.max(1);
        self
    }

    pub fn with_max_group_commit(mut self, max_group_commit: usize) -> Self {
        self.max_group_commit = max_group_commit.max(1);
        self
    }

    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    pub fn with_writer_acquire_timeout(mut self, writer_acquire_timeout: Duration) -> Self {
        self.writer_acquire_timeout = writer_acquire_timeout;
        self
    }
}
