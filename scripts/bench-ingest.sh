#!/usr/bin/env bash
# `make bench-ingest`: HTTP ingest vs a raw COPY into the same table, on loopback.
#
#   EVENTS=1000000 CONCURRENCY=8 BATCH=2000 scripts/bench-ingest.sh
#
# The comparison leans against HTTP on purpose:
# 1. EVENTS rows of the same shape as loadgen's, written to a file first, go into the empty
#    `events` table by a bare `\copy` (no dedup, no first exposures, no aggregation running).
# 2. loadgen then sends EVENTS events (exposures, then metrics and conversions over 100k units) to
#    the control plane's batch endpoint: validation, dedup, first exposures, COPY, all of it, into
#    a table that already holds the copied rows, while the aggregator works on what arrives.
# 3. The first results request times the aggregator's catch-up on what was ingested.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
EVENTS=${EVENTS:-1000000}
CONCURRENCY=${CONCURRENCY:-8}
BATCH=${BATCH:-2000}
TOKEN=bench-token
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

bench_stack "$TOKEN" -p litmus-loadgen
BIN=$SERVER_BIN
psql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U litmus -d litmus -v ON_ERROR_STOP=1 "$@"; }
for key in http raw; do
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/experiments" \
    -d "{\"key\":\"$key\",\"name\":\"$key\",\"variants\":[{\"key\":\"a\",\"weight\":0.5},{\"key\":\"b\",\"weight\":0.5}]}"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/experiments/$key/launch" -d '{"ramp_pct":100}'
done

phase "raw COPY of $EVENTS rows into the empty table (the floor for storing them at all)"
RAW_ID=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$API/experiments/raw" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
psql -qAt -c "COPY (SELECT '$RAW_ID'::uuid, CASE WHEN i < 100000 THEN 1 WHEN i % 10 = 0 THEN 3 ELSE 2 END::int2,
    'lg-' || (i % 100000), CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
    CASE WHEN i < 100000 THEN NULL WHEN i % 10 = 0 THEN 'purchase' ELSE 'order_value' END,
    CASE WHEN i >= 100000 AND i % 10 <> 0 THEN ((i * 7919) % 20000) / 100.0 END::float8, now(), gen_random_uuid()::text
  FROM generate_series(0::bigint, $EVENTS - 1) i) TO STDOUT" > "$PGDIR/rows.tsv"
# Best of three, each into the emptied table: the fastest COPY is the baseline.
copy_ms=
for _ in 1 2 3; do
  psql -q -c "TRUNCATE events"
  t0=$(date +%s%3N)
  psql -q -c "\\copy events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id) FROM '$PGDIR/rows.tsv'"
  ms=$(( $(date +%s%3N) - t0 ))
  echo "raw COPY: $EVENTS rows in $ms ms"
  if [ -z "$copy_ms" ] || [ "$ms" -lt "$copy_ms" ]; then copy_ms=$ms; fi
done
copy_rate=$(( EVENTS * 1000 / (copy_ms + 1) ))
psql -q -c "TRUNCATE events"

phase "HTTP ingest: $EVENTS events, concurrency $CONCURRENCY, batches of $BATCH"
"$BIN/loadgen" --url "$BASE_URL" --token "$TOKEN" --experiment http --events "$EVENTS" \
  --concurrency "$CONCURRENCY" --batch "$BATCH" --max-seconds 300 --quiet | tee "$PGDIR/loadgen.txt"
http_rate=$(awk '/^throughput/ {print $2}' "$PGDIR/loadgen.txt")

phase "aggregation of what was ingested (first results request)"
t0=$(date +%s%3N)
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$API/experiments/http/results"
agg_ms=$(( $(date +%s%3N) - t0 ))
echo "results after ingest (catch-up included): $agg_ms ms"

echo
echo "HTTP ingest: $http_rate events/s"
echo "raw COPY:    $copy_rate events/s"
python3 -c "print(f'ratio HTTP / raw COPY: {float(\"$http_rate\") / float(\"$copy_rate\"):.2f}')"
grep -E '^latency' "$PGDIR/loadgen.txt"
