//! Shipping's routes: a confirmed order's shipment, read by its owner or an administrator,
//! and dispatched then delivered by an administrator.
//!
//! Shipments are found by order id (`GET /api/shipments/{order_id}`), while dispatch and
//! delivery name the shipment (`/api/shipments/{id}/...`). A client that has only the
//! order id may use it there too: an id that names no shipment is tried as an order id
//! (a shipment's id is derived from its order's, see `contracts::shipping::shipment_id`).

use axum::extract::State;
use contracts::shipping::{DeliverShipment, DispatchShipment, GetShipment, Shipment, ShipmentStatus, shipment_id};
use eventshop_core::bus::Operation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, CurrentUser};
use crate::context::RequestContext;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{Json, PathId};
use crate::routes::identity::PostalAddressBody;
use crate::routes::orders::viewer;
use crate::state::AppState;

/// The longest carrier name or tracking number taken.
const MAX_SHIPPING_TEXT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ShipmentStatus)]
pub enum ShipmentStatusBody {
    Pending,
    Dispatched,
    Delivered,
    Cancelled,
}

impl From<ShipmentStatus> for ShipmentStatusBody {
    fn from(status: ShipmentStatus) -> Self {
        match status {
            ShipmentStatus::Pending => ShipmentStatusBody::Pending,
            ShipmentStatus::Dispatched => ShipmentStatusBody::Dispatched,
            ShipmentStatus::Delivered => ShipmentStatusBody::Delivered,
            ShipmentStatus::Cancelled => ShipmentStatusBody::Cancelled,
        }
    }
}

/// A shipment: created when its order is confirmed, then dispatched and delivered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Shipment)]
pub struct ShipmentBody {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub status: ShipmentStatusBody,
    /// Set at dispatch.
    pub carrier: Option<String>,
    /// Set at dispatch.
    pub tracking_number: Option<String>,
    pub address: PostalAddressBody,
}

impl From<&Shipment> for ShipmentBody {
    fn from(shipment: &Shipment) -> Self {
        ShipmentBody {
            id: shipment.id,
            order_id: shipment.order_id,
            user_id: shipment.user_id,
            status: shipment.status.into(),
            carrier: shipment.carrier.clone(),
            tracking_number: shipment.tracking_number.clone(),
            address: PostalAddressBody::from(&shipment.address),
        }
    }
}

/// Who carries the parcel, and its tracking number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    #[schema(min_length = 1, max_length = 100, example = "DHL")]
    pub carrier: String,
    #[schema(min_length = 1, max_length = 100, example = "JD014600006281230704")]
    pub tracking_number: String,
}

impl DispatchRequest {
    /// The two texts trimmed, or the fields at fault.
    fn checked(self) -> Result<(String, String), ApiError> {
        let mut errors = Vec::new();
        let mut check = |field: &str, value: String| {
            let value = value.trim().to_owned();
            if value.is_empty() {
                errors.push(FieldError::new(field, "must not be empty"));
            } else if value.chars().count() > MAX_SHIPPING_TEXT {
                errors.push(FieldError::new(field, format!("must have at most {MAX_SHIPPING_TEXT} characters")));
            } else if value.chars().any(char::is_control) {
                errors.push(FieldError::new(field, "must not contain control characters"));
            }
            value
        };
        let carrier = check("carrier", self.carrier);
        let tracking_number = check("tracking_number", self.tracking_number);
        if errors.is_empty() { Ok((carrier, tracking_number)) } else { Err(ApiError::invalid_fields(errors)) }
    }
}

/// `GET /api/shipments/{order_id}`: the shipment of an order, with its status and tracking.
#[utoipa::path(
    get,
    path = "/api/shipments/{order_id}",
    tag = "shipping",
    security(("bearer" = [])),
    params(("order_id" = Uuid, Path, description = "The order shipped")),
    responses(
        (status = 200, description = "The shipment", body = ShipmentBody),
        (status = 404, description = "No shipment for this order (not confirmed yet, or another user's)",
            body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_shipment(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(order_id): PathId,
) -> Result<Json<ShipmentBody>, ApiError> {
    let query = GetShipment { order_id, viewer: viewer(&user) };
    let shipment = state.call(&query, context.message(Some(user.user_id))).await?;
    Ok(Json(ShipmentBody::from(&shipment)))
}

/// Sends the command made by `command` for the shipment `id`, and if no shipment has that
/// id, for the shipment of the order `id`.
async fn on_shipment<O: Operation<Reply = Shipment>>(
    state: &AppState,
    context: &RequestContext,
    admin: &CurrentUser,
    id: Uuid,
    command: impl Fn(Uuid) -> O,
) -> Result<Shipment, ApiError> {
    match state.call(&command(id), context.message(Some(admin.user_id))).await {
        Err(ApiError::NotFound(_)) => state.call(&command(shipment_id(id)), context.message(Some(admin.user_id))).await,
        answer => answer,
    }
}

/// `POST /api/shipments/{id}/dispatch`: hands the parcel to a carrier (admin). The order
/// becomes `shipped` and can no longer be cancelled.
#[utoipa::path(
    post,
    path = "/api/shipments/{id}/dispatch",
    tag = "shipping",
    security(("bearer" = [])),
    request_body = DispatchRequest,
    params(("id" = Uuid, Path, description = "The shipment (its order's id is accepted too)")),
    responses(
        (status = 200, description = "The dispatched shipment", body = ShipmentBody),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such shipment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The shipment is not pending, or its order was cancelled", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn dispatch_shipment(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(id): PathId,
    Json(request): Json<DispatchRequest>,
) -> Result<Json<ShipmentBody>, ApiError> {
    let (carrier, tracking_number) = request.checked()?;
    let shipment = on_shipment(&state, &context, &admin, id, |shipment_id| DispatchShipment {
        shipment_id,
        carrier: carrier.clone(),
        tracking_number: tracking_number.clone(),
    })
    .await?;
    Ok(Json(ShipmentBody::from(&shipment)))
}

/// `POST /api/shipments/{id}/deliver`: records the delivery (admin); the order becomes
/// `delivered`.
#[utoipa::path(
    post,
    path = "/api/shipments/{id}/deliver",
    tag = "shipping",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The shipment (its order's id is accepted too)")),
    responses(
        (status = 200, description = "The delivered shipment", body = ShipmentBody),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such shipment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The shipment has not been dispatched", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn deliver_shipment(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(id): PathId,
) -> Result<Json<ShipmentBody>, ApiError> {
    let shipment = on_shipment(&state, &context, &admin, id, |shipment_id| DeliverShipment { shipment_id }).await?;
    Ok(Json(ShipmentBody::from(&shipment)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(request: DispatchRequest) -> Vec<String> {
        match request.checked() {
            Err(ApiError::Unprocessable { errors, .. }) => errors.into_iter().map(|error| error.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn carrier_and_tracking_number_are_trimmed_and_checked() {
        let request = DispatchRequest { carrier: " DHL ".to_owned(), tracking_number: "JD1".to_owned() };
        assert_eq!(request.checked().expect("valid"), ("DHL".to_owned(), "JD1".to_owned()));
        let blank = DispatchRequest { carrier: "  ".to_owned(), tracking_number: "x".repeat(101) };
        assert_eq!(fields(blank), ["carrier", "tracking_number"]);
        let control = DispatchRequest { carrier: "DHL".to_owned(), tracking_number: "a\u{7}b".to_owned() };
        assert_eq!(fields(control), ["tracking_number"]);
    }
}
