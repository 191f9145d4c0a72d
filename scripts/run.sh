#!/usr/bin/env bash
# `make run`: the whole stack in the foreground. Ctrl-C stops all of it.
#   Postgres     DATABASE_URL, or a local cluster kept between runs (scripts/lib.sh run_pgdata:
#                .data/pg, or /var/lib/litmus-edge/… as root; `make wipe-data` deletes it)
#   control plane http://127.0.0.1:8000 (LITMUS_ADDR), dashboard at /
#   edge worker  http://127.0.0.1:8787 (LITMUS_EDGE_PORT) under `wrangler dev`
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

export LITMUS_ADDR=${LITMUS_ADDR:-127.0.0.1:8000}
EDGE_PORT=${LITMUS_EDGE_PORT:-8787}
PGPORT=${LITMUS_PG_PORT:-54329}

# A port someone else holds would otherwise surface minutes later, after the builds, as a stack of
# errors from whichever process lost the race. Say it now, before anything starts.
busy() {
  echo "make run: port $1 ($2) is already in use$(port_holder "$1")." >&2
  echo "  Stop that process (another \`make run\`?) or choose another port: $3" >&2
  exit 1
}
port_taken "${LITMUS_ADDR##*:}" && busy "${LITMUS_ADDR##*:}" "control plane" "LITMUS_ADDR=127.0.0.1:8001 make run"
port_taken "$EDGE_PORT" && busy "$EDGE_PORT" "edge worker" "LITMUS_EDGE_PORT=8788 make run"

scripts/setup-toolchain.sh

PGDIR=""
if [ -z "${DATABASE_URL:-}" ]; then
  PGDIR=$(run_pgdata)
  # Our own cluster still running (a run killed without Ctrl-C) is reused, not a conflict.
  if ! scripts/pg.sh running "$PGDIR" && port_taken "$PGPORT"; then
    busy "$PGPORT" "Postgres" "LITMUS_PG_PORT=54330 make run"
  fi
fi

# Each background process gets its own process group, so stopping one stops its children too
# (wrangler runs workerd).
set -m
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$PGDIR" ] && scripts/pg.sh stop "$PGDIR"
  echo "stopped."
}
trap cleanup INT TERM EXIT

if [ -n "$PGDIR" ]; then
  phase "Postgres (data in $PGDIR)"
  DURABLE=1 scripts/pg.sh start "$PGDIR" "$PGPORT"
  export DATABASE_URL=$(scripts/pg.sh url "$PGPORT")
fi

generated=""
if [ -z "${ADMIN_API_TOKENS:-}" ]; then
  export ADMIN_API_TOKENS=$(random_token)
  generated=" (generated for this run)"
fi
# The worker's secrets: one token to accept config pushes, one to send events to us.
PUBLISH_TOKEN=${PUBLISH_TOKEN:-$(random_token)}
INGEST_TOKEN=${INGEST_TOKEN:-$(random_token)}
export INGEST_API_TOKENS=${INGEST_API_TOKENS:-$INGEST_TOKEN}
# The key that signs assignments and sticky documents, shared by the worker and the control plane
# (README, "Trust"). Kept beside the local cluster, so that signatures and sticky cookies handed
# out stay valid across restarts; a new one otherwise.
if [ -z "${SIGNING_KEYS:-}" ]; then
  keyfile=""
  [ -n "$PGDIR" ] && keyfile="$(dirname "$PGDIR")/signing-key"
  if [ -n "$keyfile" ] && [ -s "$keyfile" ]; then
    SIGNING_KEYS=$(cat "$keyfile")
  else
    SIGNING_KEYS=$(random_token)
    [ -n "$keyfile" ] && (umask 077; printf '%s\n' "$SIGNING_KEYS" > "$keyfile")
  fi
fi
export SIGNING_KEYS
export EDGE_PUBLISH_URL=${EDGE_PUBLISH_URL:-http://127.0.0.1:$EDGE_PORT/v1/admin/config}
export EDGE_PUBLISH_TOKEN=$PUBLISH_TOKEN
# The watch job (stopping rules, safe rollouts, alerts) looks every 30 s by default; locally every
# 2 s, so a walk-through sees it act while it waits.
export LITMUS_WATCH_EVERY=${LITMUS_WATCH_EVERY:-2s}
# CLIENT_ATTRIBUTES=trust: locally no one stands between the client and the worker to say where a
# request comes from (wrangler dev makes up a location), so the attributes the caller sends are
# used; deployed, the request's own country, city, asn... replace them (README, "Trust").
(umask 077; printf 'PUBLISH_TOKEN=%s\nINGEST_TOKEN=%s\nSIGNING_KEYS=%s\nCLIENT_ATTRIBUTES=trust\nCONTROL_PLANE_URL=http://%s\n' "$PUBLISH_TOKEN" "$INGEST_TOKEN" "$SIGNING_KEYS" "$LITMUS_ADDR" > .dev.vars)

if [ -f dashboard/package.json ]; then
  phase "dashboard build"
  with_node bash -c 'cd dashboard && { [ -d node_modules ] || ../scripts/npm-install.sh .; } && npm run build'
fi
scripts/build-sdk-js.sh --example-into dashboard/dist/sdk-example   # the JS SDK example: http://$LITMUS_ADDR/sdk-example/?edge=http://127.0.0.1:$EDGE_PORT

phase "control plane build"
cargo build --locked --profile server -p litmus-control-plane

# The edge first: the control plane publishes the running experiments as it starts, and an edge
# still building would put that first publish into its retry backoff (up to 30 s with no config
# at the edge). Events the edge forwards before the control plane listens wait in the queue.
phase "edge worker (wrangler dev builds it first)"
with_node wrangler dev --ip 127.0.0.1 --port "$EDGE_PORT" --log-level warn &
pids+=($!)
wait_for "http://127.0.0.1:$EDGE_PORT/v1/health" 600

phase "control plane"
"${CARGO_TARGET_DIR:-target}/server/litmus-control-plane" &
pids+=($!)
wait_for "http://$LITMUS_ADDR/health" 60

data=""; [ -n "$PGDIR" ] && data="    data           $PGDIR  (kept between runs; make wipe-data deletes it)
"
cat <<MSG

  Litmus Edge is up.
    control plane  http://$LITMUS_ADDR        (health: /health, metrics: /metrics)
    dashboard      http://$LITMUS_ADDR/
    JS SDK example http://$LITMUS_ADDR/sdk-example/?edge=http://127.0.0.1:$EDGE_PORT&experiment=<key>
    edge worker    http://127.0.0.1:$EDGE_PORT/v1/assign?unit_id=u1
    database       $DATABASE_URL
$data    admin token    $ADMIN_API_TOKENS$generated

  Try: curl -H "Authorization: Bearer $ADMIN_API_TOKENS" http://$LITMUS_ADDR/api/v1/experiments
  Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "a process exited; shutting down" >&2
