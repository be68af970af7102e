-- The event store of one service.
--
-- Nothing here names a schema: the pool's search_path names the service's own schema, so
-- every table and function lands there, and each service migrates independently.

-- Every event, in global order. `position` comes from a sequence with CACHE 1, so it
-- grows in the order positions are handed out (a cache would hand each session its own
-- range and break that order). Positions may have holes: a rolled-back append has taken
-- its positions for good.
--
-- The payload is `json`, not `jsonb`: the store hands payloads out as text and never
-- queries inside them, and turning jsonb back into text costs ~4.4 µs a row (a scan caps
-- at ~180k rows/s against ~530k for json).
CREATE TABLE events (
    position        bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         json        NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid        NOT NULL,
    acting_user     uuid        NULL,
    recorded_at     timestamptz NOT NULL,
    CONSTRAINT events_event_id_unique UNIQUE (event_id),
    -- The last line of defence of optimistic concurrency: two writers that both read
    -- version n cannot both insert n + 1, whatever they checked before.
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version),
    CONSTRAINT events_stream_version_positive CHECK (stream_version > 0)
);

-- Events are facts: the database itself refuses to change or remove them, whoever asks.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on %.events is refused', TG_OP, TG_TABLE_SCHEMA
        USING ERRCODE = 'ES002',
              HINT = 'Correct a past event by appending a new one.';
END;
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- The newest snapshot of each stream. A cache: losing a row costs a longer load.
CREATE TABLE snapshots (
    stream_id       text        PRIMARY KEY,
    version         bigint      NOT NULL,
    schema_version  integer     NOT NULL,
    state           json        NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);

-- Appending. Three functions, each called as one statement, so an append costs one
-- round trip and one commit: `append_event` for one event, with plain parameters;
-- `append_to_stream` for several events to one stream; `append_events` for several
-- streams at once. The split is for speed: decoding array parameters costs a single
-- event ~10% of its append rate, and the bookkeeping of several streams costs a batch to
-- one stream about as much again.
--
-- All three take the expected version as -1 for "any", 0 for "no stream", n for
-- "exactly n", and raise the same errors, which the caller maps:
--   ES001     a stream is not at its expected version (DETAIL is the stream id);
--   23505     on events_stream_version_unique: a concurrent writer took the version
--             between our check and our insert; on events_event_id_unique: the event
--             is already stored.
--
-- All three make the transaction own a transaction id BEFORE it takes any position.
-- read_all's gap safety rests on this: a position taken before a reader's snapshot then
-- belongs to a transaction older than any that starts after the snapshot, so the reader
-- knows whom to wait for (store-postgres/src/global_order.rs). Nothing else may insert
-- into events.
--
-- Stream locks (transaction-scoped advisory locks on a hash of schema and stream id,
-- taken in one global order) serve the two cases where optimism fails:
-- - writers expecting "any" version of a busy stream would keep computing the same next
--   version and losing it to each other; holding the stream's lock from reading its
--   version to committing makes them queue instead;
-- - two multi-stream appends racing for the same versions of two streams would each
--   insert one and wait for the other's: a deadlock, found only after deadlock_timeout.
-- A single-stream append at an exact version, the common case, takes no lock: its inserts
-- go in version order, and the unique index settles a race.
--
-- The array functions force generic plans: their statements are the same on every call,
-- and replanning them (PostgreSQL's first choice for parameterised statements) cost up to
-- half a call. append_event's simple statements get generic plans by themselves.

-- Appends one event to one stream. Returns the stream's version before the append and
-- the event's position.
CREATE FUNCTION append_event(
    target_stream_id    text,
    expected_version    bigint,
    new_event_id        uuid,
    new_event_type      text,
    new_schema_version  integer,
    new_payload         text,
    new_correlation_id  uuid,
    new_causation_id    uuid,
    new_acting_user     uuid,
    appended_at         timestamptz,
    OUT version_before  bigint,
    OUT last_position   bigint
)
LANGUAGE plpgsql
AS $$
DECLARE
    transaction_id xid8;
BEGIN
    IF expected_version < 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || target_stream_id, 0));
    END IF;

    -- The transaction id and the version in one statement: an aggregate without GROUP BY
    -- yields one row, so pg_current_xact_id() runs exactly once, stream or no stream.
    SELECT coalesce(max(e.stream_version), 0), pg_current_xact_id()
      INTO version_before, transaction_id
      FROM events AS e
     WHERE e.stream_id = target_stream_id;

    IF expected_version >= 0 AND expected_version <> version_before THEN
        RAISE EXCEPTION 'stream % is at version %, not at the expected version %',
                target_stream_id, version_before, expected_version
            USING ERRCODE = 'ES001', DETAIL = target_stream_id;
    END IF;

    INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, payload,
                        correlation_id, causation_id, acting_user, recorded_at)
    VALUES (new_event_id, target_stream_id, version_before + 1, new_event_type, new_schema_version,
            new_payload::json, new_correlation_id, new_causation_id, new_acting_user, appended_at)
    RETURNING events.position INTO last_position;
END;
$$;

-- Appends events, given as parallel arrays, to one stream. Returns the stream's version
-- before the append and the position of its last new event.
CREATE FUNCTION append_to_stream(
    target_stream_id    text,
    expected_version    bigint,
    event_ids           uuid[],
    event_types         text[],
    schema_versions     integer[],
    payloads            text[],
    correlation_ids     uuid[],
    causation_ids       uuid[],
    acting_users        uuid[],
    appended_at         timestamptz,
    OUT version_before  bigint,
    OUT last_position   bigint
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    transaction_id xid8;
BEGIN
    IF expected_version < 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || target_stream_id, 0));
    END IF;

    -- As in append_event: the transaction id and the version in one statement.
    SELECT coalesce(max(e.stream_version), 0), pg_current_xact_id()
      INTO version_before, transaction_id
      FROM events AS e
     WHERE e.stream_id = target_stream_id;

    IF expected_version >= 0 AND expected_version <> version_before THEN
        RAISE EXCEPTION 'stream % is at version %, not at the expected version %',
                target_stream_id, version_before, expected_version
            USING ERRCODE = 'ES001', DETAIL = target_stream_id;
    END IF;

    -- One multi-row insert. A scan of unnest yields the rows in array order, so they are
    -- inserted, and take their positions, in the order the events were given.
    WITH inserted AS (
        INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, payload,
                            correlation_id, causation_id, acting_user, recorded_at)
        SELECT n.event_id, target_stream_id, version_before + n.offset_in_append, n.event_type,
               n.schema_version, n.payload::json, n.correlation_id, n.causation_id, n.acting_user, appended_at
          FROM unnest(event_ids, event_types, schema_versions, payloads, correlation_ids, causation_ids, acting_users)
               WITH ORDINALITY
               AS n(event_id, event_type, schema_version, payload, correlation_id, causation_id, acting_user,
                    offset_in_append)
        RETURNING events.position
    )
    SELECT max(inserted.position) INTO last_position FROM inserted;
END;
$$;

-- Appends events to several streams, all or nothing.
--
-- Streams come as parallel arrays indexed from 1. Events come as parallel arrays too,
-- each naming its stream by index and its place among that stream's new events (1, 2,
-- ...). Returns every stream's version before the append and every event's position, in
-- the order given; the caller works out the new versions and last positions.
CREATE FUNCTION append_events(
    stream_ids           text[],
    expected_versions    bigint[],
    event_stream_indexes integer[],
    event_offsets        integer[],
    event_ids            uuid[],
    event_types          text[],
    schema_versions      integer[],
    payloads             text[],
    correlation_ids      uuid[],
    causation_ids        uuid[],
    acting_users         uuid[],
    appended_at          timestamptz,
    OUT versions_before  bigint[],
    OUT positions        bigint[]
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM pg_current_xact_id();

    PERFORM pg_advisory_xact_lock(stream_lock.key)
       FROM (SELECT DISTINCT hashtextextended(current_schema() || '/' || stream_id, 0) AS key
               FROM unnest(stream_ids) AS stream_id
              ORDER BY 1) AS stream_lock;

    SELECT array_agg(coalesce((SELECT max(e.stream_version) FROM events AS e WHERE e.stream_id = s.id), 0)
                     ORDER BY s.ord)
      INTO versions_before
      FROM unnest(stream_ids) WITH ORDINALITY AS s(id, ord);

    FOR i IN 1 .. cardinality(stream_ids) LOOP
        IF expected_versions[i] >= 0 AND expected_versions[i] <> versions_before[i] THEN
            RAISE EXCEPTION 'stream % is at version %, not at the expected version %',
                    stream_ids[i], versions_before[i], expected_versions[i]
                USING ERRCODE = 'ES001', DETAIL = stream_ids[i];
        END IF;
    END LOOP;

    -- As in append_to_stream: one multi-row insert, positions in the order given.
    WITH inserted AS (
        INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, payload,
                            correlation_id, causation_id, acting_user, recorded_at)
        SELECT n.event_id,
               stream_ids[n.stream_index],
               versions_before[n.stream_index] + n.event_offset,
               n.event_type,
               n.schema_version,
               n.payload::json,
               n.correlation_id,
               n.causation_id,
               n.acting_user,
               appended_at
          FROM unnest(event_stream_indexes, event_offsets, event_ids, event_types, schema_versions, payloads,
                      correlation_ids, causation_ids, acting_users)
               AS n(stream_index, event_offset, event_id, event_type, schema_version, payload,
                    correlation_id, causation_id, acting_user)
        RETURNING events.position
    )
    SELECT array_agg(inserted.position ORDER BY inserted.position) INTO positions FROM inserted;
END;
$$;
