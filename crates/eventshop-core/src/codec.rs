//! Turning typed domain events into stored events and back.
//!
//! An event enum is written with serde's adjacent tagging,
//! `#[serde(tag = "type", content = "data")]`: the variant name becomes the stored event
//! type and the variant's fields the payload, so names come from one place.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{Metadata, NewEvent, Payload, RecordedEvent};
use crate::upcast::Upcasters;

/// A domain event enum. Implementors must be serde enums tagged with
/// `#[serde(tag = "type", content = "data")]`.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The upcasters lifting this enum's old schema versions; none by default.
    fn upcasters() -> Upcasters {
        Upcasters::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "event does not serialize as {{\"type\", \"data\"}}: is the enum tagged with #[serde(tag = \"type\", content = \"data\")]?"
    )]
    NotAdjacentlyTagged,
    #[error("cannot decode event of type {event_type}: {source}")]
    Json { event_type: String, source: serde_json::Error },
    #[error("event type {event_type} has schema version {version}, newer than {current}, the newest this code knows")]
    NewerSchema { event_type: String, version: u32, current: u32 },
    #[error("no upcaster lifts {event_type} from schema version {from}")]
    MissingUpcaster { event_type: String, from: u32 },
}

/// Encodes and decodes one event enum, applying its upcasters on the way in.
#[derive(Debug, Clone)]
pub struct EventCodec<E> {
    upcasters: Upcasters,
    event: PhantomData<fn() -> E>,
}

impl<E: DomainEvent> Default for EventCodec<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: DomainEvent> EventCodec<E> {
    pub fn new() -> Self {
        EventCodec { upcasters: E::upcasters(), event: PhantomData }
    }

    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// The stored form of `event`, at the current schema version of its type.
    pub fn encode(&self, event: &E, metadata: Metadata) -> Result<NewEvent, CodecError> {
        let Value::Object(mut tagged) = serde_json::to_value(event)
            .map_err(|source| CodecError::Json { event_type: std::any::type_name::<E>().to_owned(), source })?
        else {
            return Err(CodecError::NotAdjacentlyTagged);
        };
        let Some(Value::String(event_type)) = tagged.remove("type") else {
            return Err(CodecError::NotAdjacentlyTagged);
        };
        let data = tagged.remove("data").unwrap_or(Value::Null);
        let schema_version = self.upcasters.current_version(&event_type);
        Ok(NewEvent::new(event_type, schema_version, Payload::from_value(&data), metadata))
    }

    /// The typed event of a stored one, upcast to the current schema first.
    pub fn decode(&self, event: &RecordedEvent) -> Result<E, CodecError> {
        self.decode_parts(&event.event_type, event.schema_version, &event.payload)
    }

    pub fn decode_parts(&self, event_type: &str, schema_version: u32, payload: &Payload) -> Result<E, CodecError> {
        let json_error = |source| CodecError::Json { event_type: event_type.to_owned(), source };
        if schema_version == self.upcasters.current_version(event_type) {
            // The common case: splice the stored text into the tagged form and parse once.
            let type_json = serde_json::to_string(event_type).map_err(json_error)?;
            let tagged = format!(r#"{{"type":{type_json},"data":{}}}"#, payload.as_str());
            return serde_json::from_str(&tagged).map_err(json_error);
        }
        let data = payload.to_value().map_err(json_error)?;
        let data = self.upcasters.upcast(event_type, schema_version, data)?;
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(tagged).map_err(json_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::StreamId;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum AccountEvent {
        Opened { owner: String, currency: String },
        Deposited { amount: i64 },
    }

    impl DomainEvent for AccountEvent {
        fn upcasters() -> Upcasters {
            // v1 of Opened had no currency: every account was in euros.
            Upcasters::new().add("Opened", 1, |mut data| {
                data["currency"] = "EUR".into();
                data
            })
        }
    }

    fn recorded(new: NewEvent) -> RecordedEvent {
        RecordedEvent {
            event_id: new.event_id,
            stream_id: StreamId::new("account", 1),
            stream_version: 1,
            position: crate::Position(1),
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: chrono::Utc::now(),
            correlation_id: new.metadata.correlation_id,
            causation_id: new.metadata.causation_id,
            acting_user: new.metadata.acting_user,
            payload: new.payload,
        }
    }

    #[test]
    fn round_trips_with_type_and_version() {
        let codec = EventCodec::<AccountEvent>::new();
        let event = AccountEvent::Opened { owner: "ada".into(), currency: "EUR".into() };
        let new = codec.encode(&event, Metadata::new_transaction(None)).unwrap();
        assert_eq!(new.event_type, "Opened");
        assert_eq!(new.schema_version, 2);
        assert_eq!(new.payload.as_str(), r#"{"currency":"EUR","owner":"ada"}"#);
        assert_eq!(codec.decode(&recorded(new)).unwrap(), event);
    }

    #[test]
    fn lifts_old_versions_and_refuses_newer_ones() {
        let codec = EventCodec::<AccountEvent>::new();
        let mut old = recorded(NewEvent::new(
            "Opened",
            1,
            Payload::from_json_unchecked(r#"{"owner":"ada"}"#.into()),
            Metadata::new_transaction(None),
        ));
        assert_eq!(codec.decode(&old).unwrap(), AccountEvent::Opened { owner: "ada".into(), currency: "EUR".into() });
        old.schema_version = 3;
        assert!(matches!(codec.decode(&old), Err(CodecError::NewerSchema { version: 3, current: 2, .. })));
    }

    #[test]
    fn unknown_types_and_bad_json_are_errors_not_panics() {
        let codec = EventCodec::<AccountEvent>::new();
        let mut event = recorded(NewEvent::new(
            "Closed",
            1,
            Payload::from_json_unchecked("{}".into()),
            Metadata::new_transaction(None),
        ));
        assert!(matches!(codec.decode(&event), Err(CodecError::Json { .. })));
        event.event_type = "Deposited".into();
        event.payload = Payload::from_json_unchecked(r#"{"amount":"ten"}"#.into());
        assert!(matches!(codec.decode(&event), Err(CodecError::Json { .. })));
    }
}
