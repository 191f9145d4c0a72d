#!/usr/bin/env bash
# Benchmarks the edge worker's assignment path on this machine: the release build served by
# Miniflare (workerd) on loopback with 50 running experiments, driven by wrk with GET /v1/assign
# for a fresh unit per request. Prints requests/s and p50/p99 latency at c=1 and c=32, and the
# size of the wasm. The load generator shares the CPU with the worker, so treat the numbers as a
# floor for relative comparisons, not as production capacity.
#
#   scripts/bench-edge.sh                   # 10 s per run
#   BENCH_SECONDS=30 BENCH_PORT=8799 scripts/bench-edge.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TC=${LITMUS_TOOLCHAIN_DIR:-$HOME/.cache/litmus-edge/toolchain}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
PORT=${BENCH_PORT:-8799}
cd "$ROOT"

[ -f "$TC/env.sh" ] || { echo "bench-edge.sh: no toolchain at $TC; run scripts/setup-toolchain.sh first" >&2; exit 2; }
# shellcheck disable=SC1091
. "$TC/env.sh"
command -v wrk >/dev/null || { echo "bench-edge.sh: wrk not found (scripts/setup-toolchain.sh installs it)" >&2; exit 2; }
[ -d node_modules/miniflare ] || npm install --no-audit --no-fund --loglevel=error
scripts/build-worker.sh

log=$(mktemp)
node edge-worker/bench/serve.mjs >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 1 150); do
  grep -q '^ready ' "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
grep -q '^ready ' "$log" || { echo "bench-edge.sh: worker did not start" >&2; cat "$log" >&2; exit 1; }
url="http://127.0.0.1:$PORT"
sink=$(awk '/^ready /{print $4}' "$log")

# A sanity request: 50 assignments, no error.
n=$(curl -fsS "$url/v1/assign?unit_id=probe&country=US&platform=ios&age=30&app_version=2.3.1" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).assignments.length))')
[ "$n" = 50 ] || { echo "bench-edge.sh: expected 50 assignments, got $n" >&2; exit 1; }

# Warm the isolate (JIT, wasm tier-up) before measuring.
wrk -t1 -c4 -d2s -s edge-worker/bench/assign.lua "$url" >/dev/null

summary=()
for spec in "1 1" "2 32"; do
  read -r threads conns <<<"$spec"
  echo "== wrk -t$threads -c$conns -d${SECONDS_PER_RUN}s GET /v1/assign (50 experiments)"
  out=$(wrk -t"$threads" -c"$conns" -d"${SECONDS_PER_RUN}s" --latency -s edge-worker/bench/assign.lua "$url")
  echo "$out"
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  summary+=("$(printf 'c=%-3s %10s req/s   p50 %-9s p99 %s' "$conns" "$rps" "$p50" "$p99")")
done

wasm=edge-worker/build/index_bg.wasm
raw=$(wc -c <"$wasm")
gz=$(gzip -9c "$wasm" | wc -c)
sleep 2 # let the queue drain
delivered=$(curl -fsS "$sink" || echo '?')
echo
echo "== summary (Miniflare on loopback, 2 cores shared with wrk)"
printf '%s\n' "${summary[@]}"
echo "exposures delivered to the stand-in control plane: $delivered"
printf 'wasm: %d bytes raw (%d KiB), %d bytes gzip -9 (%d KiB)\n' "$raw" $((raw / 1024)) "$gz" $((gz / 1024))
