//! `eventshop serve SERVICE…`: some of the services, as one process of a distributed
//! deployment (SPEC §8).
//!
//! Instances of a service share everything that must be shared: its PostgreSQL schema
//! (migrations run under advisory locks, so instances may start at once), its requests (a
//! NATS queue group per service), and its events (durable JetStream consumers, one per
//! consuming service, whose partitions the instances share). So a serve process refuses
//! SQLite and the in-process bus, which no other process could reach.

use anyhow::bail;

use crate::cli::ServeArguments;
use crate::config::{Config, StoreChoice};
use crate::services::{self, Started, open_bus, shutdown_signal};

pub async fn serve(arguments: ServeArguments) -> anyhow::Result<()> {
    let chosen = services::select(&arguments.services)?;
    let config = Config::load(&arguments)?;
    if config.store == StoreChoice::Sqlite {
        bail!(
            "`eventshop serve` needs --store postgres://… (or EVENTSHOP_STORE): the instances of a service \
             share its store, and an embedded SQLite file belongs to one process (use `eventshop run` for that)"
        );
    }
    config.nats_url("serve")?;
    tracing::info!(?config, services = ?chosen.iter().map(|(name, _)| *name).collect::<Vec<_>>(), "starting");
    let (bus, settings) = open_bus(&config).await?;
    let started = Started::start(&config, &bus, &settings, &chosen).await?;
    let names: Vec<&str> = chosen.iter().map(|(name, _)| *name).collect();
    // Like `run`'s address line: scripts and tests wait for it to know the services answer.
    println!("eventshop serving {} in namespace {}", names.join(" "), config.namespace);

    shutdown_signal().await;
    started.stop().await;
    tracing::info!("stopped");
    Ok(())
}
