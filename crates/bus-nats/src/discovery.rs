//! Discovery of running service instances (being written).

use eventshop_core::bus::{BusError, ServiceInstance};

use crate::NatsBus;

pub async fn discover(_bus: &NatsBus) -> Result<Vec<ServiceInstance>, BusError> {
    unimplemented!("discovery over NATS")
}
