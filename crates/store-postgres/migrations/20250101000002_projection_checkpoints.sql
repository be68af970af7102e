-- Where each projection whose read model lives in this schema has got to in the global
-- order. Moved in the same transaction as the read-model change it reflects, and only if
-- it is still where the runner read it (see PgReadModels::move_checkpoint).
CREATE TABLE projection_checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
