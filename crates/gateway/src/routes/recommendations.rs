//! The recommendations routes of SPEC §4.

use axum::Router;
use utoipa::OpenApi;

use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths())]
pub(crate) struct Api;
