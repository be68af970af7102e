//! The command line. Every flag also reads an `EVENTSHOP_*` variable; flags win.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "eventshop", version, about = "An event-sourced, event-driven shop", propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs every service and the HTTP gateway in one process.
    ///
    /// By default on embedded SQLite (one database per service under --data-dir) with the
    /// in-process bus; with --store postgres://… and --bus nats://… on PostgreSQL (a schema
    /// per service) and NATS JetStream.
    Run(RunArguments),
    /// Runs only the named services, on PostgreSQL and NATS: one process of a scaled-out
    /// deployment (SPEC §8).
    ///
    /// Run it as many times as you want instances, on as many machines: instances of a
    /// service share its PostgreSQL schema, its requests (a NATS queue group) and its events
    /// (durable JetStream consumers). Needs --store postgres://… and --bus nats://…; the
    /// first administrator (EVENTSHOP_ADMIN_EMAIL / _PASSWORD) is created by the processes
    /// that run identity.
    Serve(ServeArguments),
    /// Runs only the HTTP gateway of a NATS deployment; run several behind a load balancer.
    ///
    /// Every gateway must sign and check tokens with the same key, so EVENTSHOP_JWT_SECRET
    /// (at least 32 characters, or `jwt_secret` in the configuration file) is required.
    Gateway(GatewayArguments),
    /// Reads or changes a runtime setting (such as orders.payment_timeout) in the NATS
    /// key-value bucket that running instances watch; they apply a change without a restart.
    Config(ConfigArguments),
    /// Loads a sample catalog with stock, users and wallets into a running shop through its
    /// API, as the administrator of EVENTSHOP_ADMIN_EMAIL / EVENTSHOP_ADMIN_PASSWORD.
    DemoData(DemoDataArguments),
    /// Drives a running shop with virtual users (shoppers, a flash sale, or read-only
    /// browsers) and reports throughput and latency percentiles, as text, JSON and HTML.
    Loadtest(loadtest::LoadtestArguments),
}

/// Settings of `run`; any not given comes from the environment, then `eventshop.toml`,
/// then the defaults.
#[derive(Debug, Args)]
pub struct RunArguments {
    /// Address of the HTTP gateway [default: 127.0.0.1:8080].
    #[arg(long, env = "EVENTSHOP_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded databases and the generated signing key
    /// [default: ./eventshop-data].
    #[arg(long, env = "EVENTSHOP_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Event stores: `sqlite` (embedded, under --data-dir) or a `postgres://` URL
    /// [default: sqlite].
    #[arg(long, env = "EVENTSHOP_STORE", value_name = "STORE")]
    pub store: Option<String>,
    /// Bus: `in-process` or a `nats://` URL [default: in-process].
    #[arg(long, env = "EVENTSHOP_BUS", value_name = "BUS")]
    pub bus: Option<String>,
    /// Namespace of this shop on a shared NATS server [default: eventshop].
    #[arg(long, env = "EVENTSHOP_NAMESPACE", value_name = "NAME")]
    pub namespace: Option<String>,
    /// Configuration file [default: ./eventshop.toml, if it exists].
    #[arg(long, env = "EVENTSHOP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Connections each service's PostgreSQL store may hold [default: 4].
    #[arg(long, env = "EVENTSHOP_POSTGRES_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub postgres_connections: Option<u32>,
}

/// Where a NATS deployment meets: the bus, the namespace on it, and the file.
#[derive(Debug, Args)]
pub struct NatsArguments {
    /// The NATS server, a `nats://` URL (required, here or in the file).
    #[arg(long, env = "EVENTSHOP_BUS", value_name = "BUS")]
    pub bus: Option<String>,
    /// Namespace of this shop on a shared NATS server [default: eventshop].
    #[arg(long, env = "EVENTSHOP_NAMESPACE", value_name = "NAME")]
    pub namespace: Option<String>,
    /// Configuration file [default: ./eventshop.toml, if it exists].
    #[arg(long, env = "EVENTSHOP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Settings of `serve`; any not given comes from the environment, then `eventshop.toml`.
#[derive(Debug, Args)]
pub struct ServeArguments {
    /// The services to run (identity, catalog, inventory, payments, orders, cart, shipping,
    /// reviews, notifications, recommendations), or `all`.
    #[arg(value_name = "SERVICE", required = true, num_args = 1..)]
    pub services: Vec<String>,
    /// Event stores: a `postgres://` URL (required, here or in the file); each service
    /// uses its own schema of that database.
    #[arg(long, env = "EVENTSHOP_STORE", value_name = "STORE")]
    pub store: Option<String>,
    #[command(flatten)]
    pub nats: NatsArguments,
    /// Connections each service's PostgreSQL store may hold [default: 4].
    #[arg(long, env = "EVENTSHOP_POSTGRES_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub postgres_connections: Option<u32>,
}

/// Settings of `gateway`; any not given comes from the environment, then `eventshop.toml`.
#[derive(Debug, Args)]
pub struct GatewayArguments {
    /// Address of the HTTP gateway [default: 127.0.0.1:8080].
    #[arg(long, env = "EVENTSHOP_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub nats: NatsArguments,
}

#[derive(Debug, Args)]
pub struct ConfigArguments {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Prints the setting's value, or says that it is not set.
    Get {
        /// The setting, such as orders.payment_timeout.
        key: String,
        #[command(flatten)]
        nats: NatsArguments,
    },
    /// Sets the setting for every running instance; known settings are checked first.
    Set {
        /// The setting, such as orders.payment_timeout.
        key: String,
        /// Its new value, such as 10s.
        value: String,
        #[command(flatten)]
        nats: NatsArguments,
    },
}

#[derive(Debug, Args)]
pub struct DemoDataArguments {
    /// The shop's base URL.
    #[arg(long, env = "EVENTSHOP_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The administrator's email.
    #[arg(long, env = "EVENTSHOP_ADMIN_EMAIL", value_name = "EMAIL")]
    pub admin_email: String,
    /// The administrator's password.
    #[arg(long, env = "EVENTSHOP_ADMIN_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub admin_password: String,
}
