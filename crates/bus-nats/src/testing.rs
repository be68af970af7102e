//! Test helpers: fresh namespaces on a shared NATS server, and the sweeping away of those
//! that earlier test runs left behind.
//!
//! Tests reach NATS at `EVENTSHOP_TEST_NATS_URL` (default `nats://127.0.0.1:4222`). Each
//! test works in a namespace of its own, `<prefix><16 hex digits>`, so tests never see
//! each other's subjects and streams. A test cannot delete its streams when it ends
//! (there is no async drop), so the first connection of each test process deletes the
//! streams (key-value buckets included) of test namespaces older than an hour.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::Namespace;

pub const TEST_URL_VARIABLE: &str = "EVENTSHOP_TEST_NATS_URL";
pub const DEFAULT_TEST_URL: &str = "nats://127.0.0.1:4222";

/// Streams of test namespaces older than this are left over from earlier runs.
const LEFTOVER_AGE: Duration = Duration::from_secs(60 * 60);

/// The URL of the shared test server.
pub fn test_url() -> String {
    std::env::var(TEST_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

/// A namespace `<prefix><16 hex digits>` that no other test uses.
pub fn fresh_namespace(prefix: &str) -> Namespace {
    Namespace::new(format!("{prefix}{}", &Uuid::now_v7().simple().to_string()[16..])).expect("a valid namespace")
}

/// A client of the shared test server, or None (skipping, outside CI) when it cannot be
/// reached. The first call of a process sweeps away old test namespaces of `prefix`.
pub async fn connect(prefix: &str) -> Option<async_nats::Client> {
    let url = test_url();
    match async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(3)).connect(&url).await {
        Ok(client) => {
            static SWEPT: OnceCell<()> = OnceCell::const_new();
            SWEPT.get_or_init(|| sweep_leftovers(&client, prefix)).await;
            Some(client)
        }
        Err(error) => eventshop_core::testing::skip_unless_ci(format!("NATS not reachable at {url}: {error}")),
    }
}

/// Deletes the streams of test namespaces `<prefix><16 hex digits>` created more than an
/// hour ago. Best effort: a stream it cannot read or delete is left for the next sweep.
pub async fn sweep_leftovers(client: &async_nats::Client, prefix: &str) {
    let jetstream = async_nats::jetstream::new(client.clone());
    let mut names = jetstream.stream_names();
    let mut candidates = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if is_test_stream(&name, prefix) {
            candidates.push(name);
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    for name in candidates {
        let Ok(mut stream) = jetstream.get_stream(&name).await else { continue };
        let Ok(info) = stream.info().await else { continue };
        let created = u64::try_from(info.created.unix_timestamp()).unwrap_or(now);
        if now.saturating_sub(created) > LEFTOVER_AGE.as_secs() {
            let _ = jetstream.delete_stream(&name).await;
        }
    }
}

/// Whether `stream` belongs to a test namespace of `prefix`: its name (after `KV_` for a
/// key-value bucket) starts with the prefix, 16 hex digits and `_`.
fn is_test_stream(stream: &str, prefix: &str) -> bool {
    let name = stream.strip_prefix("KV_").unwrap_or(stream);
    name.strip_prefix(prefix)
        .and_then(|rest| rest.get(..17))
        .is_some_and(|head| head.ends_with('_') && head[..16].chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_namespaces_are_swept() {
        assert!(is_test_stream("t80f6614593194030_events_cart", "t"));
        assert!(is_test_stream("KV_t80f6614593194030_settings", "t"));
        assert!(is_test_stream("it80f6614593194030_events_orders", "it"));
        assert!(!is_test_stream("it80f6614593194030_events_orders", "t"));
        assert!(!is_test_stream("eventshop_events_orders", "t"));
        assert!(!is_test_stream("t80f66145_events_cart", "t"));
        assert!(!is_test_stream("sagabench1_events_cart", "t"));
    }
}
