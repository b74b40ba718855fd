"""bench/run.py --quick for Cairn alone: the harness runs every workload and
writes well-formed tables. Nothing here is timed; the figures are not checked,
only that they are there."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_quick_run_writes_the_tables_and_the_plot(tmp_path: pathlib.Path) -> None:
    options = ["--quick", "--systems", "cairn,cairn-graph", "--results", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "tmp" / "quick"
    report = json.loads((folder / "results.json").read_text())

    rows = report["rows"]
    assert {row["job"]: row["status"] for row in rows} == {row["job"]: "ok" for row in rows}
    assert {(row["system"], row["workload"]) for row in rows} == {
        ("cairn", "sequential"),
        ("cairn-graph", "sequential"),
        ("cairn", "concurrent"),
        ("cairn", "crash"),
        ("cairn", "memory"),
    }
    for row in rows:
        if row["workload"] in ("sequential", "concurrent"):
            assert row["steps_per_second"] > 0 and row["p99_step_ms"] > 0
    crash = next(row for row in rows if row["workload"] == "crash")
    # sync: every step before the one in flight at the kill was recorded.
    assert crash["finished_reran_steps"] == [0]
    memory = next(row for row in rows if row["workload"] == "memory")
    assert memory["rss_mib"] > 0 and memory["rss_in_flight_mib"] > 0
    assert [h["history"] for h in report["history"]["rows"]] == [10, 1000]
    assert report["meta"]["machine"] and report["meta"]["versions"]["cairn"]

    markdown = (folder / "results.md").read_text()
    assert "| cairn | sqlite | sync | 4 | 3 |" in markdown
    assert "### Crash" in markdown and "### History growth" in markdown
    if importlib.util.find_spec("matplotlib") is not None:
        assert (folder / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
