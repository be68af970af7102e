//! Liveness and readiness. Live: the process answers. Ready: every service the gateway
//! routes to has at least one instance on the bus, found by discovery.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::Json;
use crate::state::AppState;

/// The services the gateway's routes call.
const NEEDED_SERVICES: [&str; 7] = [
    contracts::identity::SERVICE,
    contracts::catalog::SERVICE,
    contracts::inventory::SERVICE,
    contracts::payments::SERVICE,
    contracts::orders::SERVICE,
    contracts::cart::SERVICE,
    contracts::shipping::SERVICE,
];

/// The process answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// `ok`.
    pub status: String,
}

/// Whether the gateway can answer its routes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: String,
    /// The services with no instance running.
    pub missing: Vec<String>,
}

/// `GET /health/live`.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = Liveness))
)]
pub(crate) async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok".to_owned() })
}

/// `GET /health/ready`.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every service is running", body = Readiness),
        (status = 503, description = "Some service is not running, or the bus cannot be reached", body = Readiness),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let missing: Vec<String> = match state.bus.discover().await {
        Ok(instances) => NEEDED_SERVICES
            .iter()
            .filter(|service| !instances.iter().any(|instance| instance.name == **service))
            .map(|service| (*service).to_owned())
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "discovery failed; not ready");
            NEEDED_SERVICES.iter().map(|service| (*service).to_owned()).collect()
        }
    };
    if missing.is_empty() {
        (StatusCode::OK, Json(Readiness { status: "ok".to_owned(), missing }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "unavailable".to_owned(), missing }))
    }
}
