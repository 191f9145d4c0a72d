-- Events the aggregator could not apply (issue 11: one event whose value overflowed float8 made
-- every aggregation fail, so every readout answered 500, across restarts). Ingest now refuses such
-- values, but whatever still gets through (rows written by older builds or by hand, a failure
-- nobody foresaw) is moved here with the database's reason, one event at a time, and aggregation
-- goes on for everyone else (control-plane/src/rollup.rs).
--
-- The row leaves `events` so that a later recompute from raw events cannot meet it again; its key
-- stays in `event_ids`, so a re-send is a duplicate, not a second attempt. To replay rows after a
-- fix, move them back: INSERT INTO events (...) SELECT ... FROM quarantined_events (new rows get a
-- fresh xid and are aggregated on the next run).
CREATE TABLE quarantined_events (
    experiment_id  uuid NOT NULL,
    kind           smallint NOT NULL,
    unit_id        text NOT NULL,
    variant_key    text NOT NULL,
    metric         text,
    value          double precision,
    ts             timestamptz NOT NULL,
    event_id       text NOT NULL,
    attributes     jsonb,
    received_at    timestamptz NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason         text NOT NULL
);
CREATE INDEX quarantined_events_experiment_idx ON quarantined_events (experiment_id);
