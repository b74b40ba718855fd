#!/usr/bin/env bash
# Makes bench/.venv-peers hold exactly bench/requirements-peers.txt and prints
# its python. Rebuilds the venv from scratch when it is missing or was built
# from another version of that file (a sha256 of it is kept in the venv);
# otherwise does nothing. Quiet: pip's output shows only when it fails.
#
# Also installs Restate's server (bench/.restate, `npm ci` from its
# package-lock.json) the same way: again only when node_modules is missing or
# was installed from another lock file. Without npm, or when that install
# fails, it says so on stderr and goes on: only the restate rows fail then.
#
#     python=$(bash bench/peers/setup.sh)    # PYTHON=python3.12 to pick another
set -euo pipefail

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$bench/.venv-peers"
requirements="$bench/requirements-peers.txt"
stamp="$venv/requirements.sha256"

# Two harnesses starting at once must not build the same venv.
exec 9>"$bench/.venv-peers.lock"
flock 9

# Restate's server: the npm package's platform binary (an optional dependency
# per OS and CPU). --ignore-scripts: the one install script in the tree is an
# analytics ping (@scarf/scarf), which SCARF_ANALYTICS=false turns off too.
restate="$bench/.restate"
restate_stamp="$restate/node_modules/.package-lock.sha256"
restate_want=$(sha256sum "$restate/package-lock.json" | cut -d' ' -f1)
if [[ ! -f "$restate_stamp" || "$(<"$restate_stamp")" != "$restate_want" ]]; then
  if ! command -v npm >/dev/null; then
    echo "setup.sh: npm is missing, so Restate's server is not installed (no restate rows)" >&2
  elif ! (cd "$restate" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund \
    --loglevel=error >&2); then
    echo "setup.sh: npm ci in $restate failed (no restate rows)" >&2
  else
    echo "$restate_want" >"$restate_stamp"
  fi
fi

want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -rf "$venv"
if ! { "${PYTHON:-python3}" -m venv "$venv" &&
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$venv"
  echo "setup.sh: could not build $venv" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "$venv/bin/python"
