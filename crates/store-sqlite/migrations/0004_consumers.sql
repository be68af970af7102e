-- What the service's consumers of other services' events keep: the inbox that makes an
-- effect happen once, how far each consumer has read, and the events it gave up on.

-- One row per event a consumer has handled, written in the same transaction as the
-- events the handling appended: the row exists exactly when the effect does.
-- WITHOUT ROWID: the key is the only thing looked up, and the table is nothing but it.
CREATE TABLE inbox (
    consumer    TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    -- RFC 3339 in UTC, the recorded_at of the events appended with it.
    handled_at  TEXT    NOT NULL,
    PRIMARY KEY (consumer, event_id)
) STRICT, WITHOUT ROWID;

-- How far each consumer on the in-process bus has read the source's global order.
CREATE TABLE consumer_positions (
    consumer    TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL CHECK (position >= 0),
    updated_at  TEXT
) STRICT;

-- Events a consumer gave up on, and the later events of their streams parked behind them.
-- The stream, version and position are copied out of `event` to be queried.
CREATE TABLE dead_letters (
    id              TEXT    PRIMARY KEY,
    consumer        TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    position        INTEGER NOT NULL CHECK (position >= 0),
    -- The RecordedEvent as serde writes it.
    event           TEXT    NOT NULL CHECK (json_valid(event)),
    reason          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    -- RFC 3339 in UTC with nanoseconds, exactly as given: fixed width, so text order is
    -- time order, and the letter reads back equal to what was parked.
    parked_at       TEXT    NOT NULL
) STRICT;

-- A blocked stream's letters in its order, and the blocked streams of a consumer.
CREATE INDEX dead_letters_by_stream ON dead_letters (consumer, stream_id, stream_version);
