#!/usr/bin/env bash
# Builds the JavaScript SDK (sdk/js) into sdk/js/dist/: the engine (shared/, through the binding
# crate sdk/js/wasm) compiled to wasm32 and bound with wasm-bindgen (--target web: one module for
# browsers, Node, Deno and workers), then the TypeScript compiled to ES modules + .d.ts. Nothing
# of it is committed; skipped when dist is newer than every input.
#
#   scripts/build-sdk-js.sh           # build when out of date
#   scripts/build-sdk-js.sh --force   # rebuild
#   scripts/build-sdk-js.sh --example-into DIR   # build, then copy the example page into DIR and
#                                     # the module into DIR/sdk (make run: dashboard/dist/sdk-example)
#
# Same toolchain as scripts/build-worker.sh (scripts/setup-toolchain.sh: Debian rustc with a
# private wasm32 sysroot, wasm-bindgen-cli, Node 22): rustup has no wasm32 target on these machines.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TC=${LITMUS_TOOLCHAIN_DIR:-$HOME/.cache/litmus-edge/toolchain}
SDK="$ROOT/sdk/js"
OUT="$SDK/dist"
force=0; example_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --example-into) example_dir=${2:?--example-into needs a directory}; shift ;;
    *) echo "build-sdk-js.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# The example page beside the module it imports (./sdk/index.js), as the control plane serves it.
copy_example() {
  [ -n "$example_dir" ] || return 0
  rm -rf "$example_dir" && mkdir -p "$example_dir"
  cp "$SDK/example/index.html" "$example_dir/"
  cp -r "$OUT" "$example_dir/sdk"
  echo "build-sdk-js.sh: example page in $example_dir"
}

if [ ! -f "$TC/env.sh" ]; then
  echo "build-sdk-js.sh: no toolchain at $TC; run scripts/setup-toolchain.sh first" >&2
  exit 2
fi
export ROOT
# shellcheck disable=SC1091
. "$TC/env.sh"

STAMP="$OUT/.built"
if [ $force = 0 ] && [ -f "$STAMP" ] && [ -f "$OUT/wasm/litmus_sdk_js_wasm_bg.wasm" ] && [ -f "$OUT/index.js" ] && [ -f "$OUT/local.js" ]; then
  newer=$(find "$SDK/src" "$SDK/wasm/src" "$SDK/wasm/Cargo.toml" "$SDK/wasm/Cargo.lock" "$SDK/package.json" \
    "$SDK/tsconfig.json" "$ROOT/shared/src" "$ROOT/shared/Cargo.toml" "$0" -type f -newer "$STAMP" -print -quit 2>/dev/null || true)
  if [ -z "$newer" ]; then
    echo "build-sdk-js.sh: sdk/js/dist is up to date"
    copy_example
    exit 0
  fi
fi

[ -x "$WASM_BINDGEN_BIN" ] || { echo "build-sdk-js.sh: missing $WASM_BINDGEN_BIN (run scripts/setup-toolchain.sh)" >&2; exit 2; }
want=$(awk '$0=="name = \"wasm-bindgen\""{getline; gsub(/version = |"/,""); print; exit}' "$SDK/wasm/Cargo.lock")
have=$("$WASM_BINDGEN_BIN" --version | awk '{print $2}')
if [ "$want" != "$have" ]; then
  echo "build-sdk-js.sh: sdk/js/wasm/Cargo.lock has wasm-bindgen ${want:-?} but the CLI is $have; they must match" >&2
  exit 2
fi

# The binding crate is outside the root workspace (its own [workspace] and lock) and builds in
# its own target dir, so it neither waits on nor invalidates the worker's or the control plane's
# (under a CARGO_TARGET_DIR given, as tests/run's private clones share the repo's).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/sdk-js-wasm"
(cd "$SDK/wasm" && cargo build --locked --release --target wasm32-unknown-unknown)

rm -rf "$OUT" && mkdir -p "$OUT/wasm"
"$WASM_BINDGEN_BIN" --target web --out-dir "$OUT/wasm" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/litmus_sdk_js_wasm.wasm"
if [ -x "${WASM_OPT_BIN:-}" ]; then
  "$WASM_OPT_BIN" "$OUT/wasm/litmus_sdk_js_wasm_bg.wasm" --enable-bulk-memory --enable-mutable-globals \
    --enable-sign-ext --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
    -Os --strip-debug --strip-producers -o "$OUT/wasm/litmus_sdk_js_wasm_bg.wasm"
fi

# TypeScript (the SDK's dev dependency, installed from its lockfile when missing).
if [ ! -x "$SDK/node_modules/.bin/tsc" ] || [ "$SDK/package-lock.json" -nt "$SDK/node_modules/.package-lock.json" ]; then
  "$ROOT/scripts/npm-install.sh" "$SDK"
fi
(cd "$SDK" && node_modules/.bin/tsc -p tsconfig.json)
touch "$STAMP"
ls -l "$OUT/wasm/litmus_sdk_js_wasm_bg.wasm" "$OUT/index.js" | awk '{printf "build-sdk-js.sh: %s %d bytes\n", $NF, $5}'
copy_example
