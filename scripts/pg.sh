#!/usr/bin/env bash
# A private Postgres cluster from the system's binaries, for `make run` and `make test`.
#
#   scripts/pg.sh start DATADIR PORT   # initdb on first use, start, create database `litmus`
#   scripts/pg.sh stop DATADIR
#   scripts/pg.sh running DATADIR      # exit 0 when that cluster's server is up
#   scripts/pg.sh url PORT             # the DATABASE_URL for that cluster
#
# Postgres refuses to run as root; when we are root, the server runs as the `postgres` user, which
# must be able to enter DATADIR (scripts/lib.sh's run_pgdata picks such a place for `make run`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cmd=${1:?start|stop|url}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PG_BIN/pg_ctl" ] || { echo "pg.sh: no Postgres binaries under /usr/lib/postgresql (run scripts/setup-toolchain.sh --native)" >&2; exit 1; }

# From /: the server's user may not be allowed into the caller's working directory.
as_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

running() { [ -f "$1/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

case "$cmd" in
  running)
    running "${2:?datadir}"
    ;;
  url)
    echo "postgres://litmus@127.0.0.1:${2:?port}/litmus"
    ;;
  start)
    dir=${2:?datadir}; port=${3:?port}
    # New parents traversable whatever the caller's umask: the server may run as another user.
    (umask 022; mkdir -p "$dir")
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
      chown postgres:postgres "$dir" && chmod 700 "$dir"
      if ! runuser -u postgres -- test -x "$dir"; then
        echo "pg.sh: the server runs as 'postgres' (Postgres refuses root) and cannot enter $dir:" \
             "a directory above it is private. Use a data directory it can reach." >&2
        exit 1
      fi
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$PG_BIN/initdb" -D "$dir" -U litmus --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
      # Throwaway clusters trade durability for speed; DURABLE=1 keeps the defaults.
      if [ "${DURABLE:-0}" != 1 ]; then
        printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >> "$dir/postgresql.conf"
      fi
      printf 'max_connections = 200\nshared_buffers = 256MB\n' >> "$dir/postgresql.conf"
    fi
    if ! running "$dir"; then
      if port_taken "$port"; then
        echo "pg.sh: port $port is already in use$(port_holder "$port"); Postgres cannot listen there." >&2
        exit 1
      fi
      as_owner "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U litmus -d postgres -qtAc "SELECT 1 FROM pg_database WHERE datname = 'litmus'" | grep -q 1 \
      || "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U litmus -d postgres -qc "CREATE DATABASE litmus" >/dev/null
    ;;
  stop)
    dir=${2:?datadir}
    [ -f "$dir/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: pg.sh start DATADIR PORT | stop DATADIR | url PORT" >&2; exit 2 ;;
esac
