#!/usr/bin/env bash
# Makes bench/.venv-peers hold exactly bench/requirements-peers.txt and prints
# its python. Rebuilds the venv from scratch when it is missing or was built
# from another version of that file (a sha256 of it is kept in the venv);
# otherwise does nothing. Quiet: pip's output shows only when it fails.
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
