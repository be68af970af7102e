//! `eventshop`: one binary for the whole shop and its tools (SPEC §5).
//!
//! Thin on purpose: parse the command line, set up logging, hand over to the command.

mod cli;
mod config;
mod demo_data;
mod gateway;
mod serve;
mod services;
mod settings_command;
mod shop;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("EVENTSHOP_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run(arguments) => shop::run(config::Config::load(arguments)?).await,
        Command::Serve(arguments) => serve::serve(arguments).await,
        Command::Gateway(arguments) => gateway::gateway(config::Config::load(arguments)?).await,
        Command::Config(arguments) => settings_command::config(arguments.action).await,
        Command::DemoData(arguments) => demo_data::load(arguments).await,
        Command::Loadtest(arguments) => loadtest::run(arguments).await.map(drop).map_err(Into::into),
    }
}
