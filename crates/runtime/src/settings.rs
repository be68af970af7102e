//! The live settings of the embedded deployment, read from the config file.
//!
//! A NATS deployment keeps them in a key-value bucket (`bus_nats::config`); embedded, they
//! come from the `[settings]` table of `eventshop.toml`, nested tables joined with dots:
//!
//! ```toml
//! [settings.orders]
//! payment_timeout = "30s"
//! ```
//!
//! gives `orders.payment_timeout = 30s`. Changes made while running (`Settings::set`)
//! reach every watcher in the process at once.

use std::path::Path;

use eventshop_core::settings::LocalSettings;

#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid TOML: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("{path}: `settings` must be a table of settings")]
    NotATable { path: String },
}

/// The settings of the `[settings]` table of the TOML file at `path`; none if it has no
/// such table.
pub fn load_settings_file(path: &Path) -> Result<LocalSettings, SettingsFileError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| SettingsFileError::Read { path: shown.clone(), source })?;
    parse_settings(&text).map_err(|error| match error {
        ParseError::Toml(source) => SettingsFileError::Parse { path: shown, source: Box::new(source) },
        ParseError::NotATable => SettingsFileError::NotATable { path: shown },
    })
}

enum ParseError {
    Toml(toml::de::Error),
    NotATable,
}

fn parse_settings(text: &str) -> Result<LocalSettings, ParseError> {
    let document: toml::Table = text.parse().map_err(ParseError::Toml)?;
    let mut values = Vec::new();
    match document.get("settings") {
        None => {}
        Some(toml::Value::Table(table)) => flatten("", table, &mut values),
        Some(_) => return Err(ParseError::NotATable),
    }
    Ok(LocalSettings::new(values))
}

fn flatten(prefix: &str, table: &toml::Table, values: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(nested) => flatten(&key, nested, values),
            // Strings as they are written; numbers, booleans and dates as TOML prints them.
            toml::Value::String(text) => values.push((key, text.clone())),
            other => values.push((key, other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use eventshop_core::settings::Settings;

    use super::*;

    #[tokio::test]
    async fn nested_tables_become_dotted_keys() {
        let settings = parse_settings(
            r#"
            listen = "127.0.0.1:8080"
            [settings.orders]
            payment_timeout = "30s"
            [settings.inventory]
            low_stock_threshold = 5
            "#,
        )
        .unwrap_or_else(|_| panic!("valid settings"));
        assert_eq!(settings.get("orders.payment_timeout").await.expect("get").as_deref(), Some("30s"));
        assert_eq!(settings.get("inventory.low_stock_threshold").await.expect("get").as_deref(), Some("5"));
        assert_eq!(settings.get("listen").await.expect("get"), None, "only the settings table is read");
    }

    #[test]
    fn a_bad_file_is_an_error_that_names_it() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("eventshop.toml");
        std::fs::write(&path, "[settings\norders = 1").expect("write");
        let error = load_settings_file(&path).expect_err("not TOML");
        assert!(error.to_string().contains("eventshop.toml"), "{error}");
        std::fs::write(&path, "settings = 3").expect("write");
        assert!(matches!(load_settings_file(&path), Err(SettingsFileError::NotATable { .. })));
        assert!(matches!(
            load_settings_file(&directory.path().join("missing.toml")),
            Err(SettingsFileError::Read { .. })
        ));
    }
}
