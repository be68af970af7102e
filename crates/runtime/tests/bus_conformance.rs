//! The in-process bus passes the bus conformance suite.

use std::sync::Arc;

use bus_conformance::TestBus;
use runtime::InProcessBus;

async fn open() -> Option<TestBus> {
    let bus = Arc::new(InProcessBus::new());
    Some(TestBus { first: bus.clone(), second: bus })
}

bus_conformance::bus_conformance!(open);
