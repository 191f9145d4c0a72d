#!/usr/bin/env bash
# Builds the edge worker (edge-worker/) into edge-worker/build/{index.js,worker/shim.mjs,
# worker/index.wasm} with worker-build, offline, around our own JavaScript entry
# (edge-worker/js/shim.js: the fast assignment route and exposure batching). wrangler runs this as its [build] command; tests and the bench call it too.
#
#   scripts/build-worker.sh            # release build (LTO + wasm-opt), skipped when up to date
#   scripts/build-worker.sh --force    # rebuild even if the output looks fresh
#   WORKER_BUILD_PROFILE=--dev scripts/build-worker.sh   # fast unoptimised build
#
# Needs the toolchain from scripts/setup-toolchain.sh (Debian rustc + wasm32 sysroot, worker-build,
# wasm-bindgen-cli, Node 22, wasm-opt from npm): rustup has no wasm32 target on these machines and
# worker-build's own downloads come from GitHub, so every tool is pre-installed and named by env.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TC=${LITMUS_TOOLCHAIN_DIR:-$HOME/.cache/litmus-edge/toolchain}
OUT="$ROOT/edge-worker/build"
force=0; [ "${1:-}" = "--force" ] && { force=1; shift; }

if [ ! -f "$TC/env.sh" ]; then
  echo "build-worker.sh: no toolchain at $TC; run scripts/setup-toolchain.sh first" >&2
  exit 2
fi
# shellcheck disable=SC1091
. "$TC/env.sh"

profile=${WORKER_BUILD_PROFILE:---release}
# Skip when the wasm is newer than every input and was built the same way: wrangler dev, the
# tests and the bench all call us.
WASM="$OUT/worker/index.wasm"
if [ $force = 0 ] && [ -f "$OUT/index.js" ] && [ -f "$WASM" ] \
   && [ "$(cat "$OUT/.litmus-profile" 2>/dev/null)" = "$profile" ]; then
  newer=$(find "$ROOT/edge-worker/src" "$ROOT/edge-worker/js" "$ROOT/shared/src" "$ROOT/edge-worker/Cargo.toml" \
    "$ROOT/shared/Cargo.toml" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -type f -newer "$WASM" -print -quit 2>/dev/null || true)
  if [ -z "$newer" ]; then
    echo "build-worker.sh: edge-worker/build is up to date"
    exit 0
  fi
fi

for b in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [ -x "$b" ] || { echo "build-worker.sh: missing $b (run scripts/setup-toolchain.sh, then npm install)" >&2; exit 2; }
done

# The glue wasm-bindgen-cli generates only works with the exact same wasm-bindgen crate version.
want=$(awk '$0=="name = \"wasm-bindgen\""{getline; gsub(/version = |"/,""); print; exit}' "$ROOT/Cargo.lock")
have=$("$WASM_BINDGEN_BIN" --version | awk '{print $2}')
if [ "$want" != "$have" ]; then
  echo "build-worker.sh: Cargo.lock has wasm-bindgen ${want:-?} but the CLI is $have; they must match" \
       "(pin wasm-bindgen in Cargo.toml or re-run scripts/setup-toolchain.sh)" >&2
  exit 2
fi

# Own target dir: a concurrent native build of the control plane (another compiler, another
# profile) must not hold the build-directory lock this build waits on.
export CARGO_TARGET_DIR="$ROOT/target/edge-worker"
cd "$ROOT/edge-worker"
rm -f "$OUT/.litmus-profile"
# Our entry instead of worker-build's default one (which also makes worker-build lay the output
# out as index.js -> worker/shim.mjs + worker/index.wasm).
CUSTOM_SHIM="$ROOT/edge-worker/js/shim.js" worker-build "$profile" "$@"
if [ "$profile" = "--release" ]; then
  # worker-build keeps the function-name section (82 KB, a quarter of the gzipped upload);
  # release drops it (Cloudflare then shows wasm frames by index). Profiling builds keep it:
  # WORKER_BUILD_PROFILE=--profiling scripts/build-worker.sh, for edge-worker/bench/profile.mjs.
  features=()
  for f in mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling; do
    features+=("--enable-$f")
  done
  # -Oz once more over the whole module: ~1 KiB of the gzipped upload, measured.
  # --low-memory-unused: Rust puts its stack under 1 MiB and its data above, so the first KiB of
  # memory is never addressed and loads and stores may fold their offsets: ~1.9 KiB, measured.
  "$WASM_OPT_BIN" "$WASM" "${features[@]}" -Oz --low-memory-unused --strip-debug --strip-producers -o "$WASM.stripped"
  mv "$WASM.stripped" "$WASM"
fi
rm -f "$OUT/index_bg.wasm"   # the layout before our own entry
echo "$profile" >"$OUT/.litmus-profile"
ls -l "$WASM" | awk '{printf "build-worker.sh: worker/index.wasm %d bytes\n", $5}'
