//! `eventshop config get|set KEY [VALUE]`: the runtime settings of a NATS deployment, in
//! the namespace's key-value bucket that every running instance watches.
//!
//! Known settings are checked before they are written: a value the services could not
//! read would be ignored by each of them with only a warning in its log, so the operator
//! hears of the mistake here instead.

use anyhow::Context;
use eventshop_core::settings::Settings;

use crate::cli::ConfigAction;
use crate::config::Config;
use crate::services::connect_nats;

/// A known setting: its key, what a value must look like, and the check of a value.
type Known = (&'static str, &'static str, fn(&str) -> bool);

/// The settings the services read.
const KNOWN: &[Known] = &[
    (contracts::orders::PAYMENT_TIMEOUT_SETTING, "a duration such as 30s or 2m", |value| {
        orders::deadlines::parse_timeout(value).is_some()
    }),
    (inventory::domain::LOW_STOCK_THRESHOLD_SETTING, "a whole number of units such as 5", |value| {
        value.trim().parse::<u64>().is_ok()
    }),
    (contracts::notifications::SMTP_URL_SETTING, "an SMTP URL such as smtp://127.0.0.1:2525 (no TLS)", |value| {
        notifications::email::SmtpServer::parse(value.trim()).is_ok()
    }),
    (contracts::notifications::SMTP_FROM_SETTING, "an email address such as shop@example.com", |value| {
        value.contains('@')
    }),
];

pub async fn config(action: ConfigAction) -> anyhow::Result<()> {
    match action {
        ConfigAction::Get { key, nats } => {
            let settings = open(Config::load(nats)?).await?;
            match settings.get(&key).await.with_context(|| format!("cannot read {key}"))? {
                Some(value) => println!("{value}"),
                None => println!("{key} is not set"),
            }
        }
        ConfigAction::Set { key, value, nats } => {
            validate(&key, &value)?;
            let settings = open(Config::load(nats)?).await?;
            settings.set(&key, &value).await.with_context(|| format!("cannot write {key}"))?;
            println!("{key} = {value}");
        }
    }
    Ok(())
}

async fn open(config: Config) -> anyhow::Result<bus_nats::config::NatsSettings> {
    let bus = connect_nats(config.nats_url("config")?, &config.namespace).await?;
    bus_nats::config::NatsSettings::open(&bus).await.context("cannot open the settings bucket")
}

/// Refuses unknown keys (likely a typo) and values a known key's service cannot read.
fn validate(key: &str, value: &str) -> anyhow::Result<()> {
    let Some((_, expected, valid)) = KNOWN.iter().find(|(known, _, _)| *known == key) else {
        let known: Vec<&str> = KNOWN.iter().map(|(known, _, _)| *known).collect();
        anyhow::bail!("unknown setting {key:?}; the settings are {}", known.join(", "));
    };
    anyhow::ensure!(valid(value), "{key} must be {expected}, not {value:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_settings_are_checked() {
        assert!(validate("orders.payment_timeout", "10s").is_ok());
        let error = validate("orders.payment_timeout", "soon").expect_err("not a duration").to_string();
        assert!(error.contains("orders.payment_timeout") && error.contains("duration"), "{error}");
        assert!(validate("orders.payment_timeout", "0s").is_err());
        assert!(validate("inventory.low_stock_threshold", "5").is_ok());
        assert!(validate("inventory.low_stock_threshold", "-1").is_err());
        assert!(validate("notifications.smtp_url", "smtp://127.0.0.1:2525").is_ok());
        assert!(validate("notifications.smtp_url", "smtps://mail.example.com").is_err());
        assert!(validate("orders.payment_timout", "10s").expect_err("a typo").to_string().contains("unknown"));
    }
}
