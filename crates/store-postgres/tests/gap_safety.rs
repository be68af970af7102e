//! The gap-safety proof on PostgreSQL, harder than the conformance suite's: many writers
//! commit single events and batches to their own and shared streams in whatever order the
//! server picks, some of them fail after taking positions (lost races, duplicate event
//! ids) and so leave holes for ever, and a reader tails the global order meanwhile,
//! resuming each time after the last position it saw. It must see every committed event
//! exactly once, in strictly increasing position order, each stream in version order.
//!
//! The second run mixes in the inbox's handled appends, whose transactions take their
//! transaction id with the inbox row and may then wait on another delivery's row before
//! taking any position: repeated and racing deliveries of shared source events, handled
//! appends to several streams, empty ones, and refused ones that leave holes.

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
/// Source events whose deliveries the writers share in the run with handled appends, so
/// that deliveries repeat and race.
const SOURCE_EVENTS: usize = 30;
const CONSUMERS: u64 = 2;

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
    /// (consumer, source event) of every handled append that committed.
    handled: Vec<(String, EventId)>,
    /// Handled appends refused because the delivery had been handled.
    repeats: usize,
}

/// Makes `APPENDS_PER_WRITER` appends of every kind; handled appends too, for the source
/// events in `sources`, unless it is empty.
async fn write(store: PgEventStore, writer: usize, shared: Vec<StreamId>, sources: Vec<EventId>) -> Committed {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1));
    let own = StreamId::new("own", Uuid::now_v7());
    let mut own_version = 0;
    let mut committed = Committed::default();
    let kinds = if sources.is_empty() { 10 } else { 14 };
    for i in 0..APPENDS_PER_WRITER {
        let label = format!("{writer}.{i}");
        let shared_stream = &shared[dice.roll(SHARED_STREAMS as u64) as usize];
        match dice.roll(kinds) {
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
            9 => {
                let Some(&stored) = committed.events.first() else { continue };
                let batch = with_duplicate(events(&label, 1 + dice.roll(3) as usize), stored);
                let refused = store.append(&own, ExpectedVersion::after(own_version), batch).await;
                assert!(matches!(refused, Err(StoreError::DuplicateEvent(id)) if id == stored), "got {refused:?}");
                committed.holes_made += 1;
            }
            // A delivery of a shared source event, handled by appending to the writer's
            // own stream, or to it and a shared one: the first delivery to one consumer
            // commits, later and racing ones are told it was handled.
            10..=12 => {
                let source = sources[dice.roll(sources.len() as u64) as usize];
                let consumer = format!("consumer{}", dice.roll(CONSUMERS));
                let batch = events(&label, 1 + dice.roll(3) as usize);
                let mut effect_ids = ids(&batch);
                let mut appends = vec![StreamAppend {
                    stream_id: own.clone(),
                    expected: ExpectedVersion::after(own_version),
                    events: batch,
                }];
                if dice.roll(3) == 0 {
                    let theirs = events(&format!("{label}.shared"), 1);
                    effect_ids.extend(ids(&theirs));
                    appends.push(StreamAppend {
                        stream_id: shared_stream.clone(),
                        expected: ExpectedVersion::Any,
                        events: theirs,
                    });
                }
                match store.append_handled(&consumer, source, appends).await {
                    Ok(results) => {
                        own_version = results[0].version;
                        committed.events.extend(effect_ids);
                        committed.handled.push((consumer, source));
                    }
                    Err(StoreError::AlreadyHandled { .. }) => committed.repeats += 1,
                    Err(other) => panic!("a handled append commits or was handled before, got {other}"),
                }
            }
            // A decision to do nothing, or a handled append refused for a duplicate event
            // id: it has taken its transaction id and its positions, then rolls back, inbox
            // row and all. A fresh source event each, so that the refusal is the duplicate.
            _ => {
                let consumer = format!("consumer{}", dice.roll(CONSUMERS));
                let source = Uuid::now_v7();
                let stored = committed.events.first().copied();
                let Some(stored) = stored.filter(|_| i % 2 == 1) else {
                    store.append_handled(&consumer, source, vec![]).await.expect("nothing to append");
                    committed.handled.push((consumer, source));
                    continue;
                };
                let batch = with_duplicate(events(&label, 1 + dice.roll(3) as usize), stored);
                let append = StreamAppend {
                    stream_id: own.clone(),
                    expected: ExpectedVersion::after(own_version),
                    events: batch,
                };
                let refused = store.append_handled(&consumer, source, vec![append]).await;
                assert!(matches!(refused, Err(StoreError::DuplicateEvent(id)) if id == stored), "got {refused:?}");
                committed.holes_made += 1;
            }
        }
    }
    committed
}

/// `batch` with a copy of its first event, under the id of an event already stored, last.
fn with_duplicate(mut batch: Vec<NewEvent>, stored: EventId) -> Vec<NewEvent> {
    let mut duplicate = batch[0].clone();
    duplicate.event_id = stored;
    batch.push(duplicate);
    batch
}

fn ids(events: &[NewEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_sees_every_committed_event_once_and_in_order() {
    let Some(store) = fresh_store().await else { return };
    tail_while_writing(store, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_sees_every_committed_event_once_and_in_order_among_handled_appends() {
    let Some(store) = fresh_store().await else { return };
    let writers = tail_while_writing(store.clone(), SOURCE_EVENTS).await;

    let handled: Vec<_> = writers.iter().flat_map(|writer| &writer.handled).collect();
    let distinct: HashSet<_> = handled.iter().collect();
    assert_eq!(distinct.len(), handled.len(), "no delivery is handled twice");
    let repeats: usize = writers.iter().map(|writer| writer.repeats).sum();
    assert!(repeats > 0, "deliveries were repeated");
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(store.pool()).await.expect("count the inbox");
    assert_eq!(recorded, handled.len() as i64, "the inbox holds the committed deliveries and nothing else");
    eprintln!("{} deliveries handled, {repeats} repeats refused", handled.len());
}

/// Runs the writers, handled appends among their appends if there are `sources` source
/// events, while a reader tails the global order; checks what the reader saw and returns
/// what the writers committed.
async fn tail_while_writing(store: PgEventStore, sources: usize) -> Vec<Committed> {
    let shared: Vec<_> = (0..SHARED_STREAMS).map(|_| StreamId::new("shared", Uuid::now_v7())).collect();
    let sources: Vec<EventId> = (0..sources).map(|_| Uuid::now_v7()).collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(store.clone(), writer, shared.clone(), sources.clone())))
        .collect();

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

    let mut writers_committed = Vec::with_capacity(WRITERS);
    for writer in futures::future::join_all(writers).await {
        writers_committed.push(writer.expect("writer"));
    }
    let committed: HashSet<_> = writers_committed.iter().flat_map(|writer| writer.events.iter().copied()).collect();
    let holes_made: usize = writers_committed.iter().map(|writer| writer.holes_made).sum();
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
    writers_committed
}
