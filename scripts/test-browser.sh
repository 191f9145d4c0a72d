#!/usr/bin/env bash
# Browser tests of the admin console (dashboard/) against the real control plane.
#
# Needs DATABASE_URL (scripts/test.sh's throwaway Postgres); uses target/debug/litmus-control-plane
# (built here only when missing). Installs the dashboard's npm deps when missing, builds it,
# starts the control plane on a free port with a known admin token, runs `node --test
# tests/browser/` (playwright-core driving /usr/bin/chromium), and always stops the control plane.
# Screenshots: test-output/screenshots/ (git-ignored).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
: "${DATABASE_URL:?DATABASE_URL must point at a Postgres (scripts/test.sh starts one)}"
BIN=${CONTROL_PLANE_BIN:-target/debug/litmus-control-plane}
if [ ! -x "$BIN" ]; then
  phase "control plane build (binary missing)"
  cargo build --locked -p litmus-control-plane
fi
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "test-browser: $CHROMIUM is missing (scripts/setup-toolchain.sh installs Debian's chromium)" >&2; exit 1; }

# Node 22 from the project's toolchain when it is there, else the system's node (>= 20.19).
[ -f "$TC/env.sh" ] && . "$TC/env.sh"
t0=$SECONDS

phase "dashboard: install + build"
(
  cd dashboard
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    ../scripts/npm-install.sh .
  fi
  npm run build --silent
)

phase "browser tests"
PORT=$(free_port)
TOKEN=$(random_token)
LOG=$(mktemp /tmp/litmus-browser-cp.XXXXXX.log)
env -u READ_API_TOKENS -u INGEST_API_TOKENS -u EDGE_PUBLISH_URL -u CF_ACCOUNT_ID -u CF_API_TOKEN \
  ADMIN_API_TOKENS="$TOKEN" LITMUS_ADDR="127.0.0.1:$PORT" DASHBOARD_DIR="$ROOT/dashboard/dist" LITMUS_WATCH_EVERY=1s \
  "$BIN" >"$LOG" 2>&1 &
CP=$!
stop_cp() {
  kill "$CP" 2>/dev/null || true
  wait "$CP" 2>/dev/null || true
  rm -f "$LOG"
}
trap stop_cp EXIT
trap 'exit 130' INT TERM
if ! wait_for "http://127.0.0.1:$PORT/ready" 60; then
  echo "control plane did not become ready; its log:" >&2
  cat "$LOG" >&2
  exit 1
fi

rm -rf test-output/screenshots && mkdir -p test-output/screenshots
status=0
LITMUS_URL=http://127.0.0.1:$PORT LITMUS_TOKEN=$TOKEN CHROMIUM_PATH=$CHROMIUM \
  SCREENSHOT_DIR="$ROOT/test-output/screenshots" \
  timeout 170 node --test --test-timeout=120000 tests/browser/*.test.mjs || status=$?
if [ $status -ne 0 ]; then
  echo "browser tests failed; control plane log (tail):" >&2
  tail -n 40 "$LOG" >&2
fi
echo "screenshots: test-output/screenshots/ ($(ls test-output/screenshots 2>/dev/null | wc -l) files); browser tests took $((SECONDS - t0)) s"
exit $status
