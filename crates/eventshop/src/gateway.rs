//! `eventshop gateway`: only the HTTP gateway of a NATS deployment. It holds nothing
//! durable, so any number may run behind a load balancer; each sends its commands and
//! queries to whichever instance of a service the NATS queue group picks.

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::services::{connect_nats, shutdown_signal};
use crate::shop::print_addresses;

/// The shortest signing key a gateway accepts (HS256 wants at least 256 bits).
const MIN_SECRET_LENGTH: usize = 32;

pub async fn gateway(config: Config) -> anyhow::Result<()> {
    let url = config.nats_url("gateway")?;
    // A token issued by one gateway must be accepted by every other, so the key cannot be
    // generated per process as `run` does.
    let secret = config.jwt_secret.as_deref().context(
        "`eventshop gateway` needs EVENTSHOP_JWT_SECRET (or jwt_secret in the configuration file): \
         every gateway must sign and check tokens with the same key",
    )?;
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_LENGTH,
        "EVENTSHOP_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters"
    );
    tracing::info!(?config, "starting the gateway");
    let bus = Arc::new(connect_nats(url, &config.namespace).await?);
    let gateway_config = gateway::GatewayConfig { jwt_secret: secret.as_bytes().to_vec(), ..Default::default() };
    let router = gateway::router(bus, gateway_config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    print_addresses(listener.local_addr()?);
    gateway::serve(listener, router, shutdown_signal()).await.context("the HTTP gateway failed")?;
    tracing::info!("stopped");
    Ok(())
}
