//! The flags of `eventshop loadtest`. Every one has a default, so `eventshop loadtest`
//! alone drives a shop on the default URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::Error;

/// The arguments of `eventshop loadtest`.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArguments {
    /// The shop's base URL.
    #[arg(long, env = "EVENTSHOP_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How many virtual users act at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// How long the users act, e.g. `30s`, `2m`. Orders placed before the end are still
    /// followed to their outcome after it.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The users start one after the other, evenly over this time.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// What the users do.
    #[arg(long, value_enum, default_value_t = Scenario::Shopper)]
    pub scenario: Scenario,
    /// Also write the report as JSON to FILE (SPEC §5's shape, and more), and the HTML
    /// report beside it unless --report says where.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the HTML report with its charts (throughput and latency over time) and the
    /// JSON report into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// The administrator's email: the setup creates and restocks products as the
    /// administrator, and the flash sale's check reads inventory and orders.
    #[arg(long, env = "EVENTSHOP_ADMIN_EMAIL", value_name = "EMAIL")]
    pub admin_email: Option<String>,
    /// The administrator's password.
    #[arg(long, env = "EVENTSHOP_ADMIN_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// How many load products (skus LOAD-001…) the shopper and browse scenarios use.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=999))]
    pub products: u32,
    /// flash-sale: units put on sale [default: a quarter of --users, at least 1].
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub flash_units: Option<u32>,
    /// How buyers pay: from their wallet (funded at registration) or by card (tok_visa).
    #[arg(long, value_enum, default_value_t = Payment::Wallet)]
    pub payment: Payment,
    /// Longest pause of a user between two actions, drawn evenly from zero to it
    /// [default: none, each user acts as fast as the shop answers].
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub think: Duration,
    /// How long an order is followed before it counts as stuck (an error).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub order_timeout: Duration,
    /// Seed of the users' random choices, for a repeatable mix of actions.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No live progress display.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadtestArguments {
    /// Refuses what clap cannot: a zero duration, a scenario that needs the
    /// administrator without one.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.duration.is_zero() {
            return Err(Error::Arguments("--duration must be above zero".to_owned()));
        }
        if self.order_timeout.is_zero() {
            return Err(Error::Arguments("--order-timeout must be above zero".to_owned()));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::Arguments(format!("--url must start with http:// or https://, not {:?}", self.url)));
        }
        if self.admin().is_none() && self.scenario != Scenario::Browse {
            return Err(Error::Arguments(format!(
                "the {} scenario needs the administrator: --admin-email and --admin-password, or \
                 EVENTSHOP_ADMIN_EMAIL and EVENTSHOP_ADMIN_PASSWORD",
                self.scenario
            )));
        }
        Ok(())
    }

    /// The administrator's email and password, when both were given.
    pub(crate) fn admin(&self) -> Option<(&str, &str)> {
        match (self.admin_email.as_deref(), self.admin_password.as_deref()) {
            (Some(email), Some(password)) if !email.is_empty() && !password.is_empty() => Some((email, password)),
            _ => None,
        }
    }

    /// Units of a flash sale: `--flash-units`, else a quarter of the users.
    pub(crate) fn flash_units(&self) -> u32 {
        self.flash_units.unwrap_or((self.users / 4).max(1))
    }
}

/// What the virtual users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Register, browse, search, view products, fill the cart, check out (one action in
    /// 17) and follow the order: Online Boutique's locust mix.
    Shopper,
    /// Many buyers race for a few units of one product; the report checks that no unit
    /// was sold twice.
    FlashSale,
    /// Anonymous, read-only: listings, searches and product pages.
    Browse,
}

impl fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Scenario::Shopper => "shopper",
            Scenario::FlashSale => "flash-sale",
            Scenario::Browse => "browse",
        })
    }
}

/// How buyers pay (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Payment {
    /// `{"type": "wallet"}`; each user deposits enough at registration.
    Wallet,
    /// `{"type": "card", "token": "tok_visa"}`.
    Card,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        arguments: LoadtestArguments,
    }

    fn parse(arguments: &[&str]) -> Result<LoadtestArguments, clap::Error> {
        Command::try_parse_from(std::iter::once("loadtest").chain(arguments.iter().copied()))
            .map(|command| command.arguments)
    }

    #[test]
    fn the_flags_of_spec_section_5_parse() {
        let arguments = parse(&[
            "--url",
            "http://127.0.0.1:9000",
            "--users",
            "64",
            "--duration",
            "1m 30s",
            "--ramp",
            "5s",
            "--scenario",
            "flash-sale",
            "--json",
            "out.json",
            "--admin-email",
            "a@b.test",
            "--admin-password",
            "pw",
        ])
        .unwrap();
        assert_eq!(arguments.users, 64);
        assert_eq!(arguments.duration, Duration::from_secs(90));
        assert_eq!(arguments.ramp, Duration::from_secs(5));
        assert_eq!(arguments.scenario, Scenario::FlashSale);
        assert_eq!(arguments.json.as_deref(), Some(std::path::Path::new("out.json")));
        assert_eq!(arguments.flash_units(), 16);
        assert!(arguments.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["--users", "0"]).is_err());
        assert!(parse(&["--duration", "soon"]).is_err());
        assert!(parse(&["--scenario", "stampede"]).is_err());
        let zero = parse(&["--duration", "0s", "--scenario", "browse"]).unwrap();
        assert!(zero.validate().unwrap_err().to_string().contains("--duration"));
        let mut without_admin = parse(&["--scenario", "shopper"]).unwrap();
        without_admin.admin_email = None;
        without_admin.admin_password = None;
        assert!(without_admin.validate().unwrap_err().to_string().contains("administrator"));
    }

    #[test]
    fn a_flash_sale_has_a_quarter_as_many_units_as_buyers() {
        let mut arguments = parse(&["--users", "3"]).unwrap();
        assert_eq!(arguments.flash_units(), 1);
        arguments.flash_units = Some(7);
        assert_eq!(arguments.flash_units(), 7);
    }
}
