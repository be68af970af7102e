//! Partitioned durable consumers (being written).

use std::sync::Arc;

use eventshop_core::bus::BusError;
use eventshop_core::consumer::{ConsumerDefinition, ConsumerHandle, ConsumerStorage, EventHandler};

use crate::NatsBus;

pub async fn start(
    _bus: &NatsBus,
    _definition: ConsumerDefinition,
    _handler: Arc<dyn EventHandler>,
    _storage: Arc<dyn ConsumerStorage>,
) -> Result<ConsumerHandle, BusError> {
    unimplemented!("consumers")
}
