-- How far each projection has read the global order. Moved in the same transaction as the
-- read-model change it reflects, so a read model and its checkpoint never disagree.
CREATE TABLE projection_checkpoints (
    name        TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL CHECK (position >= 0),
    updated_at  TEXT
) STRICT;
