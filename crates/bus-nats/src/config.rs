//! Live settings in a JetStream key-value bucket, `<ns>_config`.
//!
//! Keys are dotted names such as `orders.payment_timeout`; values are text. Every running
//! instance reads the same bucket, and a watcher sees a change as soon as it is written,
//! so an operator changes a setting once and every instance applies it without a restart.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use eventshop_core::bus::BusError;
use eventshop_core::settings::Settings;
use futures::StreamExt;
use tokio::sync::watch;

use crate::{Namespace, NatsBus};

/// How many past values of each key the bucket keeps, for an operator to see what changed.
const HISTORY: i64 = 5;

/// How long a broken watch waits before it is started again; doubled on each failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// The settings of one namespace, shared by all its instances.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    bucket: kv::Store,
}

impl NatsSettings {
    /// Opens the namespace's settings bucket, creating it if it does not exist yet.
    /// A bucket that exists is used as it is, even if an operator has changed its
    /// configuration since.
    #[tracing::instrument(skip_all, fields(namespace = %bus.namespace()))]
    pub async fn open(bus: &NatsBus) -> Result<Self, BusError> {
        let jetstream = bus.jetstream();
        let name = bus.namespace().config_bucket();
        if let Ok(bucket) = jetstream.get_key_value(&name).await {
            return Ok(NatsSettings { bucket });
        }
        // Creating is idempotent for an identical configuration, and the second look
        // covers another instance creating it differently at the same moment.
        let created = jetstream.create_stream(bucket_stream(&name, bus.namespace())).await;
        match jetstream.get_key_value(&name).await {
            Ok(bucket) => Ok(NatsSettings { bucket }),
            Err(get) => Err(BusError::transport(OpenError {
                bucket: name,
                create: created.err().map_or_else(|| "created".to_owned(), |error| error.to_string()),
                get: get.to_string(),
            })),
        }
    }
}

/// The stream behind the bucket, as `create_key_value` would make it. That call is not
/// usable here: it first reads the account info, which async-nats 0.51 cannot parse from
/// a 2.9 server (it requires `reserved_memory` and `reserved_storage`, which 2.9 omits).
fn bucket_stream(name: &str, namespace: &Namespace) -> stream::Config {
    stream::Config {
        name: format!("KV_{name}"),
        description: Some(format!("eventshop live settings of namespace {namespace}")),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: HISTORY,
        storage: StorageType::File,
        discard: DiscardPolicy::New,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        ..Default::default()
    }
}

#[async_trait]
impl Settings for NatsSettings {
    #[tracing::instrument(skip(self))]
    async fn get(&self, key: &str) -> Result<Option<String>, BusError> {
        let value = self.bucket.get(key).await.map_err(BusError::transport)?;
        value.map(|value| text(key, value)).transpose()
    }

    #[tracing::instrument(skip(self, value))]
    async fn set(&self, key: &str, value: &str) -> Result<(), BusError> {
        self.bucket.put(key, Bytes::copy_from_slice(value.as_bytes())).await.map_err(BusError::transport)?;
        Ok(())
    }

    /// The receiver starts with the current value and is fed by a task that follows the
    /// key until every receiver is dropped, across reconnections.
    #[tracing::instrument(skip(self))]
    async fn watch(&self, key: &str) -> Result<watch::Receiver<Option<String>>, BusError> {
        let current = self.bucket.entry(key).await.map_err(BusError::transport)?;
        // The watch starts with the latest value again; revisions tell what is new.
        let entries = self.bucket.watch_with_history(key).await.map_err(BusError::transport)?;
        let revision = current.as_ref().map_or(0, |entry| entry.revision);
        let value = current.and_then(|entry| value_of(&entry));
        let (sender, receiver) = watch::channel(value);
        tokio::spawn(follow(self.bucket.clone(), key.to_owned(), Some(entries), sender, revision));
        Ok(receiver)
    }
}

/// Passes every change of `key` after `revision` to `sender`, until no one listens. A
/// watch that fails or ends is started again after the last revision seen, so nothing is
/// missed and nothing goes back in time.
async fn follow(
    bucket: kv::Store,
    key: String,
    mut entries: Option<kv::Watch>,
    sender: watch::Sender<Option<String>>,
    mut revision: u64,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let Some(watching) = entries.as_mut() else {
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(retry) => {}
            }
            match bucket.watch_from_revision(&key, revision + 1).await {
                Ok(watching) => entries = Some(watching),
                Err(error) => {
                    tracing::warn!(%key, %error, "cannot watch the setting; retrying");
                    retry = (retry * 2).min(LAST_RETRY);
                }
            }
            continue;
        };
        let next = tokio::select! {
            () = sender.closed() => return,
            next = watching.next() => next,
        };
        match next {
            Some(Ok(entry)) => {
                retry = FIRST_RETRY;
                if entry.key != key || entry.revision <= revision {
                    continue;
                }
                revision = entry.revision;
                let value = value_of(&entry);
                sender.send_if_modified(|current| {
                    let changed = *current != value;
                    *current = value;
                    changed
                });
            }
            Some(Err(error)) => {
                tracing::warn!(%key, %error, "the watch of a setting failed; starting it again");
                entries = None;
            }
            None => {
                tracing::warn!(%key, "the watch of a setting ended; starting it again");
                entries = None;
            }
        }
    }
}

/// The value an entry leaves: none after a delete or purge. A value that is not text is
/// treated as absent (and logged), as no setting can use it.
fn value_of(entry: &kv::Entry) -> Option<String> {
    match entry.operation {
        kv::Operation::Put => {
            text(&entry.key, entry.value.clone()).inspect_err(|error| tracing::warn!(%error, "ignoring a setting")).ok()
        }
        kv::Operation::Delete | kv::Operation::Purge => None,
    }
}

fn text(key: &str, value: Bytes) -> Result<String, BusError> {
    String::from_utf8(value.into()).map_err(|_| BusError::transport(NotText { key: key.to_owned() }))
}

#[derive(Debug, thiserror::Error)]
#[error("the setting {key} is not UTF-8 text")]
struct NotText {
    key: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create the settings bucket {bucket} ({create}) nor open it ({get})")]
struct OpenError {
    bucket: String,
    create: String,
    get: String,
}
