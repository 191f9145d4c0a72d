-- Materialised aggregates for the results endpoint, maintained at ingest by triggers, so that a
-- readout reads a few thousand rows plus one ordered index scan instead of every raw event.
--
--   events ──(statement trigger)──▶ unit_metrics: one row per (unit, kind, metric)
--   unit_metrics ──(statement triggers)──▶ arm_stats: sufficient statistics per (arm, metric, bucket)
--
-- unit_metrics: a unit's metric value is the sum of its events at or after its first exposure
-- (`post_*`); the events before it (`pre_*`) are the CUPED covariate. `split_ts`/`variant_key`
-- are the unit's first exposure and its variant (NULL = not exposed yet: every event is `pre`).
-- Kind 1 rows (metric '') mark exposed units. First exposures can arrive late and move earlier:
-- a row is re-split without reading raw events when no pre event straddles the new split point
-- (`pre_min_ts`/`pre_max_ts`), else it is recomputed from raw events in the same trigger.
--
-- Concurrency: the trigger takes transaction-level advisory locks on the statement's unit buckets
-- (256 per experiment, in sorted order, so no deadlock) before it reads `unit_exposures` or
-- writes; two statements touching the same unit therefore apply one after the other, each
-- seeing the other's committed exposures and sums (READ COMMITTED takes a snapshot per
-- statement inside the trigger). arm_stats rows are keyed by the same bucket, so their updates
-- are serialised by the same locks.

-- Segment attributes travel on exposure events; the first exposure's attributes are the unit's.
ALTER TABLE events ADD COLUMN attributes jsonb;
ALTER TABLE unit_exposures ADD COLUMN attributes jsonb;

CREATE TABLE unit_metrics (
    experiment_id uuid NOT NULL,
    unit_id       text NOT NULL,
    kind          smallint NOT NULL, -- 1 exposure marker, 2 metric, 3 conversion (as events.kind)
    metric        text NOT NULL,
    bucket        smallint NOT NULL, -- hashtext(unit_id) & 255: bootstrap block and lock key
    variant_key   text,
    split_ts      timestamptz,
    post_n        bigint NOT NULL DEFAULT 0,
    post_sum      double precision NOT NULL DEFAULT 0,
    pre_n         bigint NOT NULL DEFAULT 0,
    pre_sum       double precision NOT NULL DEFAULT 0,
    pre_min_ts    timestamptz,
    pre_max_ts    timestamptz,
    stale         boolean NOT NULL DEFAULT false,
    -- Unit first: the trigger finds all of one unit's rows when its first exposure moves.
    PRIMARY KEY (experiment_id, unit_id, kind, metric)
);
-- Mann-Whitney ranks: per-unit values in order, read by an index-only scan (no sort).
CREATE INDEX unit_metrics_values_idx ON unit_metrics (experiment_id, kind, metric, post_sum)
    INCLUDE (variant_key) WHERE post_n > 0 AND variant_key IS NOT NULL;

-- Σ over the bucket's exposed units with the metric (post_n > 0): units, events, y, y², x, x², xy
-- with y = post_sum and x = pre_sum. For kind 1, `units` counts exposed units.
CREATE TABLE arm_stats (
    experiment_id uuid NOT NULL,
    kind          smallint NOT NULL,
    metric        text NOT NULL,
    variant_key   text NOT NULL,
    bucket        smallint NOT NULL,
    units         bigint NOT NULL DEFAULT 0,
    events        bigint NOT NULL DEFAULT 0,
    sum_y         double precision NOT NULL DEFAULT 0,
    sum_y2        double precision NOT NULL DEFAULT 0,
    sum_x         double precision NOT NULL DEFAULT 0,
    sum_x2        double precision NOT NULL DEFAULT 0,
    sum_xy        double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, kind, metric, variant_key, bucket)
);

CREATE FUNCTION unit_bucket(unit_id text) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (hashtext(unit_id) & 255)::smallint $$;

-- `r` re-split at `split`: unchanged when the split point is the same; pre events move to post
-- only when all or none of them are at/after the new point. Otherwise the row is marked stale
-- (recomputed from raw events by the trigger).
CREATE FUNCTION unit_metrics_resplit(r unit_metrics, split timestamptz) RETURNS unit_metrics
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF r.split_ts IS NOT DISTINCT FROM split OR r.stale THEN
        RETURN r;
    END IF;
    IF split IS NULL OR (r.split_ts IS NOT NULL AND split > r.split_ts AND r.post_n > 0) THEN
        r.stale := true;
    ELSIF r.pre_n = 0 OR r.pre_max_ts < split THEN
        NULL; -- every pre event stays pre
    ELSIF r.pre_min_ts >= split THEN
        r.post_n := r.post_n + r.pre_n;
        r.post_sum := r.post_sum + r.pre_sum;
        r.pre_n := 0;
        r.pre_sum := 0;
        r.pre_min_ts := NULL;
        r.pre_max_ts := NULL;
    ELSE
        r.stale := true;
    END IF;
    r.split_ts := split;
    RETURN r;
END $$;

-- `existing` plus `delta` (events classified at `delta.split_ts`).
CREATE FUNCTION unit_metrics_merge(existing unit_metrics, delta unit_metrics) RETURNS unit_metrics
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r unit_metrics := unit_metrics_resplit(existing, delta.split_ts);
BEGIN
    r.variant_key := delta.variant_key;
    r.post_n := r.post_n + delta.post_n;
    r.post_sum := r.post_sum + delta.post_sum;
    r.pre_n := r.pre_n + delta.pre_n;
    r.pre_sum := r.pre_sum + delta.pre_sum;
    r.pre_min_ts := least(r.pre_min_ts, delta.pre_min_ts);
    r.pre_max_ts := greatest(r.pre_max_ts, delta.pre_max_ts);
    RETURN r;
END $$;

CREATE FUNCTION unit_metrics_ingest() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT DISTINCT hashtext(experiment_id::text) AS exp, unit_bucket(unit_id) AS bucket
             FROM new_events ORDER BY 1, 2 LOOP
        PERFORM pg_advisory_xact_lock(k.exp, k.bucket);
    END LOOP;

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
    RETURN NULL;
END $$;

CREATE TRIGGER events_unit_metrics AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION unit_metrics_ingest();

-- arm_stats deltas. A unit row contributes when it belongs to an arm and, for metrics and
-- conversions, has post-exposure events; an update adds the new version and subtracts the old.
-- Sorted upserts keep concurrent writers (on different lock buckets) from deadlocking.
CREATE FUNCTION arm_stats_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO arm_stats AS a (experiment_id, kind, metric, variant_key, bucket, units, events, sum_y, sum_y2, sum_x, sum_x2, sum_xy)
    SELECT experiment_id, kind, metric, variant_key, bucket, count(*), sum(post_n), sum(post_sum), sum(post_sum * post_sum),
           sum(pre_sum), sum(pre_sum * pre_sum), sum(pre_sum * post_sum)
    FROM new_rows
    WHERE variant_key IS NOT NULL AND NOT stale AND (kind = 1 OR post_n > 0)
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (experiment_id, kind, metric, variant_key, bucket) DO UPDATE
    SET units = a.units + excluded.units, events = a.events + excluded.events, sum_y = a.sum_y + excluded.sum_y,
        sum_y2 = a.sum_y2 + excluded.sum_y2, sum_x = a.sum_x + excluded.sum_x, sum_x2 = a.sum_x2 + excluded.sum_x2,
        sum_xy = a.sum_xy + excluded.sum_xy;
    RETURN NULL;
END $$;

CREATE FUNCTION arm_stats_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO arm_stats AS a (experiment_id, kind, metric, variant_key, bucket, units, events, sum_y, sum_y2, sum_x, sum_x2, sum_xy)
    SELECT experiment_id, kind, metric, variant_key, bucket, sum(s), sum(s * post_n), sum(s * post_sum),
           sum(s * post_sum * post_sum), sum(s * pre_sum), sum(s * pre_sum * pre_sum), sum(s * pre_sum * post_sum)
    FROM (SELECT 1 AS s, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows) d
    WHERE variant_key IS NOT NULL AND NOT stale AND (kind = 1 OR post_n > 0)
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (experiment_id, kind, metric, variant_key, bucket) DO UPDATE
    SET units = a.units + excluded.units, events = a.events + excluded.events, sum_y = a.sum_y + excluded.sum_y,
        sum_y2 = a.sum_y2 + excluded.sum_y2, sum_x = a.sum_x + excluded.sum_x, sum_x2 = a.sum_x2 + excluded.sum_x2,
        sum_xy = a.sum_xy + excluded.sum_xy;
    RETURN NULL;
END $$;

CREATE TRIGGER unit_metrics_arm_stats_insert AFTER INSERT ON unit_metrics
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION arm_stats_on_insert();
CREATE TRIGGER unit_metrics_arm_stats_update AFTER UPDATE ON unit_metrics
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION arm_stats_on_update();

-- Backfill from what is already stored (nothing on a fresh database); arm_stats follows through
-- the insert trigger.
INSERT INTO unit_metrics (experiment_id, unit_id, kind, metric, bucket, variant_key, split_ts)
SELECT experiment_id, unit_id, 1, '', unit_bucket(unit_id), variant_key, first_ts FROM unit_exposures;
INSERT INTO unit_metrics (experiment_id, unit_id, kind, metric, bucket, variant_key, split_ts,
                          post_n, post_sum, pre_n, pre_sum, pre_min_ts, pre_max_ts)
SELECT e.experiment_id, e.unit_id, e.kind, e.metric, unit_bucket(e.unit_id), x.variant_key, x.first_ts,
       count(*) FILTER (WHERE e.ts >= x.first_ts),
       coalesce(sum(e.value) FILTER (WHERE e.ts >= x.first_ts), 0),
       count(*) FILTER (WHERE x.first_ts IS NULL OR e.ts < x.first_ts),
       coalesce(sum(e.value) FILTER (WHERE x.first_ts IS NULL OR e.ts < x.first_ts), 0),
       min(e.ts) FILTER (WHERE x.first_ts IS NULL OR e.ts < x.first_ts),
       max(e.ts) FILTER (WHERE x.first_ts IS NULL OR e.ts < x.first_ts)
FROM events e
LEFT JOIN unit_exposures x ON x.experiment_id = e.experiment_id AND x.unit_id = e.unit_id
WHERE e.kind IN (2, 3) AND e.metric IS NOT NULL
GROUP BY e.experiment_id, e.unit_id, e.kind, e.metric, x.variant_key, x.first_ts;
