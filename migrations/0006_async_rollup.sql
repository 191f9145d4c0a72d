-- Aggregation moves off the ingest path. 0003 maintained unit_metrics/arm_stats in a trigger on
-- every insert into `events`, under per-bucket advisory locks: concurrent batches for one
-- experiment serialised and ingest fell to a quarter of its speed. Now ingest only appends, and
-- one aggregator (the control plane's rollup task, or a results request catching up) applies new
-- events in batches with the same logic.
--
-- Which events are new: each event row carries the id of the transaction that inserted it. One
-- statement reads the events visible in its snapshot whose xid is at or above `done_below`, or in
-- `pending` (transactions that were still running last time), and records that snapshot's xmax
-- and running xids as the new `done_below`/`pending`. A committed event is thus applied exactly
-- once, however late its transaction commits, and a long transaction elsewhere delays nothing.
DROP TRIGGER events_unit_metrics ON events;
DROP FUNCTION unit_metrics_ingest();

-- Rows stored so far were aggregated by the trigger: they keep a NULL xid and are never re-read.
-- The xid is kept as bigint (xid8 fits). Ids rise with insertion order, so its btree grows at
-- the right edge only (cheap inserts), and "anything new?" is an empty range scan. (A BRIN index
-- would be cheaper still to maintain, but leaves fresh pages unsummarised until vacuum, so every
-- catch-up would rescan the newest part of the table.)
ALTER TABLE events ADD COLUMN xid bigint;
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX events_xid_idx ON events (xid);

-- The results read the aggregates, not raw events; what still reads raw events (a unit's
-- recompute after a late earlier exposure, the timeseries) looks them up by experiment and unit.
DROP INDEX events_results_idx;
CREATE INDEX events_unit_idx ON events (experiment_id, unit_id);

CREATE TABLE rollup_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    done_below bigint NOT NULL,
    pending    bigint[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Everything before this migration was aggregated by the trigger (and has a NULL xid anyway).
INSERT INTO rollup_state (done_below) VALUES (pg_snapshot_xmax(pg_current_snapshot())::text::bigint);

-- The aggregator's input: one batch of new events, in a per-connection temp table.
CREATE FUNCTION unit_metrics_apply() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Exposures: attributes of the first exposure, the exposure marker row, and a re-split of
    -- the unit's metric rows when its first exposure is new or moved earlier.
    UPDATE unit_exposures x SET attributes = n.attributes
    FROM new_events n
    WHERE n.kind = 1 AND n.attributes IS NOT NULL AND x.experiment_id = n.experiment_id
      AND x.unit_id = n.unit_id AND x.first_ts = n.ts AND x.variant_key = n.variant_key
      AND x.attributes IS DISTINCT FROM n.attributes;

    INSERT INTO unit_metrics AS um (experiment_id, unit_id, kind, metric, bucket, variant_key, split_ts)
    SELECT x.experiment_id, x.unit_id, 1, '', unit_bucket(x.unit_id), x.variant_key, x.first_ts
    FROM (SELECT DISTINCT experiment_id, unit_id FROM new_events WHERE kind = 1) n
    JOIN unit_exposures x USING (experiment_id, unit_id)
    ON CONFLICT (experiment_id, unit_id, kind, metric) DO UPDATE
    SET variant_key = excluded.variant_key, split_ts = excluded.split_ts
    WHERE (um.variant_key, um.split_ts) IS DISTINCT FROM (excluded.variant_key, excluded.split_ts);

    UPDATE unit_metrics um
    SET (variant_key, split_ts, post_n, post_sum, pre_n, pre_sum, pre_min_ts, pre_max_ts, stale) =
        (SELECT x.variant_key, r.split_ts, r.post_n, r.post_sum, r.pre_n, r.pre_sum, r.pre_min_ts, r.pre_max_ts, r.stale
         FROM unit_metrics_resplit(um, x.first_ts) r)
    FROM (SELECT DISTINCT experiment_id, unit_id FROM new_events WHERE kind = 1) n
    JOIN unit_exposures x USING (experiment_id, unit_id)
    WHERE um.experiment_id = n.experiment_id AND um.unit_id = n.unit_id AND um.kind <> 1
      AND (um.split_ts, um.variant_key) IS DISTINCT FROM (x.first_ts, x.variant_key);

    -- This statement's metric and conversion events: one upsert per (unit, metric).
    INSERT INTO unit_metrics AS um (experiment_id, unit_id, kind, metric, bucket, variant_key, split_ts,
                                    post_n, post_sum, pre_n, pre_sum, pre_min_ts, pre_max_ts)
    SELECT n.experiment_id, n.unit_id, n.kind, n.metric, unit_bucket(n.unit_id), x.variant_key, x.first_ts,
           count(*) FILTER (WHERE n.ts >= x.first_ts),
           coalesce(sum(n.value) FILTER (WHERE n.ts >= x.first_ts), 0),
           count(*) FILTER (WHERE x.first_ts IS NULL OR n.ts < x.first_ts),
           coalesce(sum(n.value) FILTER (WHERE x.first_ts IS NULL OR n.ts < x.first_ts), 0),
           min(n.ts) FILTER (WHERE x.first_ts IS NULL OR n.ts < x.first_ts),
           max(n.ts) FILTER (WHERE x.first_ts IS NULL OR n.ts < x.first_ts)
    FROM new_events n
    LEFT JOIN unit_exposures x ON x.experiment_id = n.experiment_id AND x.unit_id = n.unit_id
    WHERE n.kind IN (2, 3) AND n.metric IS NOT NULL
    GROUP BY n.experiment_id, n.unit_id, n.kind, n.metric, x.variant_key, x.first_ts
    ON CONFLICT (experiment_id, unit_id, kind, metric) DO UPDATE
    SET (variant_key, split_ts, post_n, post_sum, pre_n, pre_sum, pre_min_ts, pre_max_ts, stale) =
        (SELECT r.variant_key, r.split_ts, r.post_n, r.post_sum, r.pre_n, r.pre_sum, r.pre_min_ts, r.pre_max_ts, r.stale
         FROM unit_metrics_merge(um, ROW(excluded.*)::unit_metrics) r);

    -- Rows that could not be re-split: recompute from raw events (rare: a late earlier exposure
    -- with pre events on both sides of it).
    UPDATE unit_metrics um
    SET (post_n, post_sum, pre_n, pre_sum, pre_min_ts, pre_max_ts, stale) =
        (SELECT count(*) FILTER (WHERE e.ts >= um.split_ts),
                coalesce(sum(e.value) FILTER (WHERE e.ts >= um.split_ts), 0),
                count(*) FILTER (WHERE e.ts < um.split_ts),
                coalesce(sum(e.value) FILTER (WHERE e.ts < um.split_ts), 0),
                min(e.ts) FILTER (WHERE e.ts < um.split_ts),
                max(e.ts) FILTER (WHERE e.ts < um.split_ts),
                false
         FROM events e
         WHERE e.experiment_id = um.experiment_id AND e.kind = um.kind AND e.metric = um.metric AND e.unit_id = um.unit_id)
    FROM (SELECT DISTINCT experiment_id, unit_id FROM new_events) n
    WHERE um.experiment_id = n.experiment_id AND um.unit_id = n.unit_id AND um.stale;
END $$;


-- Event ids are idempotency keys per experiment: the same client id in two experiments is two
-- events (the console's tests tripped over the global scope).
ALTER TABLE event_ids ADD COLUMN experiment_id uuid;
UPDATE event_ids i SET experiment_id = e.experiment_id FROM events e WHERE e.event_id = i.event_id;
DELETE FROM event_ids WHERE experiment_id IS NULL;
ALTER TABLE event_ids ALTER COLUMN experiment_id SET NOT NULL;
ALTER TABLE event_ids DROP CONSTRAINT event_ids_pkey;
ALTER TABLE event_ids ADD PRIMARY KEY (experiment_id, event_id);
