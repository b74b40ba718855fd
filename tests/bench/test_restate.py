"""The Restate peer in the harness: its jobs in bench/run.py's plan, its rows
and ratios in bench/report.py, its command line, and (where bench/peers/setup.sh
has installed it, as root) the runner itself against a real restate-server."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
SERVER = BENCH / ".restate" / "node_modules" / "@restatedev" / "restate-server-linux-x64"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """bench/run.py, bench/report.py and bench/peers/_shared.py, imported as
    the harness and the runners import them."""
    sys.path[:0] = [str(BENCH), str(BENCH / "peers")]
    try:
        import _shared
        import report
        import run
    finally:
        del sys.path[:2]
    yield {"run": run, "report": report, "shared": _shared}


def runner_output(workload: str, **figures: Any) -> dict[str, Any]:
    """What run_restate.py writes (the fields report.summarize reads)."""
    base = {
        "system": "restate",
        "store": "restate",
        "workload": workload,
        "steps": 10,
        "runs": 4,
        "concurrency": 1,
        "durability": "sync",
        "run_seconds": [0.02, 0.03, 0.02, 0.025],
        "step_latency_seconds": [0.002] * 36,
        "wall_seconds": 0.1,
        "reran_steps": None,
        "rss_bytes": 200 * 2**20,
        "versions": {"restate-sdk": "1.3.0", "restate-server": "1.7.12"},
        "notes": "restate-server and the SDK service.",
    }
    return {**base, **figures}


def test_the_plan_runs_restate_on_its_own_store_whatever_the_stores(
    bench: dict[str, ModuleType],
) -> None:
    run = bench["run"]
    full = run.selected(run.plan(False), {"cairn", "restate"}, {"sqlite"})
    shapes = [
        (j.workload, j.steps, j.runs, j.concurrency, j.store) for j in full if j.system == "restate"
    ]
    assert shapes == [
        ("sequential", 10, 200, None, "restate"),
        ("sequential", 100, 20, None, "restate"),
        ("concurrent", 10, 256, 32, "restate"),
        ("concurrent", 10, 256, 256, "restate"),
        ("crash", 20, 3, None, "restate"),
    ]
    # Restate comes last, so that it never pushes another system's job out of time.
    assert [j.system for j in full[-5:]] == ["restate"] * 5
    # Not chosen, not run; and the Postgres-only filter keeps Cairn's sqlite jobs out.
    assert not [
        j for j in run.selected(run.plan(False), {"cairn"}, {"sqlite"}) if j.system == "restate"
    ]
    postgres_only = run.selected(run.plan(False), {"cairn", "restate"}, {"postgres"})
    assert {j.store for j in postgres_only} == {"postgres", "restate"}

    quick = run.selected(run.plan(True), {"restate"}, {"sqlite"})
    assert [(j.workload, j.store) for j in quick] == [
        ("sequential", "restate"),
        ("concurrent", "restate"),
        ("crash", "restate"),
    ]

    job = next(j for j in full if j.system == "restate" and j.workload == "concurrent")
    argv = job.argv(pathlib.Path("/peers/python"), "postgresql://x", pathlib.Path("out.json"))
    assert argv[:2] == ["/peers/python", str(BENCH / "peers" / "run_restate.py")]
    assert argv[argv.index("--store") + 1] == "restate"
    assert argv[argv.index("--concurrency") + 1] == "32"
    assert job.name == "restate-restate-concurrent-n10-r256-c32"


def test_the_runners_command_line_takes_restate_as_its_only_store(
    bench: dict[str, ModuleType],
) -> None:
    shared = bench["shared"]
    common = ["--system", "restate", "--workload", "crash", "--out", "r.json"]
    args = shared.parse_args(("restate",), common, stores=("restate",))
    assert args.store == "restate" and args.concurrency == 1
    with pytest.raises(SystemExit):
        shared.parse_args(("restate",), [*common, "--store", "sqlite"], stores=("restate",))
    # The other runners keep their stores and default.
    lang = ["--system", "dbos", "--workload", "sequential", "--out", "r.json"]
    assert shared.parse_args(("dbos",), lang).store == "sqlite"


def test_restate_rows_render_and_cairn_over_restate_is_a_context_ratio(
    bench: dict[str, ModuleType],
) -> None:
    report = bench["report"]
    rows = [
        report.summarize(runner_output("sequential", wall_seconds=0.1)),  # 400 steps/s
        report.summarize(
            runner_output("concurrent", runs=64, concurrency=32, wall_seconds=0.5)
        ),  # 1,280 steps/s
        report.summarize(
            runner_output(
                "crash",
                steps=20,
                runs=2,
                run_seconds=[0.7, 0.9],
                step_latency_seconds=[],
                wall_seconds=None,
                reran_steps=[1, 1],
                finished_reran_steps=[0, 0],
                steps_before_kill=[10, 11],
            )
        ),
    ]

    def cairn(trial: int, steps_per_second: float, **shape: Any) -> dict[str, Any]:
        return {
            "system": "cairn",
            "store": "sqlite",
            "durability": "sync",
            "trial": trial,
            "steps_per_second": steps_per_second,
            "status": "ok",
            **shape,
        }

    sequential = {"workload": "sequential", "steps": 10, "concurrency": 1}
    concurrent = {"workload": "concurrent", "steps": 10, "concurrency": 32}
    rows += [cairn(t, sps, **sequential) for t, sps in ((1, 800.0), (2, 200.0), (3, 600.0))]
    rows += [cairn(1, 2560.0, **concurrent)]
    for row in rows:
        row.setdefault("job", f"{row['system']}-{row['workload']}")

    # A job that failed is a row with a status and no figures (bench/run.py).
    failed = {"system": "restate", "store": "restate", "workload": "sequential"}
    rows.append({**failed, "status": "failed (exit 1): no npm", "job": "restate-failed"})

    ratios = {r["name"]: r for r in report.ratios(rows, None)}
    over = ratios["Cairn sequential steps/s / Restate (Cairn on sqlite, sync, N=10)"]
    # Cairn's median of three trials (600) over Restate's 400: a context row.
    assert over["value"] == 1.5
    assert over["target"] == "(context)" and over["met"] is None
    assert over["detail"] == "600.0 (median of 3 trials) / 400.0 steps/s"
    in_flight = ratios["Cairn steps/s / Restate, 32 runs in flight (Cairn on sqlite, sync, N=10)"]
    assert in_flight["value"] == 2.0
    # No Cairn row at 256 in flight, no Restate row on Postgres: no ratio.
    assert not [n for n in ratios if "Restate, 256" in n or "Cairn on postgres" in n]

    markdown = report.markdown({"rows": rows, "ratios": list(ratios.values()), "meta": {}})
    assert "| restate | restate | sync | 10 | 4 | 22.5 | 30.0 | 400.0 | 2.0 |" in markdown
    assert "| restate | restate | 32 | 10 | 64 | 1,280.0 | 2.0 | 2.0 | 22.5 |" in markdown
    # Restate tells the step in flight at the kill apart, as Cairn does.
    assert "| restate | restate | sync | 20 | 2 | 1, 1 | 0, 0 | 10, 11 | 0.8 |" in markdown
    assert "- restate (restate): restate-server and the SDK service." in markdown
    assert "- restate-failed: failed (exit 1): no npm" in markdown


@pytest.mark.skipif(
    not (PEERS_PYTHON.exists() and SERVER.exists() and os.geteuid() == 0),
    reason="needs bench/peers/setup.sh's venv and restate-server, and root (a network namespace)",
)
def test_the_runner_recovers_a_run_after_a_server_kill(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "crash.json"
    argv = [str(PEERS_PYTHON), str(BENCH / "peers" / "run_restate.py"), "--system", "restate"]
    argv += ["--workload", "crash", "--steps", "6", "--runs", "1", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["store"] == "restate" and result["durability"] == "sync"
    # The kill came once step 3 had started: at least 3 steps ran before it,
    # and only the one in flight may have run again.
    assert result["steps_before_kill"][0] >= 3
    assert result["finished_reran_steps"] == [0]
    assert result["reran_steps"][0] in (0, 1)
    assert result["versions"]["restate-server"].startswith("1.7.")
    assert "only lo" in result["notes"]
    assert not (tmp_path / "crash.json.pids").exists()  # its processes were stopped
