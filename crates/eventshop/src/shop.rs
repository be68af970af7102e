//! `eventshop run`: every service and the gateway in one process.
//!
//! Builds one event store per service (a SQLite file or a PostgreSQL schema), one bus
//! (in-process or NATS), makes each store's events available on the bus, starts the
//! services, creates the first administrator, and serves HTTP until SIGTERM or Ctrl-C.
//! Shutdown drains in order: the gateway finishes its requests, then each service stops
//! taking requests and its consumers finish the event in hand.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus_nats::{Namespace, NatsBus};
use contracts::Role;
use contracts::identity::{RegisterUser, User};
use contracts::values::{Email, Password, PersonName};
use eventshop_core::EventStore;
use eventshop_core::bus::{Bus, CallError, MessageContext, RejectionKind, Running, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::Settings;
use futures::future::BoxFuture;
use runtime::{InProcessBus, RunningService, ServiceContext, StartError};
use store_postgres::{PgEventStore, PoolSettings};
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};
use uuid::Uuid;

use crate::config::{BusChoice, Config, StoreChoice};

type Start = fn(ServiceContext) -> BoxFuture<'static, Result<RunningService, StartError>>;

/// The services `run` starts. Every store is published on the bus before any service
/// starts, so that each may consume any other's events whatever the order.
const SERVICES: &[(&str, Start)] = &[
    (contracts::identity::SERVICE, |context| Box::pin(identity::start(context))),
    (contracts::catalog::SERVICE, |context| Box::pin(catalog::start(context))),
    (contracts::inventory::SERVICE, |context| Box::pin(inventory::start(context))),
    (contracts::payments::SERVICE, |context| Box::pin(payments::start(context))),
    (contracts::orders::SERVICE, |context| Box::pin(orders::start(context))),
    (contracts::cart::SERVICE, |context| Box::pin(cart::start(context))),
    (contracts::shipping::SERVICE, |context| Box::pin(shipping::start(context))),
    (contracts::reviews::SERVICE, |context| Box::pin(reviews::start(context))),
    (contracts::notifications::SERVICE, |context| Box::pin(notifications::start(context))),
    (contracts::recommendations::SERVICE, |context| Box::pin(recommendations::start(context))),
];

/// Connections each service's store may hold. Seven services share the server's
/// `max_connections` (100 by default) with every other process of the deployment; a
/// service's work is short transactions, and appends of one store are batched by
/// PostgreSQL's group commit rather than by more connections.
const POSTGRES_CONNECTIONS_PER_SERVICE: u32 = 4;

/// The longest an admin command waits for a service at start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let bus = open_bus(&config).await?;
    let settings: Arc<dyn Settings> = config.settings.clone();

    let mut publishers: Vec<Box<dyn Running>> = Vec::new();
    let mut contexts = Vec::new();
    for (name, start) in SERVICES {
        let (store, consumers) = open_store(&config, name).await?;
        publishers.push(bus.publish_events(name, store.clone()).await?);
        contexts.push((
            *name,
            *start,
            ServiceContext { store, bus: bus.clone(), consumers, settings: settings.clone() },
        ));
    }
    let mut services: Vec<(&str, RunningService)> = Vec::new();
    for (name, start, context) in contexts {
        let running = start(context).await.with_context(|| format!("cannot start the {name} service"))?;
        services.push((name, running));
    }

    if let Some((email, password)) = &config.admin {
        create_first_admin(&*bus, email, password).await?;
    }

    let jwt_secret = signing_key(&config)?;
    let gateway_config = gateway::GatewayConfig { jwt_secret, ..gateway::GatewayConfig::default() };
    anyhow::ensure!(gateway_config.has_usable_secret(), "the JWT signing key must be at least 32 bytes");
    let router = gateway::router(bus.clone(), gateway_config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    // The first line on stdout is the address, so that scripts and tests started on port
    // 0 can find it.
    println!("eventshop listening on http://{address}");
    println!("  API docs:  http://{address}/docs");
    println!("  OpenAPI:   http://{address}/api/openapi.json");
    println!("  health:    http://{address}/health/ready");
    println!("  metrics:   http://{address}/metrics");

    gateway::serve(listener, router, shutdown_signal()).await.context("the HTTP gateway failed")?;
    tracing::info!("HTTP drained; stopping services");
    for (name, service) in services.into_iter().rev() {
        service.stop().await;
        tracing::debug!(service = name, "stopped");
    }
    for publisher in publishers {
        publisher.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn open_bus(config: &Config) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match &config.bus {
        BusChoice::InProcess => Arc::new(InProcessBus::new()),
        BusChoice::Nats { url } => {
            let namespace = Namespace::new(config.namespace.clone())
                .map_err(|error| anyhow::anyhow!("invalid --namespace: {error}"))?;
            Arc::new(NatsBus::connect(url, namespace).await.with_context(|| format!("cannot connect to {url}"))?)
        }
    })
}

/// The service's own event store, which also keeps its consumers' dead letters.
async fn open_store(config: &Config, service: &str) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ConsumerStorage>)> {
    Ok(match &config.store {
        StoreChoice::Sqlite => {
            let path = config.data_dir.join(format!("{service}.sqlite"));
            let store = Arc::new(
                SqliteEventStore::open(&path, SqliteStoreOptions::default())
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?,
            );
            (store.clone(), store)
        }
        StoreChoice::Postgres { url } => {
            let pool = PoolSettings { max_connections: POSTGRES_CONNECTIONS_PER_SERVICE, ..PoolSettings::default() };
            let store = Arc::new(
                PgEventStore::connect_with(url, service, &pool)
                    .await
                    .with_context(|| format!("cannot open the {service} schema of {url}"))?,
            );
            (store.clone(), store)
        }
    })
}

/// Creates the administrator of SPEC §4 unless the email is taken. The user id is derived
/// from the email, so that every start (and every instance) asks for the same user.
async fn create_first_admin(bus: &dyn Bus, email: &str, password: &str) -> anyhow::Result<()> {
    let email = Email::try_from(email.to_owned()).context("EVENTSHOP_ADMIN_EMAIL")?;
    let command = RegisterUser {
        user_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("eventshop:admin:{email}").as_bytes()),
        email: email.clone(),
        password: Password::try_from(password.to_owned()).context("EVENTSHOP_ADMIN_PASSWORD")?,
        name: PersonName::try_from("Administrator".to_owned())?,
        role: Role::Admin,
    };
    let result: Result<User, CallError> =
        call(bus, &command, MessageContext::new_transaction(None), STARTUP_TIMEOUT).await;
    match result {
        Ok(user) => tracing::info!(%email, user_id = %user.id, "administrator ready"),
        Err(CallError::Rejected(rejection)) if rejection.kind == RejectionKind::Conflict => {
            tracing::info!(%email, "a user with the administrator's email exists already");
        }
        Err(error) => return Err(error).context("cannot create the first administrator"),
    }
    Ok(())
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

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
