//! What every handler shares: the bus, the token keys and the login limiter.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use eventshop_core::bus::{MessageContext, Operation, RequestBus, call};

use crate::GatewayConfig;
use crate::auth::TokenKeys;
use crate::error::ApiError;
use crate::login_limit::LoginLimiter;

/// The gateway's state, cheap to clone for each request.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<SharedState>,
}

#[derive(Debug)]
pub(crate) struct SharedState {
    pub bus: Arc<dyn RequestBus>,
    pub tokens: TokenKeys,
    pub login_limiter: LoginLimiter,
    pub request_timeout: Duration,
}

impl AppState {
    pub fn new(bus: Arc<dyn RequestBus>, config: GatewayConfig) -> Self {
        let secret = if config.has_usable_secret() {
            config.jwt_secret
        } else {
            // The signature of `router` cannot fail, and signing with a guessable key is
            // worse than tokens that stop working at restart.
            tracing::error!(
                length = config.jwt_secret.len(),
                minimum = crate::MIN_SECRET_BYTES,
                "the JWT secret is too short; signing with a random key instead"
            );
            crate::random_secret()
        };
        AppState {
            inner: Arc::new(SharedState {
                bus,
                tokens: TokenKeys::new(&secret, config.access_token_ttl),
                login_limiter: LoginLimiter::new(config.login_attempts, config.login_window),
                request_timeout: config.request_timeout,
            }),
        }
    }

    /// Sends `operation` to its service and maps every failure to its HTTP answer.
    pub async fn call<O: Operation>(&self, operation: &O, context: MessageContext) -> Result<O::Reply, ApiError> {
        Ok(call(&*self.bus, operation, context, self.request_timeout).await?)
    }
}

impl Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.inner
    }
}
