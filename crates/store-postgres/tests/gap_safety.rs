//! The gap-safety proof on PostgreSQL, harder than the conformance suite's: many writers
//! commit single events and batches to their own and shared streams in whatever order the
//! server picks, some of them fail after taking positions (lost races, duplicate event
//! ids) and so leave holes for ever, and a reader tails the global order meanwhile,
//! resuming each time after the last position it saw. It must see every committed event
//! exactly once, in strictly increasing position order, each stream in version order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use eventshop_core::{
    EventId, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamAppend, StreamId,
};
use store_conformance::fixtures::events;
use store_postgres::PgEventStore;
use store_postgres::testing::fresh_store;
use uuid::Uuid;

const WRITERS: usize = 8;
const APPENDS_PER_WRITER: usize = 120;
const SHARED_STREAMS: usize = 3;

/// A small deterministic generator (xorshift64), so that a failing run can be repeated.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// What one writer got committed.
#[derive(Default)]
struct Committed {
    events: Vec<EventId>,
    holes_made: usize,
}

async fn write(store: PgEventStore, writer: usize, shared: Vec<StreamId>) -> Committed {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1));
    let own = StreamId::new("own", Uuid::now_v7());
    let mut own_version = 0;
    let mut committed = Committed::default();
    for i in 0..APPENDS_PER_WRITER {
        let label = format!("{writer}.{i}");
        let shared_stream = &shared[dice.roll(SHARED_STREAMS as u64) as usize];
        match dice.roll(10) {
            // Single events and batches to the writer's own stream: these always succeed.
            0..=5 => {
                let batch = events(&label, if i % 2 == 0 { 1 } else { 2 + dice.roll(5) as usize });
                let ids = ids(&batch);
                let appended = store.append(&own, ExpectedVersion::after(own_version), batch).await;
                own_version = appended.expect("own stream").version;
                committed.events.extend(ids);
            }
            // Busy shared streams, appended to whatever their version.
            6 => {
                let batch = events(&label, 1);
                let ids = ids(&batch);
                store.append(shared_stream, ExpectedVersion::Any, batch).await.expect("any version");
                committed.events.extend(ids);
            }
            // Read-then-append races on shared streams: a loser at the unique index has
            // taken positions that stay unused.
            7 => {
                let version = store.read_stream(shared_stream, 0).await.expect("read").len() as u64;
                let batch = events(&label, 1 + dice.roll(3) as usize);
                let ids = ids(&batch);
                match store.append(shared_stream, ExpectedVersion::after(version), batch).await {
                    Ok(_) => committed.events.extend(ids),
                    Err(StoreError::WrongExpectedVersion { .. }) => committed.holes_made += 1,
                    Err(other) => panic!("a lost race must be a conflict: {other}"),
                }
            }
            // Several streams at once.
            8 => {
                let (mine, theirs) = (events(&label, 2), events(&format!("{label}.shared"), 1));
                let ids: Vec<_> = ids(&mine).into_iter().chain(ids(&theirs)).collect();
                let results = store
                    .append_many(vec![
                        StreamAppend {
                            stream_id: own.clone(),
                            expected: ExpectedVersion::after(own_version),
                            events: mine,
                        },
                        StreamAppend {
                            stream_id: shared_stream.clone(),
                            expected: ExpectedVersion::Any,
                            events: theirs,
                        },
                    ])
                    .await
                    .expect("append_many");
                own_version = results[0].version;
                committed.events.extend(ids);
            }
            // A batch whose last event is already stored: it takes positions, then rolls
            // back. Always makes holes.
            _ => {
                let Some(&stored) = committed.events.first() else { continue };
                let mut batch = events(&label, 1 + dice.roll(3) as usize);
                let mut duplicate: NewEvent = batch[0].clone();
                duplicate.event_id = stored;
                batch.push(duplicate);
                let refused = store.append(&own, ExpectedVersion::after(own_version), batch).await;
                assert!(matches!(refused, Err(StoreError::DuplicateEvent(id)) if id == stored), "got {refused:?}");
                committed.holes_made += 1;
            }
        }
    }
    committed
}

fn ids(events: &[NewEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_sees_every_committed_event_once_and_in_order() {
    let Some(store) = fresh_store().await else { return };
    let shared: Vec<_> = (0..SHARED_STREAMS).map(|_| StreamId::new("shared", Uuid::now_v7())).collect();

    let writers: Vec<_> =
        (0..WRITERS).map(|writer| tokio::spawn(write(store.clone(), writer, shared.clone()))).collect();

    let (done_sender, mut done) = tokio::sync::watch::channel(false);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut after = Position::START;
            let mut reads = 0_usize;
            loop {
                // Read `done` before reading events: once the writers are done, one empty
                // read proves the reader has caught up.
                let finished = *done.borrow_and_update();
                let page = store.read_all(after, 100).await.expect("read_all");
                reads += 1;
                match page.last() {
                    Some(last) => after = last.position,
                    None if finished => return (seen, reads),
                    None => {
                        let _ = tokio::time::timeout(Duration::from_millis(2), done.changed()).await;
                    }
                }
                seen.extend(page);
            }
        })
    };

    let mut committed = HashSet::new();
    let mut holes_made = 0;
    for writer in futures::future::join_all(writers).await {
        let writer = writer.expect("writer");
        committed.extend(writer.events);
        holes_made += writer.holes_made;
    }
    done_sender.send(true).expect("the reader is alive");
    let (seen, reads) =
        tokio::time::timeout(Duration::from_secs(120), reader).await.expect("the reader catches up").expect("reader");

    assert!(seen.windows(2).all(|pair| pair[0].position < pair[1].position), "strictly increasing positions");
    let seen_ids: Vec<_> = seen.iter().map(|event| event.event_id).collect();
    let distinct: HashSet<_> = seen_ids.iter().copied().collect();
    assert_eq!(distinct.len(), seen_ids.len(), "no event is seen twice");
    let missed = committed.difference(&distinct).count();
    let phantom = distinct.difference(&committed).count();
    assert_eq!((missed, phantom), (0, 0), "every committed event is seen, and nothing else");
    let mut versions: HashMap<&StreamId, u64> = HashMap::new();
    for event in &seen {
        let last = versions.entry(&event.stream_id).or_insert(0);
        assert_eq!(event.stream_version, *last + 1, "stream {} is read out of version order", event.stream_id);
        *last = event.stream_version;
    }

    // The test proves something only if there were holes to get wrong.
    let head = seen.last().map_or(0, |event| event.position.0);
    assert!(holes_made > 0 && head > seen.len() as u64, "no holes: head {head}, {} events", seen.len());
    assert!(reads > 10, "the reader tailed the writers rather than reading once at the end ({reads} reads)");
    eprintln!(
        "{} events in {reads} reads, {} positions unused by {holes_made} failed appends",
        seen.len(),
        head - seen.len() as u64
    );
}
