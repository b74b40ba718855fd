"""Lint the protos and regenerate the Python stubs into sdk/python/cairn/v1.

    python scripts/gen_protos.py          # regenerate
    python scripts/gen_protos.py --check  # fail if the committed stubs are stale

The stubs are generated only; never edit them by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = ROOT / "sdk" / "python" / "cairn" / "v1"
INIT = '"""Generated protobuf and gRPC stubs of the cairn.v1 protocol. Do not edit."""\n'


def run_buf(*args: str) -> None:
    env = dict(os.environ)
    # buf runs the plugins named in buf.gen.yaml; they live beside this interpreter.
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(["buf", *args], cwd=ROOT, env=env, check=True)


def generate(target: pathlib.Path) -> None:
    """Write fresh stubs into `target` (the folder that becomes cairn/v1)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_buf("generate", "--output", tmp)
        produced = pathlib.Path(tmp, "sdk", "python", "cairn", "v1")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(produced, target)
    (target / "__init__.py").write_text(INIT)
    (target / "py.typed").write_text("")


def stale_files(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    names = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    names |= {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    return sorted(
        n
        for n in names
        if not (a / n).is_file()
        or not (b / n).is_file()
        or not filecmp.cmp(a / n, b / n, shallow=False)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args()
    run_buf("lint")
    if not args.check:
        generate(GENERATED)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp, "v1")
        generate(fresh)
        stale = stale_files(fresh, GENERATED)
    if stale:
        print("generated stubs are stale; run scripts/gen_protos.py:", *stale, sep="\n  ")
        return 1
    print("generated stubs are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
