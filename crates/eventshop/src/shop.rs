//! `eventshop run`: every service and the gateway in one process.
//!
//! Builds one event store per service (a SQLite file or a PostgreSQL schema), one bus
//! (in-process or NATS), makes each store's events available on the bus, starts the
//! services, creates the first administrator, and serves HTTP until SIGTERM or Ctrl-C.
//! Shutdown drains in order: the gateway finishes its requests, then each service stops
//! taking requests and its consumers finish the event in hand.

use std::path::Path;

use anyhow::Context;

use crate::config::Config;
use crate::services::{SERVICES, Started, open_bus, shutdown_signal};

pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let (bus, settings) = open_bus(&config).await?;
    let started = Started::start(&config, &bus, &settings, SERVICES).await?;

    let jwt_secret = signing_key(&config)?;
    let gateway_config = gateway::GatewayConfig { jwt_secret, ..gateway::GatewayConfig::default() };
    anyhow::ensure!(gateway_config.has_usable_secret(), "the JWT signing key must be at least 32 bytes");
    let router = gateway::router(bus.clone(), gateway_config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    print_addresses(listener.local_addr()?);

    gateway::serve(listener, router, shutdown_signal()).await.context("the HTTP gateway failed")?;
    tracing::info!("HTTP drained; stopping services");
    started.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// The first line on stdout is the address, so that scripts and tests started on port 0
/// can find it.
pub fn print_addresses(address: std::net::SocketAddr) {
    println!("eventshop listening on http://{address}");
    println!("  shop:      http://{address}/");
    println!("  dashboard: http://{address}/dashboard");
    println!("  API docs:  http://{address}/docs");
    println!("  OpenAPI:   http://{address}/api/openapi.json");
    println!("  health:    http://{address}/health/ready");
    println!("  metrics:   http://{address}/metrics");
}

/// The JWT signing key: from the configuration, else from `<data-dir>/jwt-secret`,
/// generated on first start.
fn signing_key(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        anyhow::ensure!(secret.len() >= 32, "EVENTSHOP_JWT_SECRET must be at least 32 characters");
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().as_bytes().to_vec());
    }
    let secret = random_hex(32);
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret.into_bytes())
}

fn random_hex(length: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; length];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
