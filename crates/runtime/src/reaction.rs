//! Reactions: how a consumer makes its effect once.
//!
//! A reaction decides on its own aggregates and appends the outcome together with the
//! inbox row of the event it reacts to (`EventStore::append_handled`). A redelivered
//! event finds the row and changes nothing; a stream that moved since it was read makes
//! the append fail, and the reaction is decided again on fresh state.

use eventshop_core::consumer::HandlerError;
use eventshop_core::{
    DomainEvent, EventCodec, EventStore, ExpectedVersion, Metadata, RecordedEvent, StoreError, StreamAppend, StreamId,
};

/// How a reaction's append went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The effect is recorded, now or by an earlier delivery of the same event.
    Done,
    /// A stream moved since it was read: load again and decide again.
    DecideAgain,
}

/// Appends `appends` (possibly none: a decision to do nothing) with the inbox row of
/// `cause` for `consumer`.
pub async fn record_reaction(
    store: &dyn EventStore,
    consumer: &str,
    cause: &RecordedEvent,
    appends: Vec<StreamAppend>,
) -> Result<Recorded, HandlerError> {
    match store.append_handled(consumer, cause.event_id, appends).await {
        Ok(_) | Err(StoreError::AlreadyHandled { .. }) => Ok(Recorded::Done),
        Err(error) if error.is_conflict() => {
            tracing::debug!(consumer, event_id = %cause.event_id, %error, "a stream moved; deciding again");
            Ok(Recorded::DecideAgain)
        }
        Err(error) => Err(HandlerError::transient(error)),
    }
}

/// `events` of one stream as caused by `cause`: same transaction, same acting user.
pub fn caused_append<E: DomainEvent>(
    codec: &EventCodec<E>,
    cause: &RecordedEvent,
    stream_id: StreamId,
    expected: ExpectedVersion,
    events: &[E],
) -> Result<StreamAppend, HandlerError> {
    let events = events
        .iter()
        .map(|event| codec.encode(event, Metadata::caused_by(cause)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(HandlerError::permanent)?;
    Ok(StreamAppend { stream_id, expected, events })
}
