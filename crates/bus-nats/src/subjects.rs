//! Names on the NATS server: subjects, streams, consumers, buckets. All of them start with
//! the namespace, so that deployments (and test runs) sharing a server never meet.

use std::fmt;

use eventshop_core::StreamId;

/// How many partitions each service's events are spread over. A consumer handles one
/// message at a time per partition, so this is its parallelism; a stream always falls in
/// the same partition, so its events stay in order.
pub const PARTITIONS: u32 = 16;

/// The prefix of every name a deployment uses on the server: letters, digits, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid { Ok(Namespace(name)) } else { Err(InvalidName(name)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject of `service`'s `operation`: `<ns>.svc.<service>.<operation>`.
    pub fn operation_subject(&self, service: &str, operation: &str) -> String {
        format!("{}.svc.{service}.{operation}", self.0)
    }

    /// The queue group shared by every instance of `service`.
    pub fn queue_group(&self, service: &str) -> String {
        format!("{}.{service}", self.0)
    }

    /// The JetStream stream holding `service`'s events.
    pub fn event_stream(&self, service: &str) -> String {
        format!("{}_events_{service}", self.0).replace(['.', '-'], "_")
    }

    /// All subjects of `service`'s events: `<ns>.events.<service>.>`.
    pub fn event_subjects(&self, service: &str) -> String {
        format!("{}.events.{service}.>", self.0)
    }

    /// The subject of one event: `<ns>.events.<service>.<partition>.<type>`.
    pub fn event_subject(&self, service: &str, stream_id: &StreamId, event_type: &str) -> String {
        format!("{}.events.{service}.{}.{event_type}", self.0, partition(stream_id))
    }

    /// The subjects of one partition of `service`'s events (`>`: an event type may
    /// contain dots).
    pub fn partition_subjects(&self, service: &str, partition: u32) -> String {
        format!("{}.events.{service}.{partition}.>", self.0)
    }

    /// The durable JetStream consumer of `consumer` on one partition.
    pub fn durable_name(&self, consumer: &str, partition: u32) -> String {
        format!("{consumer}-p{partition}").replace(['.', ' ', '*', '>'], "_")
    }

    /// The key-value bucket of runtime settings.
    pub fn config_bucket(&self) -> String {
        format!("{}_config", self.0).replace('-', "_")
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace("eventshop".to_owned())
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a valid NATS namespace: use 1 to 32 letters, digits, '_' or '-'")]
pub struct InvalidName(String);

/// The partition of a stream: a stable hash (FNV-1a), the same in every process and
/// every version, since it decides which consumer sees the stream.
pub fn partition(stream_id: &StreamId) -> u32 {
    stream_id.partition(PARTITIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_always_falls_in_the_same_partition() {
        let stream = StreamId::from_raw("order-0192d5b0-7e1c-7cc3-9b1a-4a3f1b2c3d4e");
        assert_eq!(partition(&stream), partition(&stream.clone()));
        // Pinned: changing the hash would reorder live streams across an upgrade.
        assert_eq!(partition(&StreamId::from_raw("order-1")), 13);
        let spread: std::collections::HashSet<_> = (0..200).map(|i| partition(&StreamId::new("order", i))).collect();
        assert_eq!(spread.len(), PARTITIONS as usize, "streams spread over every partition");
    }

    #[test]
    fn namespaces_are_checked() {
        assert!(Namespace::new("eventshop_test-1").is_ok());
        assert!(Namespace::new("a.b").is_err());
        assert!(Namespace::new("").is_err());
    }
}
