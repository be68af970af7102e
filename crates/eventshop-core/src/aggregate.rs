//! The aggregate contract: decisions are pure functions of state and command, and state is
//! a left fold of events.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::DomainEvent;

/// A consistency boundary, stored as one event stream.
///
/// `decide` holds all the business rules and may refuse a command; `apply` only records
/// what an event says happened, so replaying history can never fail.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stream category, e.g. `product`: streams are named `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// Bumped when the state's shape changes, so that old snapshots are ignored.
    const SNAPSHOT_VERSION: u32 = 1;

    type Command: Send + Sync;
    type Event: DomainEvent;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events that `command` causes in this state, or why it is refused.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`. Cannot fail.
    fn apply(self, event: &Self::Event) -> Self;

    /// The state after `events`, in order.
    fn apply_all<'a>(self, events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        events.into_iter().fold(self, Self::apply)
    }
}
