//! The OpenAPI 3.1 document of the gateway's routes, generated from the handlers'
//! `#[utoipa::path]` annotations and the HTTP shapes' `ToSchema`, so that it cannot
//! drift from the code (a snapshot test shows every change to it).

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, cart, catalog, health, identity, inventory, notifications, orders, recommendations, reviews, shipping,
    wallet,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "eventshop",
        description = "An event-sourced shop. Errors are RFC 9457 problem documents; money is integer minor \
                       units with a currency; lists answer {items, next_cursor}.",
    ),
    paths(
        identity::register,
        identity::token,
        identity::get_profile,
        identity::change_profile,
        identity::add_address,
        identity::list_addresses,
        identity::remove_address,
        catalog::list_products,
        catalog::get_product,
        catalog::create_product,
        catalog::update_product,
        catalog::discontinue_product,
        inventory::restock,
        inventory::get_inventory,
        wallet::get_wallet,
        wallet::deposit,
        wallet::list_transactions,
        cart::get_cart,
        cart::set_item,
        cart::remove_item,
        cart::clear_cart,
        cart::checkout,
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        orders::cancel_order,
        orders::order_events,
        shipping::get_shipment,
        shipping::dispatch_shipment,
        shipping::deliver_shipment,
        health::live,
        health::ready,
        crate::metrics::serve_metrics,
        serve_openapi,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerSecurity),
    tags(
        (name = "identity", description = "Users, logins and addresses"),
        (name = "catalog", description = "Products"),
        (name = "inventory", description = "Stock (administrators)"),
        (name = "payments", description = "The wallet"),
        (name = "cart", description = "The cart and its checkout"),
        (name = "orders", description = "Orders and their progress through the checkout saga"),
        (name = "shipping", description = "Shipments (dispatch and delivery: administrators)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDocument;

/// Adds the `bearer` scheme the secured routes name: a JWT from `POST /oauth/token`.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from POST /oauth/token"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of every route the gateway serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = ApiDocument::openapi();
    document.merge(reviews::Api::openapi());
    document.merge(notifications::Api::openapi());
    document.merge(recommendations::Api::openapi());
    document.merge(admin::Api::openapi());
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub(crate) async fn serve_openapi() -> Response {
    axum::Json(openapi()).into_response()
}
