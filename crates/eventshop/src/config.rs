//! The configuration of `run`, in layers: flags > environment (`EVENTSHOP_*`, read by
//! clap with the flags) > the file (`eventshop.toml`) > defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use eventshop_core::settings::LocalSettings;
use serde::Deserialize;

use crate::cli::RunArguments;

const DEFAULT_FILE: &str = "eventshop.toml";

/// Where the event stores live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// One SQLite database per service under the data directory.
    Sqlite,
    /// One PostgreSQL schema per service.
    Postgres { url: String },
}

/// Which bus the services talk over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusChoice {
    InProcess,
    Nats { url: String },
}

/// Everything `run` needs, resolved.
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub bus: BusChoice,
    pub namespace: String,
    /// The first administrator (SPEC §4), from `EVENTSHOP_ADMIN_EMAIL` / `_PASSWORD`.
    pub admin: Option<(String, String)>,
    /// The JWT signing key (`EVENTSHOP_JWT_SECRET`); generated and kept in the data
    /// directory when not given.
    pub jwt_secret: Option<String>,
    /// Live settings (`[settings]` of the file).
    pub settings: Arc<LocalSettings>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("store", &self.store)
            .field("bus", &self.bus)
            .field("namespace", &self.namespace)
            .field("admin", &self.admin.as_ref().map(|(email, _)| (email, "<redacted>")))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The file's keys; the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    bus: Option<String>,
    namespace: Option<String>,
    admin_email: Option<String>,
    admin_password: Option<String>,
    jwt_secret: Option<String>,
    /// Read separately, by `runtime::load_settings_file`.
    #[allow(dead_code)]
    settings: Option<toml::Table>,
}

impl Config {
    pub fn load(arguments: RunArguments) -> anyhow::Result<Config> {
        let (file, settings) = match &arguments.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_FILE).exists() => read_file(Path::new(DEFAULT_FILE))?,
            None => (FileConfig::default(), LocalSettings::new([])),
        };
        let environment = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let admin_email = environment("EVENTSHOP_ADMIN_EMAIL").or(file.admin_email);
        let admin_password = environment("EVENTSHOP_ADMIN_PASSWORD").or(file.admin_password);
        let admin = match (admin_email, admin_password) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            _ => bail!("set both EVENTSHOP_ADMIN_EMAIL and EVENTSHOP_ADMIN_PASSWORD, or neither"),
        };
        Ok(Config {
            listen: arguments.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: arguments.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("eventshop-data")),
            store: parse_store(arguments.store.or(file.store).as_deref())?,
            bus: parse_bus(arguments.bus.or(file.bus).as_deref())?,
            namespace: arguments.namespace.or(file.namespace).unwrap_or_else(|| "eventshop".to_owned()),
            admin,
            jwt_secret: environment("EVENTSHOP_JWT_SECRET").or(file.jwt_secret),
            settings: Arc::new(settings),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<(FileConfig, LocalSettings)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: FileConfig =
        toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))?;
    let settings = runtime::load_settings_file(path)?;
    Ok((file, settings))
}

fn parse_store(value: Option<&str>) -> anyhow::Result<StoreChoice> {
    match value {
        None | Some("sqlite") => Ok(StoreChoice::Sqlite),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(StoreChoice::Postgres { url: url.to_owned() })
        }
        Some(other) => bail!("--store must be `sqlite` or a postgres:// URL, not {other:?}"),
    }
}

fn parse_bus(value: Option<&str>) -> anyhow::Result<BusChoice> {
    match value {
        None | Some("in-process") => Ok(BusChoice::InProcess),
        Some(url) if url.starts_with("nats://") => Ok(BusChoice::Nats { url: url.to_owned() }),
        Some(other) => bail!("--bus must be `in-process` or a nats:// URL, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_chosen_by_url_scheme() {
        assert_eq!(parse_store(None).unwrap(), StoreChoice::Sqlite);
        assert!(matches!(parse_store(Some("postgres://localhost/shop")).unwrap(), StoreChoice::Postgres { .. }));
        assert!(parse_store(Some("mysql://localhost")).is_err());
        assert_eq!(parse_bus(Some("in-process")).unwrap(), BusChoice::InProcess);
        assert!(matches!(parse_bus(Some("nats://127.0.0.1:4222")).unwrap(), BusChoice::Nats { .. }));
        assert!(parse_bus(Some("amqp://x")).is_err());
    }

    #[test]
    fn the_file_is_strict_about_its_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:9000\"\nstore = \"sqlite\"").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:9000\"").is_err());
    }
}
