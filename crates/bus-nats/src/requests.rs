//! Requests over the NATS service API (being written).

use std::sync::Arc;
use std::time::Duration;

use eventshop_core::bus::{BusError, Reply, Request, RequestHandler, Running, ServiceDefinition};

use crate::NatsBus;

pub async fn request(_bus: &NatsBus, _request: Request, _timeout: Duration) -> Result<Reply, BusError> {
    unimplemented!("requests over NATS")
}

pub async fn serve(
    _bus: &NatsBus,
    _definition: ServiceDefinition,
    _handler: Arc<dyn RequestHandler>,
) -> Result<Box<dyn Running>, BusError> {
    unimplemented!("serving over NATS")
}
