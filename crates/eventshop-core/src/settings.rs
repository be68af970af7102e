//! Runtime settings: values such as `orders.payment_timeout` that running instances
//! apply without a restart. In a NATS deployment they live in a key-value bucket; in the
//! embedded one they come from the config file.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::bus::BusError;

/// Where running instances read their live settings.
#[async_trait]
pub trait Settings: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<String>, BusError>;
    async fn set(&self, key: &str, value: &str) -> Result<(), BusError>;
    /// The current value of `key`, updated whenever it changes.
    async fn watch(&self, key: &str) -> Result<watch::Receiver<Option<String>>, BusError>;
}

/// Settings held in memory: the embedded deployment's, loaded from the config file.
/// A `set` reaches every watcher in this process.
#[derive(Debug, Default)]
pub struct LocalSettings {
    values: Mutex<BTreeMap<String, watch::Sender<Option<String>>>>,
}

impl LocalSettings {
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = values.into_iter().map(|(key, value)| (key, watch::Sender::new(Some(value)))).collect();
        LocalSettings { values: Mutex::new(values) }
    }

    fn sender(&self, key: &str) -> watch::Sender<Option<String>> {
        let mut values = self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        values.entry(key.to_owned()).or_insert_with(|| watch::Sender::new(None)).clone()
    }
}

#[async_trait]
impl Settings for LocalSettings {
    async fn get(&self, key: &str) -> Result<Option<String>, BusError> {
        Ok(self.sender(key).borrow().clone())
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), BusError> {
        self.sender(key).send_replace(Some(value.to_owned()));
        Ok(())
    }

    async fn watch(&self, key: &str) -> Result<watch::Receiver<Option<String>>, BusError> {
        Ok(self.sender(key).subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watcher_sees_every_change() {
        let settings = LocalSettings::new([("orders.payment_timeout".to_owned(), "30s".to_owned())]);
        let mut timeout = settings.watch("orders.payment_timeout").await.expect("watch");
        assert_eq!(timeout.borrow_and_update().as_deref(), Some("30s"));
        settings.set("orders.payment_timeout", "10s").await.expect("set");
        timeout.changed().await.expect("changed");
        assert_eq!(timeout.borrow().as_deref(), Some("10s"));
        assert_eq!(settings.get("missing").await.expect("get"), None);
    }
}
