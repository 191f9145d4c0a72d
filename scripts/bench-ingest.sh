#!/usr/bin/env bash
# `make bench-ingest`: HTTP ingest vs a raw COPY into the same table, on loopback.
#
#   EVENTS=1000000 CONCURRENCY=8 BATCH=2000 scripts/bench-ingest.sh
#
# 1. loadgen sends EVENTS events (exposures, then metrics and conversions over 100k units) to the
#    control plane's batch endpoint: validation, dedup, first exposures, COPY, all of it.
# 2. The same number of rows of the same shape, written to a file first, go into `events` by a
#    bare `\copy` (no dedup, no first exposures): the floor for storing them at all.
# 3. The aggregator then applies what was ingested (the first results request waits for it).
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

phase "HTTP ingest: $EVENTS events, concurrency $CONCURRENCY, batches of $BATCH"
"$BIN/loadgen" --url "$BASE_URL" --token "$TOKEN" --experiment http --events "$EVENTS" \
  --concurrency "$CONCURRENCY" --batch "$BATCH" --max-seconds 300 --quiet | tee "$PGDIR/loadgen.txt"
http_rate=$(awk '/^throughput/ {print $2}' "$PGDIR/loadgen.txt")

phase "raw COPY of $EVENTS rows of the same shape into the same table"
RAW_ID=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$API/experiments/raw" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
psql -qAt -c "COPY (SELECT '$RAW_ID'::uuid, CASE WHEN i < 100000 THEN 1 WHEN i % 10 = 0 THEN 3 ELSE 2 END::int2,
    'lg-' || (i % 100000), CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
    CASE WHEN i < 100000 THEN NULL WHEN i % 10 = 0 THEN 'purchase' ELSE 'order_value' END,
    CASE WHEN i >= 100000 AND i % 10 <> 0 THEN ((i * 7919) % 20000) / 100.0 END::float8, now(), 'raw-' || i
  FROM generate_series(0::bigint, $EVENTS - 1) i) TO STDOUT" > "$PGDIR/rows.tsv"
t0=$(date +%s%3N)
psql -q -c "\\copy events (experiment_id, kind, unit_id, variant_key, metric, value, ts, event_id) FROM '$PGDIR/rows.tsv'"
copy_ms=$(( $(date +%s%3N) - t0 ))
copy_rate=$(( EVENTS * 1000 / (copy_ms + 1) ))
echo "raw COPY: $EVENTS rows in $copy_ms ms = $copy_rate events/s"

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
