"""Lint the protos and regenerate the Python and TypeScript stubs.

    python scripts/gen_protos.py          # regenerate both
    python scripts/gen_protos.py --check  # fail if either committed copy is stale

Python stubs go to sdk/python/cairn/v1, TypeScript stubs (protobuf-es) to
sdk/typescript/src/gen. The TypeScript plugin is the pinned npm package in
sdk/typescript; it is installed with `npm ci` when missing. The stubs are
generated only; never edit them by hand.
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
TYPESCRIPT = ROOT / "sdk" / "typescript"
NODE_BIN = TYPESCRIPT / "node_modules" / ".bin"
# Where each language's stubs live, relative to the root (and to buf's output).
PYTHON_STUBS = pathlib.Path("sdk", "python", "cairn", "v1")
TYPESCRIPT_STUBS = pathlib.Path("sdk", "typescript", "src", "gen")
INIT = '"""Generated protobuf and gRPC stubs of the cairn.v1 protocol. Do not edit."""\n'


def ensure_typescript_plugin() -> None:
    if (NODE_BIN / "protoc-gen-es").exists():
        return
    if shutil.which("npm") is None:
        sys.exit("protoc-gen-es is missing and npm is not installed: install Node.js 20+")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TYPESCRIPT, check=True)


def run_buf(*args: str) -> None:
    env = dict(os.environ)
    # buf runs the plugins named in buf.gen.yaml: the Python ones live beside
    # this interpreter, protoc-gen-es in the TypeScript package's node_modules.
    path = [str(pathlib.Path(sys.executable).parent), str(NODE_BIN), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(path)
    subprocess.run(["buf", *args], cwd=ROOT, env=env, check=True)


def generate(root: pathlib.Path) -> None:
    """Write fresh stubs of both languages under `root`, at their usual paths."""
    ensure_typescript_plugin()
    with tempfile.TemporaryDirectory() as tmp:
        run_buf("generate", "--output", tmp)
        for stubs in (PYTHON_STUBS, TYPESCRIPT_STUBS):
            target = root / stubs
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(pathlib.Path(tmp, stubs), target)
    (root / PYTHON_STUBS / "__init__.py").write_text(INIT)
    (root / PYTHON_STUBS / "py.typed").write_text("")


def _generated(path: pathlib.Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts


def stale_files(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    # Bytecode that importing the stubs leaves beside them is not generated code.
    names = {p.relative_to(a).as_posix() for p in a.rglob("*") if _generated(p)}
    names |= {p.relative_to(b).as_posix() for p in b.rglob("*") if _generated(p)}
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
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(pathlib.Path(tmp))
        stale = [
            (stubs / name).as_posix()
            for stubs in (PYTHON_STUBS, TYPESCRIPT_STUBS)
            for name in stale_files(pathlib.Path(tmp, stubs), ROOT / stubs)
        ]
    if stale:
        print("generated stubs are stale; run scripts/gen_protos.py:", *stale, sep="\n  ")
        return 1
    print("generated stubs are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
