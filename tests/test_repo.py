"""The repository's own promises, checked with the real tools.

The stubs are generated from the protos and never stale, the protos follow the
naming rules of STYLE.md, the Dockerfile lints clean, and the CI entry points
can be run. The tools come from the dev extra, beside the running interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROTOS = ROOT / "protos" / "cairn" / "v1"
PROTO_FILES = sorted(PROTOS.glob("*.proto"))


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root, with the venv's tools on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(a) for a in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tool(name: str) -> Path:
    path = BIN / name
    assert path.is_file(), f"{name} is missing from {BIN}; install the dev extra"
    return path


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}{result.stderr}"
    )


def test_generated_stubs_are_fresh() -> None:
    result = run(sys.executable, ROOT / "scripts" / "gen_protos.py", "--check")
    assert_ok(result)
    assert "generated stubs are fresh" in result.stdout


def test_buf_lint_passes() -> None:
    assert_ok(run(tool("buf"), "lint"))


@pytest.mark.skip(reason="no main branch history is guaranteed in CI yet")
def test_buf_breaking_against_main() -> None:
    assert_ok(run(tool("buf"), "breaking", "--against", ".git#branch=main"))


def test_dockerfile_passes_hadolint() -> None:
    assert_ok(run(tool("hadolint"), "Dockerfile"))


# -- Protos: folder = package, services end in Service, <Rpc>Request/<Rpc>Response.

COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.MULTILINE)
SERVICE = re.compile(r"\bservice\s+(\w+)\s*\{")
RPC_KEYWORD = re.compile(r"\brpc\s")
RPC = re.compile(
    r"\brpc\s+(?P<name>\w+)\s*"
    r"\(\s*(?:stream\s+)?(?P<request>[\w.]+)\s*\)\s*"
    r"returns\s*\(\s*(?:stream\s+)?(?P<response>[\w.]+)\s*\)"
)


def proto_source(path: Path) -> str:
    """The proto's text without comments, which may mention `rpc` or `service`."""
    return COMMENT.sub("", path.read_text())


def test_protos_exist() -> None:
    names = {p.name for p in PROTO_FILES}
    assert {"run_service.proto", "thread_service.proto", "worker_service.proto"} <= names
    assert "v1.proto" not in names


@pytest.mark.parametrize("path", PROTO_FILES, ids=lambda p: p.name)
def test_proto_package_matches_folder(path: Path) -> None:
    assert PACKAGE.findall(proto_source(path)) == ["cairn.v1"]


@pytest.mark.parametrize("path", PROTO_FILES, ids=lambda p: p.name)
def test_proto_services_end_in_service(path: Path) -> None:
    services = SERVICE.findall(proto_source(path))
    assert [s for s in services if not s.endswith("Service")] == []
    if path.stem.endswith("_service"):
        assert len(services) == 1, f"{path.name} should define exactly one service"


@pytest.mark.parametrize("path", PROTO_FILES, ids=lambda p: p.name)
def test_proto_rpcs_have_own_request_and_response(path: Path) -> None:
    source = proto_source(path)
    rpcs = list(RPC.finditer(source))
    assert len(rpcs) == len(RPC_KEYWORD.findall(source)), "an rpc the pattern cannot read"
    wrong = [
        f"{m['name']}({m['request']}) returns ({m['response']})"
        for m in rpcs
        if (m["request"], m["response"]) != (f"{m['name']}Request", f"{m['name']}Response")
    ]
    assert wrong == []


# -- CI entry points.


@pytest.mark.parametrize("name", ["scripts/test", ".ci/run"])
def test_entry_point_is_executable_bash(name: str) -> None:
    path = ROOT / name
    assert path.is_file()
    assert os.access(path, os.X_OK), f"{name} is not executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert_ok(run("bash", "-n", path))
