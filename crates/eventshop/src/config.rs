//! The configuration of `run`, `serve`, `gateway` and `config`, in layers: flags >
//! environment (`EVENTSHOP_*`, read by clap with the flags) > the file (`eventshop.toml`)
//! > defaults. Each command takes the keys it has flags for and checks what it needs.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use eventshop_core::settings::LocalSettings;
use serde::Deserialize;

use crate::cli::{GatewayArguments, NatsArguments, RunArguments, ServeArguments};

const DEFAULT_FILE: &str = "eventshop.toml";

/// Connections each service's PostgreSQL store may hold by default. Every process of the
/// deployment shares the server's `max_connections` (100 by default); a service's work is
/// short transactions, and appends of one store are batched by PostgreSQL's group commit
/// rather than by more connections.
const DEFAULT_POSTGRES_CONNECTIONS: u32 = 4;

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

/// The settings a command was given on its command line or in the environment; a command
/// without a flag leaves it `None`, so the file or the default decides.
#[derive(Debug, Default)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub bus: Option<String>,
    pub namespace: Option<String>,
    pub config: Option<PathBuf>,
    pub postgres_connections: Option<u32>,
}

impl From<RunArguments> for Flags {
    fn from(arguments: RunArguments) -> Self {
        Flags {
            listen: arguments.listen,
            data_dir: arguments.data_dir,
            store: arguments.store,
            bus: arguments.bus,
            namespace: arguments.namespace,
            config: arguments.config,
            postgres_connections: arguments.postgres_connections,
        }
    }
}

impl From<&ServeArguments> for Flags {
    fn from(arguments: &ServeArguments) -> Self {
        Flags {
            store: arguments.store.clone(),
            bus: arguments.nats.bus.clone(),
            namespace: arguments.nats.namespace.clone(),
            config: arguments.nats.config.clone(),
            postgres_connections: arguments.postgres_connections,
            ..Flags::default()
        }
    }
}

impl From<GatewayArguments> for Flags {
    fn from(arguments: GatewayArguments) -> Self {
        Flags { listen: arguments.listen, ..Flags::from(arguments.nats) }
    }
}

impl From<NatsArguments> for Flags {
    fn from(arguments: NatsArguments) -> Self {
        Flags { bus: arguments.bus, namespace: arguments.namespace, config: arguments.config, ..Flags::default() }
    }
}

/// Everything a command needs, resolved.
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub bus: BusChoice,
    pub namespace: String,
    /// The pool size of each service's PostgreSQL store.
    pub postgres_connections: u32,
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
            .field("postgres_connections", &self.postgres_connections)
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
    postgres_connections: Option<u32>,
    admin_email: Option<String>,
    admin_password: Option<String>,
    jwt_secret: Option<String>,
    /// Read separately, by `runtime::load_settings_file`.
    #[allow(dead_code)]
    settings: Option<toml::Table>,
}

impl Config {
    pub fn load(arguments: impl Into<Flags>) -> anyhow::Result<Config> {
        let arguments = arguments.into();
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
            postgres_connections: arguments
                .postgres_connections
                .or(file.postgres_connections)
                .unwrap_or(DEFAULT_POSTGRES_CONNECTIONS),
            admin,
            jwt_secret: environment("EVENTSHOP_JWT_SECRET").or(file.jwt_secret),
            settings: Arc::new(settings),
        })
    }

    /// The NATS URL, for the commands that work only on NATS.
    pub fn nats_url(&self, command: &str) -> anyhow::Result<&str> {
        match &self.bus {
            BusChoice::Nats { url } => Ok(url),
            BusChoice::InProcess => bail!(
                "`eventshop {command}` needs --bus nats://… (or EVENTSHOP_BUS): its processes meet on a shared \
                 NATS server, and the in-process bus reaches no other process"
            ),
        }
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
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let directory = tempfile::tempdir().expect("a directory");
        let path = directory.path().join("eventshop.toml");
        std::fs::write(
            &path,
            "store = \"postgres://db/shop\"\nbus = \"nats://file:4222\"\npostgres_connections = 3\n\
             [settings.orders]\npayment_timeout = \"45s\"\n",
        )
        .expect("write");
        let from_file = Config::load(Flags { config: Some(path.clone()), ..Flags::default() }).expect("load");
        assert_eq!(from_file.store, StoreChoice::Postgres { url: "postgres://db/shop".to_owned() });
        assert_eq!(from_file.nats_url("serve").expect("nats"), "nats://file:4222");
        assert_eq!((from_file.postgres_connections, from_file.namespace.as_str()), (3, "eventshop"));
        let flags = Flags {
            bus: Some("nats://flag:4222".to_owned()),
            postgres_connections: Some(2),
            config: Some(path),
            ..Flags::default()
        };
        let from_flags = Config::load(flags).expect("load");
        assert_eq!(from_flags.nats_url("gateway").expect("nats"), "nats://flag:4222");
        assert_eq!(from_flags.postgres_connections, 2);
        let defaults = Config::load(Flags { config: Some(directory.path().join("missing.toml")), ..Flags::default() });
        assert!(defaults.is_err(), "a named file must exist");
        let error = Config::load(Flags { bus: Some("in-process".to_owned()), ..Flags::default() })
            .expect("load")
            .nats_url("gateway")
            .expect_err("not NATS")
            .to_string();
        assert!(error.contains("--bus nats://"), "{error}");
    }

    #[test]
    fn the_file_is_strict_about_its_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:9000\"\nstore = \"sqlite\"").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"127.0.0.1:9000\"").is_err());
    }
}
