#!/usr/bin/env bash
# `make bench-stats`: loads EVENTS (default 10 million) events for one experiment with COPY, then
# times GET /api/v1/experiments/{id}/results against a bare `SELECT count(*)` over the same rows.
#
#   EVENTS=10000000 UNITS=1000000 RUNS=5 scripts/bench-stats.sh
#
# The load is a plain append, as ingest is; the aggregator (control-plane/src/rollup.rs) then
# applies the new events to unit_metrics and arm_stats. The first results request after the load
# waits for that catch-up, so it is timed on its own (the aggregator's throughput); the timed
# runs after it are the readout a user sees on a live system, where the aggregator keeps up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

EVENTS=${EVENTS:-10000000}
UNITS=${UNITS:-1000000}
RUNS=${RUNS:-5}
TOKEN=bench-token
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

bench_stack "$TOKEN"
psql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U litmus -v ON_ERROR_STOP=1 "$@"; }
api() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
ID=$(api -X POST "$API/experiments" -d '{"key":"bench","name":"Bench","description":"Does the treatment raise order value?",
  "variants":[{"key":"control","name":"Control","weight":0.5,"config_json":{}},{"key":"treatment","name":"Treatment","weight":0.5,"config_json":{}}]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api -X POST "$API/experiments/bench/launch" -d '{"ramp_pct":100}' >/dev/null

# Events for unit u: one exposure at first_ts(u); then metric events (a third of the order values
# before the exposure: the CUPED covariate), session minutes, and conversions after it.
# Treatment units order ~2 % more. Everything is generated inside Postgres and piped to COPY.
gen_exposures() {
  psql -qAt -d litmus -c "COPY (SELECT '$1'::uuid, 1::int2, 'u' || u, CASE WHEN u % 2 = 0 THEN 'control' ELSE 'treatment' END,
      NULL::text, NULL::float8, timestamptz '2026-01-08' + u * interval '100 ms', 'x$1-' || u
    FROM generate_series(0, $2 - 1) u) TO STDOUT"
}
gen_metrics() { # id, units, events, offset
  psql -qAt -d litmus -c "COPY (
    SELECT '$1'::uuid, kind, 'u' || unit, CASE WHEN unit % 2 = 0 THEN 'control' ELSE 'treatment' END, metric, value,
           timestamptz '2026-01-08' + unit * interval '100 ms' + off, 'm$1-' || j
    FROM (SELECT j, u.unit,
                 CASE WHEN j < $3 * 8 / 10 THEN 2::int2 ELSE 3::int2 END AS kind,
                 CASE WHEN j < $3 * 6 / 10 THEN 'order_value' WHEN j < $3 * 8 / 10 THEN 'session_minutes' ELSE 'purchase' END AS metric,
                 CASE WHEN j < $3 * 6 / 10 THEN round((exp(3 + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))
                                                       * (1 + 0.02 * (u.unit % 2)))::numeric, 2)::float8
                      WHEN j < $3 * 8 / 10 THEN floor(random() * 30)::float8 END AS value,
                 CASE WHEN j < $3 * 6 / 10 AND j % 3 = 0 THEN -random() * interval '7 days' ELSE random() * interval '7 days' END AS off
          FROM generate_series(0, $3 - 1) j, LATERAL (SELECT floor(random() * $2 + j * 0)::int AS unit) u) g
  ) TO STDOUT"
}
# What the ingest statement writes beside the events: the first exposure per unit.
first_exposures() {
  psql -q -d litmus -c "INSERT INTO unit_exposures (experiment_id, unit_id, variant_key, first_ts)
    SELECT '$1', 'u' || u, CASE WHEN u % 2 = 0 THEN 'control' ELSE 'treatment' END, timestamptz '2026-01-08' + u * interval '100 ms'
    FROM generate_series(0, $2 - 1) u"
}
copy_in() { psql -q -d litmus -c "\\copy events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id) FROM STDIN"; }
now_ms() { date +%s%3N; }

phase "load $EVENTS events for experiment $ID ($UNITS units) by COPY"
t0=$(now_ms)
first_exposures "$ID" "$UNITS"
gen_exposures "$ID" "$UNITS" | copy_in
gen_metrics "$ID" "$UNITS" $((EVENTS - UNITS)) | copy_in
load_ms=$(( $(now_ms) - t0 ))
echo "loaded in $((load_ms / 1000)) s"

phase "aggregate: the first results request applies every loaded event"
t0=$(now_ms)
api -o /dev/null "$API/experiments/$ID/results"
rollup_ms=$(( $(now_ms) - t0 ))
echo "aggregated $EVENTS events in $((rollup_ms / 1000)) s ($(( EVENTS * 1000 / (rollup_ms + 1) )) events/s)"
# What autovacuum does on a live system: statistics and the visibility map (index-only scans).
psql -q -d litmus -c "VACUUM ANALYZE events" -c "VACUUM ANALYZE unit_exposures" -c "VACUUM ANALYZE unit_metrics" -c "VACUUM ANALYZE arm_stats"
psql -d litmus -c "SELECT (SELECT count(*) FROM events WHERE experiment_id = '$ID') AS events,
  (SELECT count(*) FROM unit_metrics WHERE experiment_id = '$ID') AS unit_metrics_rows,
  (SELECT count(*) FROM arm_stats WHERE experiment_id = '$ID') AS arm_stats_rows,
  (SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree('events')) AS events_size,
  pg_size_pretty(pg_total_relation_size('unit_metrics')) AS unit_metrics_size,
  pg_size_pretty(pg_total_relation_size('arm_stats')) AS arm_stats_size"

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

phase "timing: $RUNS runs each after one warm-up, medians"
count_once() {
  psql -qAt -d litmus -c '\timing on' -c "SELECT count(*) FROM events WHERE experiment_id = '$ID'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
results_once() {
  curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$API/experiments/$ID/results" | awk '{printf "%.3f\n", $1 * 1000}'
}
count_once >/dev/null; results_once >/dev/null
count_ms=$(for _ in $(seq "$RUNS"); do count_once; done | median)
results_ms=$(for _ in $(seq "$RUNS"); do results_once; done | median)
api "$API/experiments/$ID/results" >"$PGDIR/results.json"
python3 - "$PGDIR/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("exposures:", [v["exposures"] for v in r["variants"]], " srm p:", r["srm"]["p_value"])
for l in r["lift"]:
    seq = l.get("sequential", {}).get("p_value")
    print("  %-16s %-10s lift %+.4f  p %.3g  always-valid p %s  test %s" % (l["metric"], l["kind"], l["abs_lift"], l["p_value"], seq, l["test"]))
PY
echo
echo "results endpoint: ${results_ms} ms (median of $RUNS)"
echo "SELECT count(*):  ${count_ms} ms (median of $RUNS)"
python3 -c "print(f'ratio results / count(*): {float($results_ms) / float($count_ms):.2f}')"
