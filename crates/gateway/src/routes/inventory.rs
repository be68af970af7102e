//! Inventory's routes (admin): restocking a product and reading its stock.
//!
//! Inventory knows stock by product id and would take any id; the gateway first asks
//! catalog whether the product exists, so that a typo is a 404, not stock for nothing.

use axum::extract::State;
use contracts::catalog::GetProduct;
use contracts::inventory::{GetInventory, Inventory, Restock};
use contracts::values::Quantity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, CurrentUser};
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{IdempotencyKey, Json, PathId};
use crate::state::AppState;

/// Units to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 10)]
    pub quantity: Quantity,
}

/// A product's stock: `on_hand` = restocked − committed; `reserved` = held for orders in
/// progress; `available` = `on_hand` − `reserved`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Inventory)]
pub struct InventoryBody {
    pub product_id: Uuid,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

impl From<&Inventory> for InventoryBody {
    fn from(inventory: &Inventory) -> Self {
        InventoryBody {
            product_id: inventory.product_id,
            on_hand: inventory.levels.on_hand,
            reserved: inventory.levels.reserved,
            available: inventory.levels.available,
        }
    }
}

/// A 404 unless catalog knows the product.
async fn ensure_product_exists(
    state: &AppState,
    context: &RequestContext,
    admin: &CurrentUser,
    product_id: Uuid,
) -> Result<(), ApiError> {
    state.call(&GetProduct { product_id }, context.message(Some(admin.user_id))).await.map(|_| ())
}

/// `POST /api/inventory/{product_id}/restock`: adds units (admin).
#[utoipa::path(
    post,
    path = "/api/inventory/{product_id}/restock",
    tag = "inventory",
    security(("bearer" = [])),
    request_body = RestockRequest,
    params(
        ("product_id" = Uuid, Path, description = "The product"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry add nothing more"),
    ),
    responses(
        (status = 200, description = "The stock after the restock", body = InventoryBody),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The quantity is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn restock(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(product_id): PathId,
    idempotency: IdempotencyKey,
    Json(request): Json<RestockRequest>,
) -> Result<Json<InventoryBody>, ApiError> {
    ensure_product_exists(&state, &context, &admin, product_id).await?;
    let command =
        Restock { product_id, restock_id: idempotency.command_id(Some(admin.user_id)), quantity: request.quantity };
    let inventory = state.call(&command, context.message(Some(admin.user_id))).await?;
    Ok(Json(InventoryBody::from(&inventory)))
}

/// `GET /api/inventory/{product_id}`: a product's stock (admin).
#[utoipa::path(
    get,
    path = "/api/inventory/{product_id}",
    tag = "inventory",
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "The product")),
    responses(
        (status = 200, description = "The stock", body = InventoryBody),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_inventory(
    State(state): State<AppState>,
    context: RequestContext,
    Admin(admin): Admin,
    PathId(product_id): PathId,
) -> Result<Json<InventoryBody>, ApiError> {
    ensure_product_exists(&state, &context, &admin, product_id).await?;
    let inventory = state.call(&GetInventory { product_id }, context.message(Some(admin.user_id))).await?;
    Ok(Json(InventoryBody::from(&inventory)))
}
