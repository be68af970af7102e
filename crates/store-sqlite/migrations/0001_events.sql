-- The event log: append-only, one row per event, in global order.
--
-- STRICT so that SQLite refuses a value of the wrong type instead of storing it.
-- Ids are hyphenated UUID text so that the file can be read by hand with the sqlite3 shell.
CREATE TABLE events (
    -- AUTOINCREMENT: a committed position is never handed out again, even if the newest
    -- rows were removed behind the triggers' back, so a reader's checkpoint stays meaningful.
    -- (Positions of a rolled-back transaction are reused; nobody could have seen them.)
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
    -- JSON text as it was given. The check costs little next to the fsync of a commit and
    -- lets readers trust the text without parsing it.
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    acting_user     TEXT,
    -- RFC 3339 in UTC with microseconds, so that text order is time order.
    recorded_at     TEXT    NOT NULL,
    -- Also the index behind read_stream and the `max(stream_version)` of every append.
    UNIQUE (stream_id, stream_version)
) STRICT;

-- Events are facts: the database itself refuses to change or remove one, whoever asks.
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: UPDATE on events is refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: DELETE on events is refused');
END;
