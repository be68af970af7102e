//! The outbox relay (being written).

use std::sync::Arc;

use eventshop_core::EventStore;
use eventshop_core::bus::{BusError, Running};

use crate::NatsBus;

pub async fn start(_bus: &NatsBus, _service: &str, _store: Arc<dyn EventStore>) -> Result<Box<dyn Running>, BusError> {
    unimplemented!("the relay")
}
