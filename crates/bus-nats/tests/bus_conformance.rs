//! The NATS bus passes the bus conformance suite against a real NATS server with
//! JetStream (`EVENTSHOP_TEST_NATS_URL`, default `nats://127.0.0.1:4222`). Each case gets
//! its own namespace, so cases never see each other's subjects or streams.

use std::sync::Arc;

use bus_conformance::TestBus;
use bus_nats::NatsBus;

async fn open() -> Option<TestBus> {
    let namespace = bus_nats::testing::fresh_namespace("t");
    let (first, second) = (bus_nats::testing::connect("t").await?, bus_nats::testing::connect("t").await?);
    Some(TestBus {
        first: Arc::new(NatsBus::from_client(first, namespace.clone())),
        second: Arc::new(NatsBus::from_client(second, namespace)),
    })
}

bus_conformance::bus_conformance!(open);
