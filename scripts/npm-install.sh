#!/usr/bin/env bash
# Installs the npm packages of DIR (default: .) from its lockfile: `scripts/npm-install.sh DIR`.
#
# `npm ci` first. A lockfile written against a registry mirror that lacks other platforms'
# optional packages (workerd's macOS/Windows builds) makes `npm ci` refuse it as out of sync; then,
# and only then, an install that leaves the lockfile untouched. Any other failure is an error.
set -euo pipefail
cd "${1:-.}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  exit 0
fi
if grep -q 'Missing: .* from lock file' "$log"; then
  echo "npm-install: the lockfile names packages this registry does not have (other platforms'); installing without rewriting it"
  exec npm install --no-audit --no-fund --no-save --loglevel=error
fi
cat "$log" >&2
exit 1
