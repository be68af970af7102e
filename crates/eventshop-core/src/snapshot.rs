//! Snapshots: an aggregate's state saved at a version, so loading reads only the events
//! after it.

use serde::{Deserialize, Serialize};

use crate::envelope::{Payload, StreamId, Version};

/// An aggregate state as of `version` of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream_id: StreamId,
    pub version: Version,
    /// The aggregate's [`SNAPSHOT_VERSION`](crate::Aggregate::SNAPSHOT_VERSION) when taken;
    /// a snapshot of another shape is ignored and the stream replayed in full.
    pub schema_version: u32,
    pub state: Payload,
}

/// When a command handler takes a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotPolicy {
    /// Never: every load replays the whole stream.
    #[default]
    Never,
    /// Whenever an append carries the stream past a multiple of this many events.
    Every(u64),
}

impl SnapshotPolicy {
    /// Whether moving a stream from `before` to `after` calls for a snapshot.
    pub fn is_due(self, before: Version, after: Version) -> bool {
        match self {
            SnapshotPolicy::Never => false,
            SnapshotPolicy::Every(0) => false,
            SnapshotPolicy::Every(n) => before / n != after / n,
        }
    }

    pub fn is_enabled(self) -> bool {
        matches!(self, SnapshotPolicy::Every(n) if n > 0)
    }
}
