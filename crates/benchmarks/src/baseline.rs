//! What a raw-sqlx baseline does, whichever database it runs on, so that one bench suite
//! (`benches/common`) measures both backends against their baselines.

use std::fmt;

use async_trait::async_trait;
use eventshop_core::NewEvent;

/// Plain SQL on a table of the store's shape: the work the store must do anyway, without
/// anything the store adds.
#[async_trait]
pub trait RawBaseline: Send + Sync + fmt::Debug {
    /// Writes `events` as the versions after `after_version` of `stream_id` in one
    /// transaction: a plain single-row INSERT for one event, one multi-row INSERT for more.
    async fn append(&self, stream_id: &str, after_version: i64, events: &[NewEvent]) -> Result<(), sqlx::Error>;

    /// Reads the rows of `stream_id` after `after_version`; returns how many.
    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<usize, sqlx::Error>;

    /// Pages through the whole table in position order; returns the rows read.
    async fn read_everything(&self, page: i64) -> Result<usize, sqlx::Error>;

    /// Replays the whole table into a one-row-per-event log, a transaction per page, as the
    /// projection runner does; returns the rows replayed.
    async fn rebuild(&self, page: i64) -> Result<usize, sqlx::Error>;
}
