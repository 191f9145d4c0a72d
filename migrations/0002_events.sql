-- Raw events, partitioned by ingest day. Partitioning on the server's receive time (not the
-- client's `ts`) means a partition always exists for a new row and old days drop whole for
-- retention; the partition maintainer creates days ahead, and the default partition is only a
-- safety net should it fall behind.
CREATE TABLE events (
    experiment_id uuid NOT NULL,
    kind          smallint NOT NULL CHECK (kind IN (1, 2, 3)), -- 1 exposure, 2 metric, 3 conversion
    unit_id       text NOT NULL,
    variant_key   text NOT NULL,
    metric        text,
    value         double precision,
    ts            timestamptz NOT NULL,
    event_id      text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (received_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
-- The results queries read one experiment's metric/conversion events per unit.
CREATE INDEX events_results_idx ON events (experiment_id, kind, metric, unit_id) INCLUDE (ts, value);

-- Idempotency: an event_id is stored once. A unique index on `events` would have to include the
-- partition key, and a redelivered event can arrive on another day, hence this table.
CREATE TABLE event_ids (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- One row per exposed unit: its first exposure and the variant it saw then. Maintained on ingest,
-- so results join metric events to a table the size of the exposed population, not of the raw
-- exposure stream.
CREATE TABLE unit_exposures (
    experiment_id uuid NOT NULL,
    unit_id       text NOT NULL,
    variant_key   text NOT NULL,
    first_ts      timestamptz NOT NULL,
    PRIMARY KEY (experiment_id, unit_id)
);
