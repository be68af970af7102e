//! The pieces every process of the shop is built from: the table of services, opening a
//! service's store and the bus, starting a chosen set of services, the first
//! administrator, and the shutdown signal. `run`, `serve` and `gateway` only combine them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bus_nats::config::NatsSettings;
use bus_nats::{Namespace, NatsBus};
use contracts::Role;
use contracts::identity::{RegisterUser, User};
use contracts::values::{Email, Password, PersonName};
use eventshop_core::EventStore;
use eventshop_core::bus::{Bus, BusError, CallError, MessageContext, RejectionKind, Running, call};
use eventshop_core::consumer::ConsumerStorage;
use eventshop_core::settings::{LocalSettings, Settings};
use futures::future::BoxFuture;
use runtime::{InProcessBus, RunningService, ServiceContext, StartError};
use store_postgres::{PgEventStore, PoolSettings};
use store_sqlite::{SqliteEventStore, SqliteStoreOptions};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{BusChoice, Config, StoreChoice};

type Start = fn(ServiceContext) -> BoxFuture<'static, Result<RunningService, StartError>>;

/// Every service of the shop (SPEC §1), in the order they start. Every store is published
/// on the bus before any service starts, so that each may consume any other's events
/// whatever the order.
pub const SERVICES: &[(&str, Start)] = &[
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

/// The longest an admin command waits for a service at start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The services named on the command line, in start order; `all` names every one.
/// Unknown names are an error that lists the known ones.
pub fn select(names: &[String]) -> anyhow::Result<Vec<(&'static str, Start)>> {
    anyhow::ensure!(!names.is_empty(), "name at least one service to serve, or `all`");
    for name in names {
        if name != "all" && !SERVICES.iter().any(|(known, _)| known == name) {
            let known: Vec<&str> = SERVICES.iter().map(|(known, _)| *known).collect();
            anyhow::bail!("unknown service {name:?}; the services are {} (or `all`)", known.join(", "));
        }
    }
    let all = names.iter().any(|name| name == "all");
    Ok(SERVICES.iter().filter(|(known, _)| all || names.iter().any(|name| name == known)).copied().collect())
}

/// The bus and the live settings of a process. On NATS the settings are the namespace's
/// key-value bucket, shared by every instance, with the file's `[settings]` as defaults.
pub async fn open_bus(config: &Config) -> anyhow::Result<(Arc<dyn Bus>, Arc<dyn Settings>)> {
    Ok(match &config.bus {
        BusChoice::InProcess => (Arc::new(InProcessBus::new()), config.settings.clone()),
        BusChoice::Nats { url } => {
            let bus = connect_nats(url, &config.namespace).await?;
            let live = NatsSettings::open(&bus).await.context("cannot open the settings bucket on NATS")?;
            let settings = LayeredSettings { live, file: config.settings.clone() };
            (Arc::new(bus), Arc::new(settings))
        }
    })
}

/// Connects to NATS in the namespace of the configuration.
pub async fn connect_nats(url: &str, namespace: &str) -> anyhow::Result<NatsBus> {
    let namespace =
        Namespace::new(namespace.to_owned()).map_err(|error| anyhow::anyhow!("invalid --namespace: {error}"))?;
    NatsBus::connect(url, namespace).await.with_context(|| format!("cannot connect to {url}"))
}

/// The service's own event store, which also keeps its consumers' dead letters.
pub async fn open_store(
    config: &Config,
    service: &str,
) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ConsumerStorage>)> {
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
            let pool = PoolSettings { max_connections: config.postgres_connections, ..PoolSettings::default() };
            let store = Arc::new(
                PgEventStore::connect_with(url, service, &pool)
                    .await
                    .with_context(|| format!("cannot open the {service} schema of {url}"))?,
            );
            (store.clone(), store)
        }
    })
}

/// Services running in this process, with the relays of their stores.
pub struct Started {
    publishers: Vec<Box<dyn Running>>,
    services: Vec<(&'static str, RunningService)>,
}

impl Started {
    /// Opens each chosen service's store, publishes its events on the bus, then starts
    /// the services, and creates the first administrator if identity is among them.
    pub async fn start(
        config: &Config,
        bus: &Arc<dyn Bus>,
        settings: &Arc<dyn Settings>,
        chosen: &[(&'static str, Start)],
    ) -> anyhow::Result<Started> {
        let mut publishers: Vec<Box<dyn Running>> = Vec::new();
        let mut contexts = Vec::new();
        for (name, start) in chosen {
            let (store, consumers) = open_store(config, name).await?;
            publishers.push(bus.publish_events(name, store.clone()).await?);
            contexts.push((
                *name,
                *start,
                ServiceContext { store, bus: bus.clone(), consumers, settings: settings.clone() },
            ));
        }
        let mut services = Vec::new();
        for (name, start, context) in contexts {
            let running = start(context).await.with_context(|| format!("cannot start the {name} service"))?;
            tracing::info!(service = name, "started");
            services.push((name, running));
        }
        let started = Started { publishers, services };
        if chosen.iter().any(|(name, _)| *name == contracts::identity::SERVICE)
            && let Some((email, password)) = &config.admin
        {
            create_first_admin(&**bus, email, password).await?;
        }
        Ok(started)
    }

    /// Stops the services in the reverse order of their start (each stops taking requests
    /// and its consumers finish the event in hand), then the relays.
    pub async fn stop(self) {
        for (name, service) in self.services.into_iter().rev() {
            service.stop().await;
            tracing::debug!(service = name, "stopped");
        }
        for publisher in self.publishers {
            publisher.stop().await;
        }
    }
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

/// The live settings of a NATS deployment: the shared bucket wins; a key absent from it
/// takes the value of this process's configuration file, so that a file still gives
/// defaults, and `eventshop config set` overrides them everywhere at once.
#[derive(Debug)]
struct LayeredSettings {
    live: NatsSettings,
    file: Arc<LocalSettings>,
}

#[async_trait]
impl Settings for LayeredSettings {
    async fn get(&self, key: &str) -> Result<Option<String>, BusError> {
        match self.live.get(key).await? {
            Some(value) => Ok(Some(value)),
            None => self.file.get(key).await,
        }
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), BusError> {
        self.live.set(key, value).await
    }

    async fn watch(&self, key: &str) -> Result<watch::Receiver<Option<String>>, BusError> {
        let mut live = self.live.watch(key).await?;
        let fallback = self.file.get(key).await?;
        let (sender, receiver) = watch::channel(live.borrow_and_update().clone().or_else(|| fallback.clone()));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.closed() => return,
                    changed = live.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let value = live.borrow_and_update().clone().or_else(|| fallback.clone());
                        sender.send_if_modified(|current| {
                            let changed = *current != value;
                            *current = value;
                            changed
                        });
                    }
                }
            }
        });
        Ok(receiver)
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_chosen_by_name_in_start_order() {
        let names = |chosen: Vec<(&'static str, Start)>| chosen.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        let chosen = select(&["orders".to_owned(), "identity".to_owned()]).expect("known");
        assert_eq!(names(chosen), ["identity", "orders"]);
        assert_eq!(select(&["all".to_owned()]).expect("all").len(), SERVICES.len());
        assert!(select(&["ordrs".to_owned()]).expect_err("unknown").to_string().contains("identity, catalog"));
        assert!(select(&[]).is_err());
    }

    /// The bucket wins over the file, and a watcher sees the bucket's changes.
    #[tokio::test]
    async fn the_bucket_overrides_the_file() {
        let Some(client) = bus_nats::testing::connect("es").await else { return };
        let bus = NatsBus::from_client(client, bus_nats::testing::fresh_namespace("es"));
        let file = Arc::new(LocalSettings::new([("orders.payment_timeout".to_owned(), "30s".to_owned())]));
        let settings = LayeredSettings { live: NatsSettings::open(&bus).await.expect("bucket"), file };
        let mut watched = settings.watch("orders.payment_timeout").await.expect("watch");
        assert_eq!(watched.borrow_and_update().as_deref(), Some("30s"), "the file's value while the bucket has none");
        assert_eq!(settings.get("orders.payment_timeout").await.expect("get").as_deref(), Some("30s"));
        settings.set("orders.payment_timeout", "10s").await.expect("set");
        tokio::time::timeout(Duration::from_secs(5), watched.changed()).await.expect("in time").expect("changed");
        assert_eq!(watched.borrow().as_deref(), Some("10s"));
        assert_eq!(settings.get("orders.payment_timeout").await.expect("get").as_deref(), Some("10s"));
        assert_eq!(settings.get("inventory.low_stock_threshold").await.expect("get"), None);
    }
}
