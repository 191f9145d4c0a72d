#!/usr/bin/env bash
# `make wipe-data`: stops and deletes the Postgres cluster `make run` keeps between runs (every
# experiment and event in it). DATABASE_URL databases are never touched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$(run_pgdata)
if [ ! -e "$dir" ]; then
  echo "no local cluster to wipe (would be at $dir)"
  exit 0
fi
scripts_dir=$(dirname "$0")
"$scripts_dir/pg.sh" stop "$dir"
rm -rf "$dir"
# The per-clone directory outside the repo goes too; .data may hold other local state.
case "$dir" in /var/lib/litmus-edge/*) rmdir "$(dirname "$dir")" 2>/dev/null || true ;; esac
echo "wiped $dir"
