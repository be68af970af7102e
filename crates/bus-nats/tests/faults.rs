//! The NATS bus under faults: each test runs its own nats-server, which it stops, kills or
//! wipes while events flow, and checks that every event of the source still had its effect
//! exactly once, in order per stream. The bounds are liveness bounds, generous on purpose.

mod support;

use std::sync::Arc;
use std::time::Duration;

use eventshop_core::InMemoryEventStore;
use eventshop_core::consumer::ConsumerDefinition;
use support::{NatsServer, Reactor, append_nth, assert_each_once_in_order, effects, eventually, streams, unique};

use bus_nats::NatsBus;
use eventshop_core::bus::EventBus;

const LIVENESS: Duration = Duration::from_secs(60);

/// A source service with its relay, and a consumer of its events with its own store.
struct Scenario {
    bus: NatsBus,
    service: String,
    source: Arc<InMemoryEventStore>,
    definition: ConsumerDefinition,
    reactor: Arc<Reactor>,
    own_store: Arc<InMemoryEventStore>,
}

impl Scenario {
    async fn new(server: &NatsServer) -> Self {
        let bus = server.bus(support::namespace()).await;
        let service = unique("source");
        let name = unique("reactions");
        let own_store = Arc::new(InMemoryEventStore::new());
        Scenario {
            bus,
            definition: ConsumerDefinition::new(&name, &service, &[]),
            service,
            source: Arc::new(InMemoryEventStore::new()),
            reactor: Reactor::new(&name, own_store.clone()),
            own_store,
        }
    }

    async fn relay(&self) -> Box<dyn eventshop_core::bus::Running> {
        self.bus.publish_events(&self.service, self.source.clone()).await.expect("relay")
    }

    async fn consume(&self) -> eventshop_core::consumer::ConsumerHandle {
        self.bus.consume(self.definition.clone(), self.reactor.clone(), self.own_store.clone()).await.expect("consume")
    }

    async fn effect_count(&self) -> usize {
        effects(&self.own_store).await.len()
    }

    /// Appends `count` events over a dozen streams, a few at a time, in the background.
    fn append_slowly(&self, count: usize) -> tokio::task::JoinHandle<()> {
        let (source, streams) = (self.source.clone(), streams(12));
        tokio::spawn(async move {
            for i in 0..count {
                append_nth(&source, &streams, i).await;
                if i % 4 == 3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    }

    async fn wait_for_effects(&self, count: usize) {
        eventually(&format!("{count} effects"), LIVENESS, async || self.effect_count().await >= count).await;
    }

    /// Lets stray redeliveries arrive, then checks the effects.
    async fn assert_complete(&self, count: usize) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(self.effect_count().await, count, "one effect per event");
        assert_each_once_in_order(&self.source, &self.own_store).await;
    }
}

/// (a) The server stops in an orderly way and starts again while events are appended,
/// published and handled: nothing is lost, nothing has its effect twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_server_loses_nothing_and_doubles_nothing() {
    let Some(mut server) = NatsServer::start().await else { return };
    let scenario = Scenario::new(&server).await;
    let relay = scenario.relay().await;
    let consumer = scenario.consume().await;
    let total = 1_200;
    let appending = scenario.append_slowly(total);
    scenario.wait_for_effects(total / 4).await;
    assert!(scenario.effect_count().await < total, "the server stops while events flow");

    server.terminate().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await;

    appending.await.expect("appended");
    scenario.wait_for_effects(total).await;
    scenario.assert_complete(total).await;
    consumer.stop().await;
    relay.stop().await;
}

/// (b) The server is killed and its disk wiped, then starts empty: the relay notices that
/// the broker lost what it acknowledged and publishes it again; the consumers' durables are
/// created again and see every event, whose effects the inbox keeps single.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_server_is_refilled_by_the_relay() {
    let Some(mut server) = NatsServer::start().await else { return };
    let scenario = Scenario::new(&server).await;
    let relay = scenario.relay().await;
    let consumer = scenario.consume().await;
    let total = 1_200;
    let appending = scenario.append_slowly(total);
    scenario.wait_for_effects(total / 4).await;
    assert!(scenario.effect_count().await < total, "the server dies while events flow");

    server.kill().await;
    server.wipe();
    server.restart().await;

    appending.await.expect("appended");
    scenario.wait_for_effects(total).await;
    scenario.assert_complete(total).await;
    assert!(
        scenario.reactor.calls() as usize > total,
        "the handler saw the refilled events again ({} calls) and the inbox kept their effects single",
        scenario.reactor.calls()
    );
    consumer.stop().await;
    relay.stop().await;
}

/// (c) A consumer stopped in the middle of the source's events and started again goes on
/// where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_stopped_midway_resumes_without_loss() {
    let Some(server) = NatsServer::start().await else { return };
    let scenario = Scenario::new(&server).await;
    let relay = scenario.relay().await;
    let total = 600;
    let streams = streams(12);
    for i in 0..total {
        append_nth(&scenario.source, &streams, i).await;
    }
    let consumer = scenario.consume().await;
    scenario.wait_for_effects(total / 4).await;
    consumer.stop().await;
    let handled_before = scenario.effect_count().await;
    assert!(handled_before < total, "stopped midway ({handled_before} of {total})");

    let consumer = scenario.consume().await;
    scenario.wait_for_effects(total).await;
    scenario.assert_complete(total).await;
    consumer.stop().await;
    relay.stop().await;
}

/// (d) The relay stopped between appends and started again publishes what was appended
/// meanwhile, once: from what the broker holds, not from its own memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_restarted_between_appends_publishes_each_event_once() {
    let Some(server) = NatsServer::start().await else { return };
    let scenario = Scenario::new(&server).await;
    let consumer = scenario.consume().await;
    let streams = streams(12);
    let relay = scenario.relay().await;
    for i in 0..300 {
        append_nth(&scenario.source, &streams, i).await;
    }
    scenario.wait_for_effects(300).await;
    relay.stop().await;

    for i in 300..600 {
        append_nth(&scenario.source, &streams, i).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(scenario.effect_count().await, 300, "nothing is published while the relay is stopped");

    let relay = scenario.relay().await;
    scenario.wait_for_effects(600).await;
    scenario.assert_complete(600).await;
    let stream_name = scenario.bus.namespace().event_stream(&scenario.service);
    let mut stream = scenario.bus.jetstream().get_stream(&stream_name).await.expect("the event stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 600, "the broker holds each event once");
    assert_eq!(scenario.reactor.calls(), 600, "and the consumer saw each once");
    consumer.stop().await;
    relay.stop().await;
}

/// Makes effects like the [`Reactor`] until its `hang_on`-th call, which never returns: an
/// instance that froze or died in the middle of handling a message.
#[derive(Debug)]
struct FreezesMidway {
    reactor: Arc<Reactor>,
    calls: std::sync::atomic::AtomicUsize,
    hang_on: usize,
}

#[async_trait::async_trait]
impl eventshop_core::consumer::EventHandler for FreezesMidway {
    async fn handle(
        &self,
        event: &eventshop_core::RecordedEvent,
    ) -> Result<(), eventshop_core::consumer::HandlerError> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.hang_on {
            std::future::pending::<()>().await;
        }
        self.reactor.handle(event).await
    }
}

/// (e) An instance dies in the middle of a batch: its handler hangs on a message and its
/// connection goes away without acknowledging it. Another instance takes the message over
/// once the broker's ack wait runs out, and every event still has its effect once, in order
/// per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_killed_mid_batch_hands_its_message_to_another_instance() {
    let Some(server) = NatsServer::start().await else { return };
    let scenario = Scenario::new(&server).await;
    let relay = scenario.relay().await;

    let doomed_client = async_nats::connect(server.url()).await.expect("connect");
    let doomed_bus = NatsBus::from_client(doomed_client.clone(), scenario.bus.namespace().clone());
    let freezing = Arc::new(FreezesMidway {
        reactor: scenario.reactor.clone(),
        calls: std::sync::atomic::AtomicUsize::new(0),
        hang_on: 11,
    });
    let doomed = doomed_bus
        .consume(scenario.definition.clone(), freezing.clone(), scenario.own_store.clone())
        .await
        .expect("consume");
    let appending = scenario.append_slowly(60);
    eventually("the doomed instance freezes", LIVENESS, async || {
        freezing.calls.load(std::sync::atomic::Ordering::SeqCst) >= 11
    })
    .await;
    // The instance dies: its connection closes with the message unacknowledged.
    doomed_client.drain().await.expect("close the doomed connection");
    let survivor = scenario.consume().await;
    appending.await.expect("appends");
    scenario.wait_for_effects(60).await;
    scenario.assert_complete(60).await;
    survivor.stop().await;
    relay.stop().await;
    drop(doomed);
}
