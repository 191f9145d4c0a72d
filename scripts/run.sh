#!/usr/bin/env bash
# `make run`: the whole stack in the foreground. Ctrl-C stops all of it.
#   Postgres     DATABASE_URL, or a local cluster in .data/pg (started here, kept between runs)
#   control plane http://127.0.0.1:8000 (LITMUS_ADDR), dashboard at /
#   edge worker  http://127.0.0.1:8787 under `wrangler dev`
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

scripts/setup-toolchain.sh

# Each background process gets its own process group, so stopping one stops its children too
# (wrangler runs workerd).
set -m
pids=()
PGDIR=""
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$PGDIR" ] && scripts/pg.sh stop "$PGDIR"
  echo "stopped."
}
trap cleanup INT TERM EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  PGDIR="$ROOT/.data/pg"
  PGPORT=${LITMUS_PG_PORT:-54329}
  DURABLE=1 scripts/pg.sh start "$PGDIR" "$PGPORT"
  export DATABASE_URL=$(scripts/pg.sh url "$PGPORT")
fi

export LITMUS_ADDR=${LITMUS_ADDR:-127.0.0.1:8000}
generated=""
if [ -z "${ADMIN_API_TOKENS:-}" ]; then
  export ADMIN_API_TOKENS=$(random_token)
  generated=" (generated for this run)"
fi
# The worker's secrets: one token to accept config pushes, one to send events to us.
PUBLISH_TOKEN=${PUBLISH_TOKEN:-$(random_token)}
INGEST_TOKEN=${INGEST_TOKEN:-$(random_token)}
export INGEST_API_TOKENS=${INGEST_API_TOKENS:-$INGEST_TOKEN}
export EDGE_PUBLISH_URL=${EDGE_PUBLISH_URL:-http://127.0.0.1:8787/v1/admin/config}
export EDGE_PUBLISH_TOKEN=$PUBLISH_TOKEN
printf 'PUBLISH_TOKEN=%s\nINGEST_TOKEN=%s\nCONTROL_PLANE_URL=http://%s\n' "$PUBLISH_TOKEN" "$INGEST_TOKEN" "$LITMUS_ADDR" > .dev.vars

if [ -f dashboard/package.json ]; then
  phase "dashboard build"
  with_node bash -c 'cd dashboard && { [ -d node_modules ] || ../scripts/npm-install.sh .; } && npm run build'
fi

phase "control plane build"
cargo build --locked --profile server -p litmus-control-plane
target/server/litmus-control-plane &
pids+=($!)
wait_for "http://$LITMUS_ADDR/health" 60

phase "edge worker (wrangler dev builds it first)"
with_node wrangler dev --ip 127.0.0.1 --port 8787 --log-level warn &
pids+=($!)
wait_for "http://127.0.0.1:8787/v1/health" 300

cat <<MSG

  Litmus Edge is up.
    control plane  http://$LITMUS_ADDR        (health: /health, metrics: /metrics)
    dashboard      http://$LITMUS_ADDR/
    edge worker    http://127.0.0.1:8787/v1/assign?unit_id=u1
    database       $DATABASE_URL
    admin token    $ADMIN_API_TOKENS$generated

  Try: curl -H "Authorization: Bearer $ADMIN_API_TOKENS" http://$LITMUS_ADDR/api/v1/experiments
  Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "a process exited; shutting down" >&2
