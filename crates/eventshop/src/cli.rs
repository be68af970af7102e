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
