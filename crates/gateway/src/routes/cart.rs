//! Cart's routes for the user logged in: the cart priced from the catalog, its lines, and
//! the checkout that turns it into an order.
//!
//! A cart is one stream, so its answers carry an `ETag` and its changes honour
//! `If-Match` (412 when stale). The checkout answers like `POST /api/orders`: 202 with the
//! order's `Location`; the cart is emptied once the order is confirmed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use contracts::cart::{Cart, CartLine, CheckoutCart, ClearCart, GetCart, RemoveCartItem, SetCartItem};
use contracts::identity::AddressInput;
use contracts::values::Quantity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::context::RequestContext;
use crate::error::{ApiError, Problem};
use crate::extract::{IdempotencyKey, IfMatch, Json, PathId};
use crate::routes::identity::AddressRequest;
use crate::routes::orders::{OrderAcceptedBody, PaymentMethodBody, accepted};
use crate::routes::{MoneyBody, with_entity_tag};
use crate::state::AppState;

/// A line of the cart, at the catalog's current name and price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CartLine)]
pub struct CartLineBody {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: u32,
    pub unit_price: MoneyBody,
    pub line_total: MoneyBody,
    /// False when the product was discontinued since it was added: checking out refuses it.
    pub available: bool,
}

impl From<&CartLine> for CartLineBody {
    fn from(line: &CartLine) -> Self {
        CartLineBody {
            product_id: line.product_id,
            name: line.name.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price.into(),
            line_total: line.line_total.into(),
            available: line.available,
        }
    }
}

/// The user's cart. A user who never added anything has an empty one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Cart)]
pub struct CartBody {
    pub items: Vec<CartLineBody>,
    pub total: MoneyBody,
}

impl From<&Cart> for CartBody {
    fn from(cart: &Cart) -> Self {
        CartBody { items: cart.items.iter().map(CartLineBody::from).collect(), total: cart.total.into() }
    }
}

/// How many units of the product the cart should hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCartItemRequest {
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 2)]
    pub quantity: Quantity,
}

/// Where to ship the cart's lines and how to pay for them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub shipping_address: AddressRequest,
    pub payment_method: PaymentMethodBody,
}

fn cart_answer(cart: &Cart) -> Response {
    with_entity_tag(StatusCode::OK, cart.version, CartBody::from(cart))
}

/// `GET /api/cart`: the cart, priced now.
#[utoipa::path(
    get,
    path = "/api/cart",
    tag = "cart",
    security(("bearer" = [])),
    responses((status = 200, description = "The cart", body = CartBody, headers(("ETag" = String))))
)]
pub(crate) async fn get_cart(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    let cart = state.call(&GetCart { user_id: user.user_id }, context.message(Some(user.user_id))).await?;
    Ok(cart_answer(&cart))
}

/// `PUT /api/cart/items/{product_id}`: sets a line's quantity, adding the product if absent.
#[utoipa::path(
    put,
    path = "/api/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    request_body = SetCartItemRequest,
    params(
        ("product_id" = Uuid, Path, description = "The product"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the cart read; * or absent: no check"),
    ),
    responses(
        (status = 200, description = "The cart after the change", body = CartBody, headers(("ETag" = String))),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The cart already has 50 lines", body = Problem,
            content_type = "application/problem+json"),
        (status = 412, description = "The cart changed since it was read", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "The quantity is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn set_item(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(product_id): PathId,
    IfMatch(expected_version): IfMatch,
    Json(request): Json<SetCartItemRequest>,
) -> Result<Response, ApiError> {
    let command = SetCartItem { user_id: user.user_id, product_id, quantity: request.quantity, expected_version };
    let cart = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(cart_answer(&cart))
}

/// `DELETE /api/cart/items/{product_id}`: removes a line.
#[utoipa::path(
    delete,
    path = "/api/cart/items/{product_id}",
    tag = "cart",
    security(("bearer" = [])),
    params(
        ("product_id" = Uuid, Path, description = "The product"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the cart read; * or absent: no check"),
    ),
    responses(
        (status = 200, description = "The cart after the change", body = CartBody, headers(("ETag" = String))),
        (status = 404, description = "The cart has no line for this product", body = Problem,
            content_type = "application/problem+json"),
        (status = 412, description = "The cart changed since it was read", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn remove_item(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    PathId(product_id): PathId,
    IfMatch(expected_version): IfMatch,
) -> Result<Response, ApiError> {
    let command = RemoveCartItem { user_id: user.user_id, product_id, expected_version };
    let cart = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(cart_answer(&cart))
}

/// `DELETE /api/cart`: empties the cart.
#[utoipa::path(
    delete,
    path = "/api/cart",
    tag = "cart",
    security(("bearer" = [])),
    params(("If-Match" = Option<String>, Header, description = "The ETag of the cart read; * or absent: no check")),
    responses(
        (status = 200, description = "The empty cart", body = CartBody, headers(("ETag" = String))),
        (status = 412, description = "The cart changed since it was read", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn clear_cart(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    IfMatch(expected_version): IfMatch,
) -> Result<Response, ApiError> {
    let cart =
        state.call(&ClearCart { user_id: user.user_id, expected_version }, context.message(Some(user.user_id))).await?;
    Ok(cart_answer(&cart))
}

/// `POST /api/cart/checkout`: places an order with the cart's lines.
#[utoipa::path(
    post,
    path = "/api/cart/checkout",
    tag = "cart",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key from the same user names the same order: a retry places nothing more")),
    responses(
        (status = 202, description = "Accepted; follow the order at Location", body = OrderAcceptedBody,
            headers(("Location" = String, description = "/api/orders/{order_id}"))),
        (status = 409, description = "The cart is empty", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or a line's product is no longer sold", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    context: RequestContext,
    user: CurrentUser,
    idempotency: IdempotencyKey,
    Json(request): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let payment_method =
        request.payment_method.parse("payment_method").map_err(|error| ApiError::invalid_fields(vec![error]))?;
    let command = CheckoutCart {
        user_id: user.user_id,
        order_id: idempotency.command_id(Some(user.user_id)),
        shipping_address: AddressInput::from(request.shipping_address),
        payment_method,
    };
    let order = state.call(&command, context.message(Some(user.user_id))).await?;
    Ok(accepted(&order))
}
