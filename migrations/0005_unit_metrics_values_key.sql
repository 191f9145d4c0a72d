-- The rank query groups per-unit values by (metric, value, variant): with the variant in the
-- index key (not INCLUDE) the index-only scan already delivers that order, so the grouping
-- streams without an incremental sort (10M-event bench: the rank query 0.87 s → 0.25 s).
DROP INDEX unit_metrics_values_idx;
CREATE INDEX unit_metrics_values_idx ON unit_metrics (experiment_id, kind, metric, post_sum, variant_key)
    WHERE post_n > 0 AND variant_key IS NOT NULL;
