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
    floor = report["floor"]
    assert floor["echo_tcp"]["p50_us"] > 0 and floor["commit_sqlite"]["p50_us"] > 0
    [over] = [r for r in report["ratios"] if r["name"].startswith("Cairn sequential step / floor")]
    assert over["value"] > 0 and over["target"] == "<= 1.3x"
    assert report["meta"]["machine"] and report["meta"]["versions"]["cairn"]

    markdown = (folder / "results.md").read_text()
    assert "| cairn | sqlite | sync | 4 | 3 |" in markdown
    assert "### Crash" in markdown and "### History growth" in markdown
    assert "| gRPC round trip, TCP |" in markdown and "| step commit, SQLite |" in markdown
    if importlib.util.find_spec("matplotlib") is not None:
        assert (folder / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_throughput_ratio_is_the_median_of_its_paired_trials() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    shape = {"store": "sqlite", "workload": "sequential", "steps": 10, "concurrency": 1}

    def row(system: str, trial: int, steps_per_second: float) -> dict[str, object]:
        return {
            **shape,
            "system": system,
            "durability": "sync",
            "trial": trial,
            "steps_per_second": steps_per_second,
            "status": "ok",
        }

    # Trial 2 ran while the machine was slow for both: pairing keeps that
    # out of the ratio (the medians of each side alone would give 700/350).
    rows = [
        row("cairn", 1, 800.0),
        row("langgraph-functional", 1, 400.0),
        row("cairn", 2, 300.0),
        row("langgraph-functional", 2, 100.0),
        row("cairn", 3, 700.0),
        row("langgraph-functional", 3, 500.0),
    ]
    named = [r for r in report.ratios(rows, None) if "sequential" in r["name"]]
    (ratio,) = [r for r in named if "(sqlite" in r["name"]]
    assert all(r["value"] is None for r in named if r is not ratio)  # not measured
    assert ratio["value"] == 2.0  # the paired ratios are 2.0, 3.0 and 1.4
    assert ratio["met"] is True
    assert "median of 3 paired trials (2.00, 3.00, 1.40)" in ratio["detail"]


def test_the_cpu_table_divides_each_process_cpu_time_by_the_steps_measured() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    row = {
        "system": "cairn",
        "store": "postgres",
        "workload": "concurrent",
        "durability": "sync",
        "steps": 10,
        "runs": 200,
        "concurrency": 32,
        "steps_per_second": 1000.0,
        "cpu_seconds": {"server": 0.8, "worker": 0.6, "client": 0.1, "postgres": 0.5},
        "status": "ok",
    }
    peer = {**row, "system": "langgraph-functional"}
    header, _, line = report._cpu([row, peer])
    assert "server us/step" in header and "postgres us/step" in header
    # 2,000 steps: 400 + 300 + 50 + 250 us of CPU each, 1 ms apart.
    assert line == "| postgres | 32 | 10 | 1 | 400 | 300 | 50 | 250 | 1,000 | 1,000 |"
