//! Discovery of running service instances through the NATS service API.
//!
//! Every service on the server answers `$SRV.INFO` and `$SRV.STATS`. Only INFO carries
//! the metadata that says which namespace an instance belongs to (async-nats leaves it
//! out of STATS), and only STATS carries the start time and counts, so discovery asks
//! both at once on one inbox and joins the answers by instance id.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventshop_core::bus::{BusError, ServiceInstance};
use futures::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use crate::NatsBus;

/// The service metadata key naming the namespace an instance serves in.
pub(crate) const NAMESPACE_METADATA: &str = "namespace";

/// How long discovery waits for answers at most.
const WINDOW: Duration = Duration::from_millis(250);

/// Once answers have started, a silence this long means every instance has answered.
const QUIET: Duration = Duration::from_millis(100);

/// The instances of this namespace's services running now, sorted by name and id.
#[tracing::instrument(skip_all, fields(namespace = %bus.namespace()))]
pub async fn discover(bus: &NatsBus) -> Result<Vec<ServiceInstance>, BusError> {
    let client = bus.client();
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(format!("{inbox}.*")).await.map_err(BusError::transport)?;
    // The subscription reaches the server before the questions: one connection keeps order.
    for verb in ["INFO", "STATS"] {
        client
            .publish_with_reply(format!("$SRV.{verb}"), format!("{inbox}.{verb}"), Bytes::new())
            .await
            .map_err(BusError::transport)?;
    }
    client.flush().await.map_err(BusError::transport)?;

    let mut namespaces = HashMap::new();
    let mut stats = Vec::new();
    let deadline = Instant::now() + WINDOW;
    let mut quiet_from = deadline;
    while let Ok(Some(answer)) = tokio::time::timeout_at(quiet_from.min(deadline), answers.next()).await {
        quiet_from = Instant::now() + QUIET;
        let parsed = if answer.subject.ends_with(".INFO") {
            serde_json::from_slice::<InfoAnswer>(&answer.payload).map(|info| {
                let namespace = info.metadata.unwrap_or_default().remove(NAMESPACE_METADATA);
                namespaces.insert(info.id, namespace);
            })
        } else {
            serde_json::from_slice::<StatsAnswer>(&answer.payload).map(|answer| stats.push(answer))
        };
        if let Err(error) = parsed {
            // Some other kind of service shares the server; it is not ours to list.
            tracing::debug!(%error, subject = %answer.subject, "ignoring an answer that does not parse");
        }
    }
    drop(answers);

    let namespace = bus.namespace().as_str();
    let mut instances: Vec<ServiceInstance> = stats
        .into_iter()
        .filter(|answer| namespaces.get(&answer.id).is_some_and(|found| found.as_deref() == Some(namespace)))
        .map(|answer| {
            let endpoints = answer.endpoints.unwrap_or_default();
            ServiceInstance {
                errors: endpoints.iter().map(|endpoint| endpoint.num_errors).sum(),
                requests: endpoints.into_iter().map(|endpoint| (endpoint.name, endpoint.num_requests)).collect(),
                name: answer.name,
                id: answer.id,
                version: answer.version,
                started_at: answer.started,
            }
        })
        .collect();
    instances.sort_by(|left, right| (&left.name, &left.id).cmp(&(&right.name, &right.id)));
    instances.dedup_by(|left, right| left.id == right.id);
    Ok(instances)
}

/// The part of an `io.nats.micro.v1.info_response` discovery reads.
#[derive(Debug, Deserialize)]
struct InfoAnswer {
    id: String,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
}

/// The part of an `io.nats.micro.v1.stats_response` discovery reads.
#[derive(Debug, Deserialize)]
struct StatsAnswer {
    name: String,
    id: String,
    version: String,
    started: DateTime<Utc>,
    /// Go services send `null` for none.
    #[serde(default)]
    endpoints: Option<Vec<EndpointStats>>,
}

#[derive(Debug, Deserialize)]
struct EndpointStats {
    name: String,
    num_requests: u64,
    num_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_async_nats_and_go_services_parse() {
        let stats: StatsAnswer = serde_json::from_str(
            r#"{"type":"io.nats.micro.v1.stats_response","name":"orders","id":"abc","version":"1.2.3",
                "started":"2025-01-02T03:04:05.123456789Z","endpoints":[{"name":"PlaceOrder",
                "subject":"eventshop.svc.orders.PlaceOrder","num_requests":3,"num_errors":1,
                "processing_time":0,"average_processing_time":0,"last_error":"","queue_group":"eventshop.orders"}]}"#,
        )
        .expect("stats");
        assert_eq!(stats.endpoints.expect("endpoints")[0].num_requests, 3);
        assert_eq!(stats.started.timestamp_subsec_nanos(), 123_456_789);
        let info: InfoAnswer = serde_json::from_str(r#"{"id":"abc","metadata":null,"endpoints":[]}"#).expect("info");
        assert!(info.metadata.is_none());
        let go_started: StatsAnswer = serde_json::from_str(
            r#"{"name":"x","id":"y","version":"0.0.1","started":"2025-01-02T04:04:05+01:00","endpoints":null}"#,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(go_started.started.to_rfc3339(), "2025-01-02T03:04:05+00:00");
    }
}
