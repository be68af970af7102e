//! What this process committed last, kept in memory: the tail of the global order and the
//! head version of the streams it wrote.
//!
//! Most reads of an event store in a running shop are tails: a consumer or a live view
//! woken by an append reads the events after its position, and a command handler whose
//! state is cached asks for the events after the version it has. Served by SQLite, each of
//! those is a query on a reader connection (a hand-off to that connection's thread and
//! back), and they outnumber appends several times over. The writer knows exactly what it
//! has just committed, so it records it here before it answers or wakes anyone, and those
//! reads are answered from memory.
//!
//! Only what is certain is answered from memory; anything else goes to the database:
//! - the tail holds one unbroken run of positions. A commit whose first position does not
//!   follow the last one held (another process wrote the file in between) starts a new
//!   run, so the tail never hides an event;
//! - a stream's head is only known for streams this process wrote or looked up under the
//!   write lock. A head gone stale because another process appended to the same stream is
//!   caught where it matters: that stream's next append here collides with the unique
//!   `(stream_id, stream_version)` index, which refuses it as a conflict and forgets the
//!   head (see `writer.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use eventshop_core::{Position, RecordedEvent, StreamId, Version};

/// Events kept in the tail; a subscriber further behind reads the database.
const TAIL_CAPACITY: usize = 8192;
/// Stream heads kept; past this the map is emptied and refills from the database.
const HEADS_CAPACITY: usize = 200_000;

#[derive(Debug, Default)]
pub(crate) struct Recent {
    tail: Mutex<VecDeque<RecordedEvent>>,
    heads: Mutex<HashMap<StreamId, Version>>,
}

impl Recent {
    /// Records a committed group: `events` in position order, and the new head of every
    /// stream they belong to.
    pub(crate) fn committed(&self, events: Vec<RecordedEvent>) {
        {
            let mut heads = lock(&self.heads);
            if heads.len() > HEADS_CAPACITY {
                heads.clear();
            }
            for event in &events {
                heads.insert(event.stream_id.clone(), event.stream_version);
            }
        }
        let mut tail = lock(&self.tail);
        for event in events {
            if tail.back().is_some_and(|last| last.position.0 + 1 != event.position.0) {
                tail.clear();
            }
            if tail.len() == TAIL_CAPACITY {
                tail.pop_front();
            }
            tail.push_back(event);
        }
    }

    /// Up to `limit` events after `after`, if the tail holds the next one; `None` when
    /// only the database can tell.
    pub(crate) fn read_all(&self, after: Position, limit: usize) -> Option<Vec<RecordedEvent>> {
        let tail = lock(&self.tail);
        let first = tail.front()?.position.0;
        let last = tail.back()?.position.0;
        if after.0 + 1 < first || after.0 >= last {
            return None;
        }
        let start = usize::try_from(after.0 + 1 - first).ok()?;
        Some(tail.range(start..).take(limit).cloned().collect())
    }

    /// The stream's version, if this process knows it.
    pub(crate) fn head(&self, stream_id: &StreamId) -> Option<Version> {
        lock(&self.heads).get(stream_id).copied()
    }

    /// Remembers a head read under the write lock.
    pub(crate) fn know_head(&self, stream_id: &StreamId, version: Version) {
        lock(&self.heads).insert(stream_id.clone(), version);
    }

    /// Forgets a head found stale.
    pub(crate) fn forget_head(&self, stream_id: &StreamId) {
        lock(&self.heads).remove(stream_id);
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the maps stay usable
/// (at worst a head is missing, which sends a read to the database).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use eventshop_core::Payload;
    use uuid::Uuid;

    use super::*;

    fn event(position: u64, stream: &str, version: Version) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::now_v7(),
            stream_id: StreamId::from_raw(stream.to_owned()),
            stream_version: version,
            position: Position(position),
            event_type: "Noted".to_owned(),
            schema_version: 1,
            recorded_at: Utc::now(),
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            acting_user: None,
            payload: Payload::from_json_unchecked("{}".to_owned()),
        }
    }

    fn positions(events: Option<Vec<RecordedEvent>>) -> Option<Vec<u64>> {
        events.map(|events| events.iter().map(|event| event.position.0).collect())
    }

    #[test]
    fn the_tail_answers_only_what_it_holds() {
        let recent = Recent::default();
        assert_eq!(positions(recent.read_all(Position(0), 10)), None, "empty: ask the database");
        recent.committed(vec![event(5, "a-1", 1), event(6, "a-1", 2), event(7, "b-1", 1)]);
        assert_eq!(positions(recent.read_all(Position(4), 10)), Some(vec![5, 6, 7]));
        assert_eq!(positions(recent.read_all(Position(5), 1)), Some(vec![6]));
        assert_eq!(positions(recent.read_all(Position(3), 10)), None, "position 4 is not held");
        assert_eq!(positions(recent.read_all(Position(7), 10)), None, "nothing newer known: ask the database");
        assert_eq!(recent.head(&StreamId::from_raw("a-1".to_owned())), Some(2));
    }

    #[test]
    fn a_gap_starts_a_new_run() {
        let recent = Recent::default();
        recent.committed(vec![event(1, "a-1", 1), event(2, "a-1", 2)]);
        // Position 3 was written by another process.
        recent.committed(vec![event(4, "a-1", 4)]);
        assert_eq!(positions(recent.read_all(Position(2), 10)), None);
        assert_eq!(positions(recent.read_all(Position(3), 10)), Some(vec![4]));
    }

    #[test]
    fn the_tail_keeps_the_newest() {
        let recent = Recent::default();
        let events = (1..=(TAIL_CAPACITY as u64 + 10)).map(|position| event(position, "a-1", position)).collect();
        recent.committed(events);
        assert_eq!(positions(recent.read_all(Position(5), 1)), None, "dropped from the tail");
        let newest = TAIL_CAPACITY as u64 + 9;
        assert_eq!(positions(recent.read_all(Position(newest), 10)), Some(vec![newest + 1]));
    }
}
