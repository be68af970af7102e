//! The HTTP gateway: eventshop's public API (SPEC §4), translated into requests on the bus.
//!
//! The gateway reads no service's tables and holds nothing durable: every route decodes
//! its input at the edge into the contracts' types, sends one or two requests with
//! [`eventshop_core::bus::call`], and turns the reply (or the rejection) into HTTP. What
//! it keeps in memory — signing keys, the failed-login counts — is lost on restart on
//! purpose: a restarted gateway only forgets who recently failed to log in.
//!
//! The binary builds it with [`router`] and runs it with [`serve`]; [`openapi`] is the
//! document served at `/api/openapi.json`.

mod auth;
mod context;
mod docs;
mod error;
mod extract;
mod login_limit;
mod metrics;
mod openapi;
mod routes;
mod state;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use eventshop_core::bus::RequestBus;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::{ApiError, FieldError, Problem};
pub use openapi::openapi;

/// The largest request body read (SPEC §4: larger is refused with 400).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The shortest HS256 key accepted: RFC 7518 §3.2 asks for a key as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// How the gateway signs tokens, waits for services and limits logins.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The HS256 key that signs and checks access tokens; at least [`MIN_SECRET_BYTES`].
    /// Tokens are only ever checked as HS256, whatever their header says.
    pub jwt_secret: Vec<u8>,
    /// How long an access token is good for. Default 15 minutes.
    pub access_token_ttl: Duration,
    /// How long a request on the bus may take before the answer is 504. Default 10 s.
    pub request_timeout: Duration,
    /// Failed logins allowed per window, per account and per client address. Default 5.
    pub login_attempts: u32,
    /// The window failed logins are counted in. Default 15 minutes.
    pub login_window: Duration,
}

impl GatewayConfig {
    /// Whether the secret is long enough to sign with. [`router`] replaces a short one by
    /// a random key (logging an error), so the binary should check this at start.
    pub fn has_usable_secret(&self) -> bool {
        self.jwt_secret.len() >= MIN_SECRET_BYTES
    }
}

impl Default for GatewayConfig {
    /// A random secret: tokens then hold only until the process ends, which is right for
    /// tests and a single embedded process, and wrong for several gateways.
    fn default() -> Self {
        GatewayConfig {
            jwt_secret: random_secret(),
            access_token_ttl: Duration::from_secs(15 * 60),
            request_timeout: Duration::from_secs(10),
            login_attempts: 5,
            login_window: Duration::from_secs(15 * 60),
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("jwt_secret", &format_args!("<redacted, {} bytes>", self.jwt_secret.len()))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("request_timeout", &self.request_timeout)
            .field("login_attempts", &self.login_attempts)
            .field("login_window", &self.login_window)
            .finish()
    }
}

pub(crate) fn random_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0_u8; 64];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

/// The gateway's routes with every layer: request and correlation ids, tracing, metrics,
/// security headers, the body limit, and a panic turned into a 500 problem.
pub fn router(bus: Arc<dyn RequestBus>, config: GatewayConfig) -> Router {
    let state = state::AppState::new(bus, config);
    // Installed before the first request, so that its counts are not lost.
    metrics::handle();
    routes::routes()
        .fallback(routes::not_found)
        .layer(CatchPanicLayer::custom(context::panic_response))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(context::request_context))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(context::MakeRequestIdV7))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

/// Scripts, styles and fetches from this origin only: the docs page loads its own script
/// and stylesheet and calls the API; nothing may frame any page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in
/// flight finish. Handlers see the client's address (for the login limit).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let config =
            GatewayConfig { jwt_secret: b"a-very-secret-key-of-32-bytes!!!".to_vec(), ..GatewayConfig::default() };
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn the_default_secret_is_random_and_long_enough() {
        let (first, second) = (GatewayConfig::default(), GatewayConfig::default());
        assert!(first.has_usable_secret());
        assert_ne!(first.jwt_secret, second.jwt_secret);
    }
}
