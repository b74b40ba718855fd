#!/usr/bin/env bash
# pgvector for the local PostgreSQL server(s), for semantic search on the
# Postgres store (cairn_server/memory/postgres.py). Debian 12 ships no
# postgresql-15-pgvector, so this builds Debian's own source of pgvector
# (checked against its SHA-256) and installs it, for each installed major
# version that lacks it. Does nothing, quickly, when every one has it.
# Run as root (CI does); non-interactive. Creating the extension in a
# database is the server's business: the memory store does it on first use
# when it may, else a superuser runs CREATE EXTENSION vector.
set -euo pipefail

VERSION=0.8.0
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz"

missing=()
for pg_config in /usr/lib/postgresql/*/bin/pg_config; do
  [[ -x "$pg_config" ]] || continue
  major=$(basename "$(dirname "$(dirname "$pg_config")")")
  if [[ ! -f "$("$pg_config" --sharedir)/extension/vector.control" ]]; then
    missing+=("$major")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "pgvector: nothing to install"
  exit 0
fi
if ((EUID != 0)); then
  echo "pgvector: missing for PostgreSQL ${missing[*]}; run $0 as root" >&2
  exit 1
fi

echo "pgvector: building ${VERSION} for PostgreSQL ${missing[*]}"
packages=(gcc make)
for major in "${missing[@]}"; do
  # pg_config alone comes with the server; PGXS and the headers do not.
  packages+=("postgresql-server-dev-$major")
done
absent=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || absent+=("$package")
done
if ((${#absent[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${absent[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
archive="$work/pgvector.tar.gz"
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 -o "$archive" "$URL"
else
  python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
    "$URL" "$archive"
fi
echo "$SHA256  $archive" | sha256sum --check --quiet -
mkdir "$work/src"
tar -xzf "$archive" -C "$work/src" --strip-components=1

for major in "${missing[@]}"; do
  pg_config="/usr/lib/postgresql/$major/bin/pg_config"
  # OPTFLAGS="": no -march=native, so the library runs on any x86-64 CPU.
  make -C "$work/src" -s PG_CONFIG="$pg_config" OPTFLAGS="" clean all install
  test -f "$("$pg_config" --sharedir)/extension/vector.control"
  echo "pgvector: installed for PostgreSQL $major"
done
