-- What the service's consumers of other services' events keep: the inbox that makes a
-- consumer's effect happen once, their positions, and their dead letters.

-- "Consumer X has handled event Y", written in the same transaction as the events the
-- handling appended (append_handled_events below), so that a delivery repeated after a
-- crash or a redelivery finds its effect already made.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    event_id    uuid        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- How far each consumer fed by the in-process bus has read its source's global order.
CREATE TABLE consumer_positions (
    consumer    text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Events a consumer gave up on, and the events of the same stream parked behind them.
-- `event` is the whole RecordedEvent as serde writes it, so that it is handed back as it
-- was delivered; `stream_id`, `stream_version` and `position` repeat parts of it to be
-- queried. Ids are UUID v7, made when the letter is parked: their order is the order of
-- parking. `parked_at` is to the microsecond, as consumers stamp it.
CREATE TABLE dead_letters (
    id                     uuid        PRIMARY KEY,
    consumer               text        NOT NULL,
    stream_id              text        NOT NULL,
    stream_version         bigint      NOT NULL,
    position               bigint      NOT NULL,
    event                  json        NOT NULL,
    reason                 text        NOT NULL,
    attempts               integer     NOT NULL CHECK (attempts >= 0),
    parked_at              timestamptz NOT NULL
);

-- A consumer's dead letters of one stream, in the stream's order: what a retry replays
-- and what tells the consumer which streams are blocked.
CREATE INDEX dead_letters_by_stream ON dead_letters (consumer, stream_id, stream_version);

-- Appends like append_events, and records in the same transaction that `consumer` has
-- handled `handled_event_id`. If it had, nothing is written and ES003 is raised (DETAIL
-- is the consumer). The streams may be none at all: a decision to do nothing is recorded
-- too. Errors are append_events' and ES003.
--
-- The inbox row comes first. It gives the transaction its transaction id before any
-- position is taken, as read_all's gap safety needs (append_events takes one first
-- anyway). And of several deliveries of one event racing, the later ones wait here, on
-- the first one's row, until it commits and they find the row, or rolls back and they
-- carry on: they never get as far as taking a stream's lock or a position.
CREATE FUNCTION append_handled_events(
    consumer_name        text,
    handled_event_id     uuid,
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

    INSERT INTO inbox (consumer, event_id, handled_at)
    VALUES (consumer_name, handled_event_id, appended_at)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer % has already handled event %', consumer_name, handled_event_id
            USING ERRCODE = 'ES003', DETAIL = consumer_name;
    END IF;

    IF cardinality(stream_ids) = 0 THEN
        versions_before := '{}';
        positions := '{}';
        RETURN;
    END IF;

    SELECT a.versions_before, a.positions
      INTO versions_before, positions
      FROM append_events(stream_ids, expected_versions, event_stream_indexes, event_offsets, event_ids,
                         event_types, schema_versions, payloads, correlation_ids, causation_ids, acting_users,
                         appended_at) AS a;
END;
$$;
