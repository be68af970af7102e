//! Upcasting: events are stored as they were written, and a chain of small functions
//! lifts an old schema version to the current one whenever an event is read or replayed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::codec::CodecError;

type Lift = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// The upcasters of one event enum, keyed by event type and the version they lift from.
///
/// The current schema version of an event type is one more than the highest version an
/// upcaster lifts from (1 when it has none), so adding an upcaster is all it takes to
/// move a type to its next version.
#[derive(Clone, Default)]
pub struct Upcasters {
    lifts: HashMap<(String, u32), Lift>,
    current: HashMap<String, u32>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcasters").field("current", &self.current).finish_non_exhaustive()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the lift of `event_type` payloads from `from_version` to `from_version + 1`.
    pub fn add(
        mut self,
        event_type: &str,
        from_version: u32,
        lift: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        assert!(from_version >= 1, "schema versions start at 1");
        self.lifts.insert((event_type.to_owned(), from_version), Arc::new(lift));
        let current = self.current.entry(event_type.to_owned()).or_insert(1);
        *current = (*current).max(from_version + 1);
        self
    }

    /// The version that events of this type are written with today.
    pub fn current_version(&self, event_type: &str) -> u32 {
        self.current.get(event_type).copied().unwrap_or(1)
    }

    /// Lifts `payload`, stored at `version`, to the current version of its type.
    pub fn upcast(&self, event_type: &str, version: u32, mut payload: Value) -> Result<Value, CodecError> {
        let current = self.current_version(event_type);
        if version > current {
            return Err(CodecError::NewerSchema { event_type: event_type.to_owned(), version, current });
        }
        for from in version..current {
            let lift = self
                .lifts
                .get(&(event_type.to_owned(), from))
                .ok_or_else(|| CodecError::MissingUpcaster { event_type: event_type.to_owned(), from })?;
            payload = lift(payload);
        }
        Ok(payload)
    }
}
