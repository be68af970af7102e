//! The shipping operations: each loads a shipment from its stream, decides with the
//! `Shipment` aggregate, and answers the shipment it left.
//!
//! Reads load the shipment's stream (a handful of events), so an answer always shows every
//! change answered before it. A dispatch asks orders' `ShipOrder` before it appends: the
//! order's stream is where a dispatch and a cancellation of the same order meet, so that
//! only one of them can win.

use std::sync::Arc;
use std::time::Duration;

use contracts::orders::ShipOrder;
use contracts::shipping::{DeliverShipment, DispatchShipment, GetShipment, Shipment as ShipmentReply, shipment_id};
use eventshop_core::bus::{Bus, MessageContext, Rejection, RejectionKind, call};
use eventshop_core::{Aggregate, CommandHandler, EventStore, Version};
use runtime::{command_rejection, forwarded};
use serde_json::json;

use crate::domain::{InvalidTracking, Shipment, ShipmentCommand, ShipmentError, Tracking};

/// How long shipping waits for orders: well inside the gateway's own deadline.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers the shipping operations against the service's event store, asking orders over
/// the bus before a dispatch.
#[derive(Debug)]
pub struct ShippingHandlers {
    shipments: CommandHandler<Shipment>,
    bus: Arc<dyn Bus>,
}

impl ShippingHandlers {
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn Bus>) -> Self {
        ShippingHandlers { shipments: CommandHandler::new(store), bus }
    }

    /// The shipment of an order; NotFound when there is none yet, or it is another user's.
    #[tracing::instrument(skip_all, fields(order_id = %request.order_id))]
    pub async fn get_shipment(
        &self,
        request: GetShipment,
        _context: MessageContext,
    ) -> Result<ShipmentReply, Rejection> {
        let loaded = self
            .shipments
            .load(shipment_id(request.order_id))
            .await
            .map_err(|error| command_rejection(error, shipment_rejection))?;
        match reply(&loaded.state, loaded.version) {
            Some(shipment) if request.viewer.is_none_or(|viewer| viewer == shipment.user_id) => Ok(shipment),
            _ => Err(Rejection::new(RejectionKind::NotFound, format!("order {} has no shipment", request.order_id))),
        }
    }

    /// Hands a shipment to a carrier: orders first marks the order shipped (or refuses,
    /// when it was cancelled), then the shipment records the dispatch. A repeat with the
    /// same carrier and tracking number answers the shipment again.
    #[tracing::instrument(skip_all, fields(shipment_id = %request.shipment_id))]
    pub async fn dispatch(
        &self,
        request: DispatchShipment,
        context: MessageContext,
    ) -> Result<ShipmentReply, Rejection> {
        let tracking = Tracking::parse(&request.carrier, &request.tracking_number).map_err(invalid_tracking)?;
        let command = ShipmentCommand::Dispatch(tracking.clone());
        let loaded = self
            .shipments
            .load(request.shipment_id)
            .await
            .map_err(|error| command_rejection(error, shipment_rejection))?;
        // Decided here first so that a dispatch the shipment refuses, or a repeat, never
        // reaches the order.
        if loaded.state.decide(&command).map_err(shipment_rejection)?.is_empty() {
            return answer(&loaded.state, loaded.version);
        }
        let Some(details) = loaded.state.details() else {
            return Err(shipment_rejection(ShipmentError::NoShipment));
        };
        let ship = ShipOrder {
            order_id: details.order_id,
            carrier: tracking.carrier().to_owned(),
            tracking_number: tracking.tracking_number().to_owned(),
        };
        call(&*self.bus, &ship, context.child(), CALL_TIMEOUT).await.map_err(forwarded)?;
        let executed = self
            .shipments
            .execute(request.shipment_id, &command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, shipment_rejection))?;
        answer(&executed.state, executed.version)
    }

    /// Records a dispatched shipment delivered; delivered again answers the same.
    #[tracing::instrument(skip_all, fields(shipment_id = %request.shipment_id))]
    pub async fn deliver(&self, request: DeliverShipment, context: MessageContext) -> Result<ShipmentReply, Rejection> {
        let executed = self
            .shipments
            .execute(request.shipment_id, &ShipmentCommand::Deliver, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, shipment_rejection))?;
        answer(&executed.state, executed.version)
    }
}

/// The reply for a shipment that exists.
fn reply(state: &Shipment, version: Version) -> Option<ShipmentReply> {
    let details = state.details()?;
    Some(ShipmentReply {
        id: details.shipment_id,
        order_id: details.order_id,
        user_id: details.user_id,
        status: state.status(),
        carrier: state.carrier().map(str::to_owned),
        tracking_number: state.tracking_number().map(str::to_owned),
        address: details.address.clone(),
        version,
    })
}

/// The reply after a command, which only succeeds on a shipment that exists.
fn answer(state: &Shipment, version: Version) -> Result<ShipmentReply, Rejection> {
    reply(state, version).ok_or_else(|| shipment_rejection(ShipmentError::NoShipment))
}

fn invalid_tracking(error: InvalidTracking) -> Rejection {
    Rejection::new(RejectionKind::Invalid, error.message.clone())
        .with_details(json!({ "errors": [{ "field": error.field, "message": error.message }] }))
}

/// How a refused shipment command is answered.
fn shipment_rejection(error: ShipmentError) -> Rejection {
    let kind = match error {
        ShipmentError::NoShipment => RejectionKind::NotFound,
        ShipmentError::Cancelled | ShipmentError::AlreadyDispatched { .. } | ShipmentError::NotDispatched => {
            RejectionKind::Conflict
        }
    };
    Rejection::new(kind, error.to_string())
}
