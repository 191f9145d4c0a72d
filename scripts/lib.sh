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
