//! Liveness and readiness. Live: the process answers. Ready: every service the gateway
//! routes to answers on the bus that it can read its own store (SPEC §4: "stores and bus
//! reachable").

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use eventshop_core::Payload;
use eventshop_core::bus::{CHECK_HEALTH, MessageContext, Request};

use crate::extract::Json;
use crate::state::AppState;

/// The services the gateway's routes call.
const NEEDED_SERVICES: [&str; 10] = [
    contracts::identity::SERVICE,
    contracts::catalog::SERVICE,
    contracts::inventory::SERVICE,
    contracts::payments::SERVICE,
    contracts::orders::SERVICE,
    contracts::cart::SERVICE,
    contracts::shipping::SERVICE,
    contracts::reviews::SERVICE,
    contracts::notifications::SERVICE,
    contracts::recommendations::SERVICE,
];

/// How long a service has to say it is healthy.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The services that did not answer, or cannot read their store.
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
        (status = 200, description = "Every service answers and reads its store", body = Readiness),
        (status = 503, description = "Some service is not running or cannot read its store, or the bus cannot be reached", body = Readiness),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let checks = NEEDED_SERVICES.iter().map(|service| {
        let request = Request {
            service: (*service).to_owned(),
            operation: CHECK_HEALTH.to_owned(),
            context: MessageContext::new_transaction(None),
            body: Payload::from_json_unchecked("{}".to_owned()),
        };
        let bus = state.bus.clone();
        async move {
            match bus.request(request, HEALTH_TIMEOUT).await {
                Ok(Ok(_)) => None,
                Ok(Err(rejection)) => {
                    tracing::warn!(service, %rejection, "not ready: the service cannot read its store");
                    Some((*service).to_owned())
                }
                Err(error) => {
                    tracing::warn!(service, %error, "not ready: the service does not answer");
                    Some((*service).to_owned())
                }
            }
        }
    });
    let missing: Vec<String> = futures::future::join_all(checks).await.into_iter().flatten().collect();
    if missing.is_empty() {
        (StatusCode::OK, Json(Readiness { status: "ok".to_owned(), missing }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "unavailable".to_owned(), missing }))
    }
}
