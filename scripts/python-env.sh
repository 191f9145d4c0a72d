#!/usr/bin/env bash
# The project's Python virtualenv: the SDK (sdk/python, installed editable) and what its tests
# need (sdk/python/requirements-test.txt, pinned). Idempotent: created on first use, refreshed only
# when those files, this clone's path or the interpreter changed, recreated when its python is
# broken. Prints the virtualenv's directory on stdout, everything else on stderr:
#
#   VENV=$(scripts/python-env.sh) && "$VENV/bin/python" -m pytest sdk/python/tests
#
# Where: LITMUS_VENV, else ~/.cache/litmus-edge/venv (outside the clone: nothing to git-ignore,
# and pytest stays cached across clones). The interpreter: PYTHON, else python3.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
VENV=${LITMUS_VENV:-$HOME/.cache/litmus-edge/venv}
PY=${PYTHON:-python3}
SDK=$ROOT/sdk/python
REQS=$SDK/requirements-test.txt

mkdir -p "$(dirname "$VENV")"
# Two clones refreshing the one virtualenv at once would tangle their pip runs.
exec 9>"$VENV.lock"
flock 9

stamp=$( { cat "$REQS" "$SDK/pyproject.toml"; echo "$ROOT"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
if [ -f "$VENV/.litmus-stamp" ] && [ "$(cat "$VENV/.litmus-stamp")" = "$stamp" ] && "$VENV/bin/python" -c 'import litmus, pytest' 2>/dev/null; then
  echo "python env: $VENV (up to date)" >&2
  echo "$VENV"
  exit 0
fi

if ! "$VENV/bin/python" -c 'pass' 2>/dev/null || [ "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" != "$("$PY" -c 'import sys; print(sys.version)')" ]; then
  echo "python env: creating $VENV with $("$PY" --version 2>&1)" >&2
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >&2; then
    # Debian's python3 keeps ensurepip in a package of its own.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      rm -rf "$VENV"
      apt-get install -y -q python3-venv >&2 || { apt-get update -q >&2 && apt-get install -y -q python3-venv >&2; }
      "$PY" -m venv "$VENV" >&2
    else
      echo "python env: '$PY -m venv' failed; install your distribution's venv package (Debian: python3-venv)" >&2
      exit 1
    fi
  fi
fi

echo "python env: installing $(basename "$REQS") and sdk/python (editable) into $VENV" >&2
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r "$REQS" >&2
"${pip[@]}" install -e "$SDK" >&2
"$VENV/bin/python" -c 'import litmus, pytest' >&2
echo "$stamp" > "$VENV/.litmus-stamp"
echo "$VENV"
