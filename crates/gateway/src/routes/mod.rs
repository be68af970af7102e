//! The routes of SPEC §4 that the gateway serves, one module per service they talk to,
//! and the JSON shapes they share.
//!
//! The contracts' types do not describe themselves for OpenAPI, so each route module
//! defines its HTTP request and response shapes (deriving `ToSchema`) and maps them to
//! and from the contracts. Request shapes hold the contracts' newtypes, so that a value
//! the domain would refuse fails the decode and is reported with its JSON path.

pub mod admin;
pub mod cart;
pub mod catalog;
pub mod health;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod recommendations;
pub mod reviews;
pub mod shipping;
pub mod wallet;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use contracts::values::PageRequest;
use contracts::{Currency, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};
use crate::extract::{Json, entity_tag, parse_query_parameter};
use crate::state::AppState;

/// Every route, without the layers (see [`crate::router`]).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(identity::register))
        .route("/oauth/token", post(identity::token))
        .route("/api/users/me", get(identity::get_profile).patch(identity::change_profile))
        .route("/api/users/me/addresses", get(identity::list_addresses).post(identity::add_address))
        .route("/api/users/me/addresses/{id}", delete(identity::remove_address))
        .route("/api/products", get(catalog::list_products).post(catalog::create_product))
        .route(
            "/api/products/{id}",
            get(catalog::get_product).patch(catalog::update_product).delete(catalog::discontinue_product),
        )
        .route("/api/inventory/{product_id}", get(inventory::get_inventory))
        .route("/api/inventory/{product_id}/restock", post(inventory::restock))
        .route("/api/wallet", get(wallet::get_wallet))
        .route("/api/wallet/deposits", post(wallet::deposit))
        .route("/api/wallet/transactions", get(wallet::list_transactions))
        .route("/api/cart", get(cart::get_cart).delete(cart::clear_cart))
        .route("/api/cart/items/{product_id}", put(cart::set_item).delete(cart::remove_item))
        .route("/api/cart/checkout", post(cart::checkout))
        .route("/api/orders", get(orders::list_orders).post(orders::place_order))
        .route("/api/orders/{id}", get(orders::get_order))
        .route("/api/orders/{id}/cancel", post(orders::cancel_order))
        .route("/api/orders/{id}/events", get(orders::order_events))
        .route("/api/shipments/{order_id}", get(shipping::get_shipment))
        .route("/api/shipments/{id}/dispatch", post(shipping::dispatch_shipment))
        .route("/api/shipments/{id}/deliver", post(shipping::deliver_shipment))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(crate::metrics::serve_metrics))
        .route("/api/openapi.json", get(crate::openapi::serve_openapi))
        .route("/docs", get(crate::docs::page))
        .route("/docs/app.js", get(crate::docs::script))
        .route("/docs/app.css", get(crate::docs::stylesheet))
        .merge(reviews::routes())
        .merge(notifications::routes())
        .merge(recommendations::routes())
        .merge(admin::routes())
        .merge(crate::web::routes())
}

/// Any path no route matches: a 404 problem.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("there is no route {}", uri.path()))
}

/// A currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Currency)]
pub enum CurrencyBody {
    #[serde(rename = "EUR")]
    Eur,
}

impl From<Currency> for CurrencyBody {
    fn from(currency: Currency) -> Self {
        match currency {
            Currency::Eur => CurrencyBody::Eur,
        }
    }
}

/// An amount of money: integer minor units (cents) and a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Money, example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyBody {
    /// Minor units: 1999 is 19.99.
    pub amount: i64,
    pub currency: CurrencyBody,
}

impl From<Money> for MoneyBody {
    fn from(money: Money) -> Self {
        MoneyBody { amount: money.amount, currency: money.currency.into() }
    }
}

/// The `limit` and `cursor` of a list, checked (SPEC §4: default 20, at most 100).
pub(crate) fn page_request(limit: Option<&str>, cursor: Option<&str>, errors: &mut Vec<FieldError>) -> PageRequest {
    let limit = match parse_query_parameter::<u32>("limit", limit, "a whole number from 1 to 100", errors) {
        Some(limit) if (1..=PageRequest::MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            errors.push(FieldError::new("limit", "must be a whole number from 1 to 100"));
            PageRequest::DEFAULT_LIMIT
        }
        None => PageRequest::DEFAULT_LIMIT,
    };
    let cursor = cursor.map(str::trim).filter(|cursor| !cursor.is_empty()).map(str::to_owned);
    if cursor.as_ref().is_some_and(|cursor| cursor.len() > 1000) {
        errors.push(FieldError::new("cursor", "is not a cursor this API gave"));
    }
    PageRequest { limit, cursor }
}

/// A JSON answer with an `ETag` of the resource's stream version.
pub(crate) fn with_entity_tag(status: StatusCode, version: u64, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&entity_tag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// A 201 with the new resource's `Location` and `ETag`.
pub(crate) fn created(location: &str, version: u64, body: impl Serialize) -> Response {
    let mut response = with_entity_tag(StatusCode::CREATED, version, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
