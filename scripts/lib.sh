# Helpers shared by run.sh and test.sh (sourced, not executed).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TC=${LITMUS_TOOLCHAIN_DIR:-$HOME/.cache/litmus-edge/toolchain}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

random_token() {
  python3 -c 'import secrets; print(secrets.token_hex(16))'
}

# Waits until URL answers 2xx, up to $2 seconds.
wait_for() {
  local url=$1 timeout=${2:-60} i=0
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -ge $((timeout * 5)) ] && { echo "timed out waiting for $url" >&2; return 1; }
    sleep 0.2
  done
}

# Runs a command with the wasm toolchain's env (Node 22, wrangler) without polluting this shell.
with_node() {
  ( . "$TC/env.sh"; exec "$@" )
}

phase() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# For benches: builds the control plane (profile server, plus any extra `-p` packages given),
# starts a throwaway Postgres and the control plane on free ports, and stops both on exit.
# Sets PGDIR, PGPORT, DATABASE_URL, SERVER_BIN (the build dir), BASE_URL and API.
bench_stack() {
  local token=$1; shift
  phase "build (profile server)"
  cargo build --locked --profile server -p litmus-control-plane "$@"
  SERVER_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/server
  phase "throwaway Postgres and control plane"
  PGDIR=$(mktemp -d /tmp/litmus-bench.XXXXXX)
  PGPORT=$(free_port)
  trap bench_stack_stop EXIT
  scripts/pg.sh start "$PGDIR" "$PGPORT"
  export DATABASE_URL=$(scripts/pg.sh url "$PGPORT")
  local port; port=$(free_port)
  LITMUS_ADDR=127.0.0.1:$port ADMIN_API_TOKENS=$token RUST_LOG=warn \
    "$SERVER_BIN/litmus-control-plane" >"$PGDIR/control-plane.log" 2>&1 &
  BENCH_APP_PID=$!
  wait_for "http://127.0.0.1:$port/ready" 60
  BASE_URL=http://127.0.0.1:$port
  API=$BASE_URL/api/v1
}

bench_stack_stop() {
  [ -n "${BENCH_APP_PID:-}" ] && kill "$BENCH_APP_PID" 2>/dev/null || true
  scripts/pg.sh stop "$PGDIR"; rm -rf "$PGDIR"
}

# Exit 0 when something accepts connections on 127.0.0.1:$1.
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# " by NAME (pid N)" for the process listening on port $1, when ss can tell; else nothing.
port_holder() {
  local who
  who=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -1) || true
  [ -n "$who" ] || return 0
  who=${who#users:((\"}
  printf ' by %s (pid %s)' "${who%%\",pid=*}" "${who##*pid=}"
}

# Where `make run` keeps its Postgres cluster between runs (`make wipe-data` deletes it).
# LITMUS_PGDATA wins. Otherwise .data/pg in the clone, except as root: the server then runs as
# `postgres`, which cannot enter a clone under a private directory (/root, a `mktemp -d`), so the
# cluster lives in /var/lib/litmus-edge/<clone name>-<hash of its path>/pg, one per clone.
run_pgdata() {
  if [ -n "${LITMUS_PGDATA:-}" ]; then echo "$LITMUS_PGDATA"; return; fi
  if [ "$(id -u)" != 0 ]; then echo "$ROOT/.data/pg"; return; fi
  local outside
  outside=/var/lib/litmus-edge/$(basename "$ROOT")-$(printf %s "$ROOT" | sha256sum | cut -c1-12)/pg
  # Once a cluster lives outside, it stays there, even if the clone later becomes reachable.
  if [ -f "$outside/PG_VERSION" ] || ! runuser -u postgres -- sh -c \
       'test -x "$1" && { test ! -e "$1/.data" || test -x "$1/.data"; }' _ "$ROOT"; then
    echo "$outside"
  else
    echo "$ROOT/.data/pg"
  fi
}
