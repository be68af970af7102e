//! A shipment, as an aggregate: created for a confirmed order, dispatched with a carrier's
//! tracking number, delivered; or cancelled with its order before it leaves.
//!
//! Pure decisions, no I/O. Whether the order may still be dispatched is not decided here
//! but by the order's own stream (orders' `ShipOrder`), which the handler asks first: only
//! one stream can settle a race between a dispatch and a cancellation.

use contracts::identity::AddressInput;
use contracts::shipping::{ShipmentStatus, ShippingEvent};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most characters a carrier's name or a tracking number may have.
pub const MAX_TRACKING_LENGTH: usize = 100;

/// A carrier and the tracking number it gave a parcel, both checked: 1 to
/// [`MAX_TRACKING_LENGTH`] characters once trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    carrier: String,
    tracking_number: String,
}

/// Why a carrier or tracking number was refused; `field` names the request's field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidTracking {
    pub field: &'static str,
    pub message: String,
}

impl Tracking {
    pub fn parse(carrier: &str, tracking_number: &str) -> Result<Self, InvalidTracking> {
        Ok(Tracking {
            carrier: checked_text("carrier", "a carrier", carrier)?,
            tracking_number: checked_text("tracking_number", "a tracking number", tracking_number)?,
        })
    }

    pub fn carrier(&self) -> &str {
        &self.carrier
    }

    pub fn tracking_number(&self) -> &str {
        &self.tracking_number
    }
}

fn checked_text(field: &'static str, what: &str, value: &str) -> Result<String, InvalidTracking> {
    let value = value.trim();
    let refuse = |message: String| InvalidTracking { field, message };
    if value.is_empty() {
        return Err(refuse(format!("{what} must not be empty")));
    }
    if value.chars().count() > MAX_TRACKING_LENGTH {
        return Err(refuse(format!("{what} must have at most {MAX_TRACKING_LENGTH} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse(format!("{what} must not contain control characters")));
    }
    Ok(value.to_owned())
}

/// What can be done to a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipmentCommand {
    /// Creates the shipment of a confirmed order. Once: a second creation changes nothing.
    Create { shipment_id: Uuid, order_id: Uuid, user_id: Uuid, address: AddressInput },
    /// Cancels the shipment because its order was cancelled: only one still waiting to
    /// leave; none at all, or one already gone, is left as it is.
    CancelForOrder,
    /// Hands the parcel to a carrier. A repeat with the same carrier and tracking number
    /// changes nothing.
    Dispatch(Tracking),
    /// Records the parcel delivered. Once.
    Deliver,
}

/// Why a command on a shipment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    #[error("there is no such shipment")]
    NoShipment,
    #[error("the shipment was cancelled with its order")]
    Cancelled,
    #[error("the shipment was already dispatched with {carrier} as {tracking_number}")]
    AlreadyDispatched { carrier: String, tracking_number: String },
    #[error("the shipment has not been dispatched yet")]
    NotDispatched,
}

/// What a shipment is for: set once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentDetails {
    pub shipment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub address: AddressInput,
}

/// A shipment (stream `shipment-<shipment id>`, the id derived from the order's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// None until the shipment is created.
    details: Option<ShipmentDetails>,
    status: ShipmentStatus,
    carrier: Option<String>,
    tracking_number: Option<String>,
    /// How many events this state has applied, which is the stream's version.
    version: Version,
}

impl Default for Shipment {
    fn default() -> Self {
        Shipment { details: None, status: ShipmentStatus::Pending, carrier: None, tracking_number: None, version: 0 }
    }
}

impl Shipment {
    pub fn details(&self) -> Option<&ShipmentDetails> {
        self.details.as_ref()
    }

    pub fn status(&self) -> ShipmentStatus {
        self.status
    }

    pub fn carrier(&self) -> Option<&str> {
        self.carrier.as_deref()
    }

    pub fn tracking_number(&self) -> Option<&str> {
        self.tracking_number.as_deref()
    }

    pub fn version(&self) -> Version {
        self.version
    }

    fn dispatch(&self, details: &ShipmentDetails, tracking: &Tracking) -> Result<Vec<ShippingEvent>, ShipmentError> {
        match self.status {
            ShipmentStatus::Pending => Ok(vec![ShippingEvent::ShipmentDispatched {
                shipment_id: details.shipment_id,
                order_id: details.order_id,
                user_id: details.user_id,
                carrier: tracking.carrier.clone(),
                tracking_number: tracking.tracking_number.clone(),
            }]),
            ShipmentStatus::Dispatched | ShipmentStatus::Delivered => {
                if self.carrier() == Some(tracking.carrier())
                    && self.tracking_number() == Some(tracking.tracking_number())
                {
                    Ok(Vec::new())
                } else {
                    Err(ShipmentError::AlreadyDispatched {
                        carrier: self.carrier.clone().unwrap_or_default(),
                        tracking_number: self.tracking_number.clone().unwrap_or_default(),
                    })
                }
            }
            ShipmentStatus::Cancelled => Err(ShipmentError::Cancelled),
        }
    }

    fn deliver(&self, details: &ShipmentDetails) -> Result<Vec<ShippingEvent>, ShipmentError> {
        match self.status {
            ShipmentStatus::Dispatched => Ok(vec![ShippingEvent::ShipmentDelivered {
                shipment_id: details.shipment_id,
                order_id: details.order_id,
                user_id: details.user_id,
            }]),
            ShipmentStatus::Delivered => Ok(Vec::new()),
            ShipmentStatus::Pending => Err(ShipmentError::NotDispatched),
            ShipmentStatus::Cancelled => Err(ShipmentError::Cancelled),
        }
    }
}

impl Aggregate for Shipment {
    const CATEGORY: &'static str = "shipment";

    type Command = ShipmentCommand;
    type Event = ShippingEvent;
    type Error = ShipmentError;

    fn decide(&self, command: &ShipmentCommand) -> Result<Vec<ShippingEvent>, ShipmentError> {
        let details = self.details.as_ref();
        match (command, details) {
            (ShipmentCommand::Create { .. }, Some(_)) => Ok(Vec::new()),
            (ShipmentCommand::Create { shipment_id, order_id, user_id, address }, None) => {
                Ok(vec![ShippingEvent::ShipmentCreated {
                    shipment_id: *shipment_id,
                    order_id: *order_id,
                    user_id: *user_id,
                    address: address.clone(),
                }])
            }
            (ShipmentCommand::CancelForOrder, Some(details)) if self.status == ShipmentStatus::Pending => {
                Ok(vec![ShippingEvent::ShipmentCancelled {
                    shipment_id: details.shipment_id,
                    order_id: details.order_id,
                    user_id: details.user_id,
                }])
            }
            (ShipmentCommand::CancelForOrder, _) => Ok(Vec::new()),
            (ShipmentCommand::Dispatch(_) | ShipmentCommand::Deliver, None) => Err(ShipmentError::NoShipment),
            (ShipmentCommand::Dispatch(tracking), Some(details)) => self.dispatch(details, tracking),
            (ShipmentCommand::Deliver, Some(details)) => self.deliver(details),
        }
    }

    fn apply(mut self, event: &ShippingEvent) -> Self {
        self.version += 1;
        match event {
            ShippingEvent::ShipmentCreated { shipment_id, order_id, user_id, address } => {
                self.details = Some(ShipmentDetails {
                    shipment_id: *shipment_id,
                    order_id: *order_id,
                    user_id: *user_id,
                    address: address.clone(),
                });
                self.status = ShipmentStatus::Pending;
            }
            ShippingEvent::ShipmentDispatched { carrier, tracking_number, .. } => {
                self.status = ShipmentStatus::Dispatched;
                self.carrier = Some(carrier.clone());
                self.tracking_number = Some(tracking_number.clone());
            }
            ShippingEvent::ShipmentDelivered { .. } => self.status = ShipmentStatus::Delivered,
            ShippingEvent::ShipmentCancelled { .. } => self.status = ShipmentStatus::Cancelled,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use contracts::shipping::shipment_id;
    use eventshop_core::testing::AggregateTest;

    use super::*;

    const ORDER: Uuid = Uuid::from_u128(0x0de5);
    const USER: Uuid = Uuid::from_u128(0xa11ce);

    fn address() -> AddressInput {
        serde_json::from_value(serde_json::json!({
            "name": "Ada Lovelace", "line1": "1 Analytical Way", "city": "London", "postal_code": "N1", "country": "GB"
        }))
        .expect("a valid address")
    }

    fn created() -> ShippingEvent {
        ShippingEvent::ShipmentCreated {
            shipment_id: shipment_id(ORDER),
            order_id: ORDER,
            user_id: USER,
            address: address(),
        }
    }

    fn dispatched(tracking_number: &str) -> ShippingEvent {
        ShippingEvent::ShipmentDispatched {
            shipment_id: shipment_id(ORDER),
            order_id: ORDER,
            user_id: USER,
            carrier: "DHL".to_owned(),
            tracking_number: tracking_number.to_owned(),
        }
    }

    fn delivered() -> ShippingEvent {
        ShippingEvent::ShipmentDelivered { shipment_id: shipment_id(ORDER), order_id: ORDER, user_id: USER }
    }

    fn cancelled() -> ShippingEvent {
        ShippingEvent::ShipmentCancelled { shipment_id: shipment_id(ORDER), order_id: ORDER, user_id: USER }
    }

    fn create() -> ShipmentCommand {
        ShipmentCommand::Create { shipment_id: shipment_id(ORDER), order_id: ORDER, user_id: USER, address: address() }
    }

    fn dispatch(tracking_number: &str) -> ShipmentCommand {
        ShipmentCommand::Dispatch(Tracking::parse("DHL", tracking_number).expect("valid tracking"))
    }

    #[test]
    fn a_confirmed_order_gets_one_shipment() {
        AggregateTest::<Shipment>::given_no_history().when(create()).then_expect_events(vec![created()]);
        AggregateTest::<Shipment>::given(vec![created()]).when(create()).then_expect_events(vec![]);
    }

    #[test]
    fn a_pending_shipment_is_dispatched_with_its_tracking() {
        AggregateTest::<Shipment>::given(vec![created()])
            .when(dispatch("JD01"))
            .then_expect_events(vec![dispatched("JD01")]);
        let state = AggregateTest::<Shipment>::given(vec![created()]).when(dispatch("JD01")).then_state();
        assert_eq!(
            (state.status(), state.carrier(), state.tracking_number()),
            (ShipmentStatus::Dispatched, Some("DHL"), Some("JD01"))
        );
    }

    #[test]
    fn a_repeated_dispatch_changes_nothing_and_another_tracking_is_refused() {
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01")])
            .when(dispatch("JD01"))
            .then_expect_events(vec![]);
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01"), delivered()])
            .when(dispatch("JD01"))
            .then_expect_events(vec![]);
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01")]).when(dispatch("JD02")).then_expect_error(
            ShipmentError::AlreadyDispatched { carrier: "DHL".to_owned(), tracking_number: "JD01".to_owned() },
        );
    }

    #[test]
    fn nothing_is_dispatched_or_delivered_that_does_not_exist_or_was_cancelled() {
        AggregateTest::<Shipment>::given_no_history()
            .when(dispatch("JD01"))
            .then_expect_error(ShipmentError::NoShipment);
        AggregateTest::<Shipment>::given_no_history()
            .when(ShipmentCommand::Deliver)
            .then_expect_error(ShipmentError::NoShipment);
        AggregateTest::<Shipment>::given(vec![created(), cancelled()])
            .when(dispatch("JD01"))
            .then_expect_error(ShipmentError::Cancelled);
        AggregateTest::<Shipment>::given(vec![created(), cancelled()])
            .when(ShipmentCommand::Deliver)
            .then_expect_error(ShipmentError::Cancelled);
    }

    #[test]
    fn only_a_dispatched_shipment_is_delivered_and_only_once() {
        AggregateTest::<Shipment>::given(vec![created()])
            .when(ShipmentCommand::Deliver)
            .then_expect_error(ShipmentError::NotDispatched);
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01")])
            .when(ShipmentCommand::Deliver)
            .then_expect_events(vec![delivered()]);
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01"), delivered()])
            .when(ShipmentCommand::Deliver)
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_cancelled_order_cancels_only_a_shipment_still_waiting() {
        AggregateTest::<Shipment>::given(vec![created()])
            .when(ShipmentCommand::CancelForOrder)
            .then_expect_events(vec![cancelled()]);
        AggregateTest::<Shipment>::given_no_history().when(ShipmentCommand::CancelForOrder).then_expect_events(vec![]);
        AggregateTest::<Shipment>::given(vec![created(), dispatched("JD01")])
            .when(ShipmentCommand::CancelForOrder)
            .then_expect_events(vec![]);
        AggregateTest::<Shipment>::given(vec![created(), cancelled()])
            .when(ShipmentCommand::CancelForOrder)
            .then_expect_events(vec![]);
    }

    #[test]
    fn carriers_and_tracking_numbers_are_trimmed_and_bounded() {
        let tracking = Tracking::parse("  DHL ", " JD01\t").expect("valid");
        assert_eq!((tracking.carrier(), tracking.tracking_number()), ("DHL", "JD01"));
        assert_eq!(Tracking::parse(" ", "JD01").expect_err("empty carrier").field, "carrier");
        assert_eq!(Tracking::parse("DHL", "").expect_err("empty number").field, "tracking_number");
        let long = "x".repeat(MAX_TRACKING_LENGTH + 1);
        assert_eq!(Tracking::parse("DHL", &long).expect_err("too long").field, "tracking_number");
        assert!(Tracking::parse(&"x".repeat(MAX_TRACKING_LENGTH), "JD01").is_ok(), "100 characters are fine");
        assert_eq!(Tracking::parse("D\u{7}HL", "JD01").expect_err("control").field, "carrier");
    }
}
