//! The NATS bus passes the bus conformance suite against a real NATS server with
//! JetStream (`EVENTSHOP_TEST_NATS_URL`, default `nats://127.0.0.1:4222`). Each case gets
//! its own namespace, so cases never see each other's subjects or streams.

use std::sync::Arc;

use bus_conformance::TestBus;
use bus_nats::{Namespace, NatsBus};

async fn open() -> Option<TestBus> {
    let url = std::env::var("EVENTSHOP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let namespace = Namespace::new(format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[16..])).expect("name");
    let connect =
        || async_nats::ConnectOptions::new().connection_timeout(std::time::Duration::from_secs(3)).connect(&url);
    let (first, second) = match (connect().await, connect().await) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(error), _) | (_, Err(error)) => {
            return eventshop_core::testing::skip_unless_ci(format!("NATS not reachable at {url}: {error}"));
        }
    };
    Some(TestBus {
        first: Arc::new(NatsBus::from_client(first, namespace.clone())),
        second: Arc::new(NatsBus::from_client(second, namespace)),
    })
}

bus_conformance::bus_conformance!(open);
