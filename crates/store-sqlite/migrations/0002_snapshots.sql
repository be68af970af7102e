-- The newest snapshot of each stream. A cache: losing a row costs a longer load only.
CREATE TABLE snapshots (
    stream_id       TEXT    PRIMARY KEY,
    version         INTEGER NOT NULL CHECK (version >= 0),
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
    state           TEXT    NOT NULL CHECK (json_valid(state)),
    -- RFC 3339 in UTC, for people looking at the file.
    taken_at        TEXT    NOT NULL
) STRICT;
