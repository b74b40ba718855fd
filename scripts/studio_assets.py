"""Copy the libraries Cairn Studio's page vendors from studio/node_modules.

    python scripts/studio_assets.py          # refresh service/cairn_server/studio/static/vendor
    python scripts/studio_assets.py --check  # fail if the committed copy is stale

The versions are pinned in studio/package.json and studio/package-lock.json;
node_modules is installed with `npm ci` when it is missing or holds other
versions than the lock file. The page loads the copies from the server itself
(its CSP allows no other origin), so they are committed; never edit them by
hand: bump the version in studio/package.json, run `npm install` in studio/,
then this script.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDIO = ROOT / "studio"
NODE_MODULES = STUDIO / "node_modules"
VENDOR = ROOT / "service" / "cairn_server" / "studio" / "static" / "vendor"
# Vendored file name -> its source under node_modules. dagre's ES module
# bundle has graphlib built in (it imports nothing), so it loads as is with
# `import dagre from "../vendor/dagre.esm.js"`; both licenses go beside it.
ASSETS = {
    "dagre.esm.js": "@dagrejs/dagre/dist/dagre.esm.js",
    "dagre.LICENSE": "@dagrejs/dagre/LICENSE",
    "graphlib.LICENSE": "@dagrejs/graphlib/LICENSE",
}


def _installed_matches_lock() -> bool:
    """Whether every package in the lock file is installed at its locked version."""
    lock = json.loads((STUDIO / "package-lock.json").read_text())
    for key, entry in lock.get("packages", {}).items():
        if not key.startswith("node_modules/"):
            continue
        manifest = STUDIO / key / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


def ensure_node_modules() -> None:
    if NODE_MODULES.is_dir() and _installed_matches_lock():
        return
    if shutil.which("npm") is None:
        sys.exit("studio/node_modules is missing and npm is not installed: install Node.js 20+")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=STUDIO, check=True)


def stale_files() -> list[str]:
    """Vendored files that differ from node_modules, are missing, or are not ours."""
    stale = []
    for name, source in sorted(ASSETS.items()):
        copy = VENDOR / name
        if not copy.is_file() or copy.read_bytes() != (NODE_MODULES / source).read_bytes():
            stale.append(name)
    if VENDOR.is_dir():
        stale += sorted(p.name for p in VENDOR.iterdir() if p.name not in ASSETS)
    return stale


def copy_assets() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    for path in VENDOR.iterdir():
        if path.name not in ASSETS:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    for name, source in ASSETS.items():
        shutil.copyfile(NODE_MODULES / source, VENDOR / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the copies are stale")
    args = parser.parse_args()
    ensure_node_modules()
    if not args.check:
        copy_assets()
        return 0
    stale = stale_files()
    if stale:
        where = VENDOR.relative_to(ROOT).as_posix()
        print(
            "vendored Studio assets are stale; run scripts/studio_assets.py:",
            *(f"{where}/{name}" for name in stale),
            sep="\n  ",
        )
        return 1
    print("vendored Studio assets are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
