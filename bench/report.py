"""Tables and plots from the runners' JSON files: bench/run.py calls `write`.

    .venv/bin/python bench/report.py bench/results/tmp/run     # redo them from kept raw files

`write` turns each runner's output (bench/cairn_runner.py, bench/peers/*) into
one summary row, computes the ratios that issue 7 sets targets for, and writes
into the results folder:

- results.md: the tables (markdown), with the machine, versions and command;
- results.json: the same rows, ratios and metadata (no per-run samples);
- bench.png: the plots (matplotlib, from the `bench` extra; skipped without it).

Figures: steps/s is steps x runs / wall time of the measured runs; run times
and step latencies are nearest-rank percentiles (with 20 runs, p99 is the
slowest run); a step's latency is the time between consecutive step starts
within a run, as the system's own process saw them.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import statistics
import sys
from collections.abc import Iterable
from typing import Any

MiB = 1024 * 1024
SYSTEM_ORDER = (
    "cairn",
    "cairn-graph",
    "langgraph-functional",
    "langgraph-graph",
    "dbos",
    "restate",
)
# Stores in the tables' order; a system's own store (Restate's) comes last.
STORE_ORDER = ("sqlite", "postgres")
TARGETS = {
    "floor": 1.3,
    "crash": 0,
    "history": 1.2,
}
THROUGHPUT_TARGETS = {
    # (store, runs in flight): Cairn's steps/s over LangGraph functional's,
    # paired (issues 7 and 21).
    ("sqlite", 1): 2.0,
    ("sqlite", 32): 3.0,
    ("sqlite", 256): 5.0,
    ("postgres", 1): 1.5,
    ("postgres", 32): 3.0,
    ("postgres", 256): 4.0,
}


def percentile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """One table row from one runner's JSON output."""
    runs = result.get("run_seconds") or []
    steps = result.get("step_latency_seconds") or []
    wall = result.get("wall_seconds")
    row: dict[str, Any] = {
        k: result.get(k)
        for k in ("system", "store", "workload", "steps", "runs", "concurrency", "durability")
    }
    if row["system"] == "dbos":
        row["durability"] = "sync"  # DBOS has one mode: a step is stored before the next
    row["median_run_ms"] = _ms(statistics.median(runs)) if runs else None
    row["p99_run_ms"] = _ms(percentile(runs, 0.99))
    row["p50_step_ms"] = _ms(percentile(steps, 0.50))
    row["p99_step_ms"] = _ms(percentile(steps, 0.99))
    throughput = result["workload"] in ("sequential", "concurrent") and wall
    row["steps_per_second"] = (
        round(result["steps"] * result["runs"] / wall, 1) if throughput else None
    )
    if result["workload"] == "crash":
        row["reran_steps"] = result.get("reran_steps")
        row["finished_reran_steps"] = result.get("finished_reran_steps")
        row["steps_before_kill"] = result.get("steps_before_kill")
        row["lost_runs"] = len(result.get("lost_runs") or [])
        row["recovery_median_s"] = round(statistics.median(runs), 3) if runs else None
    if result["workload"] == "memory":
        for key in ("rss_baseline_bytes", "rss_bytes", "rss_in_flight_bytes"):
            value = result.get(key)
            row[key.replace("_bytes", "_mib")] = round(value / MiB, 1) if value else None
    row["cpu_seconds"] = result.get("cpu_seconds")
    row["versions"] = result.get("versions", {})
    row["notes"] = result.get("notes", "")
    row["status"] = "ok"
    return row


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 2)


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    found = _all(rows, **match)
    return found[0] if found else None


def _all(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [
        row
        for row in rows
        if row.get("status") == "ok" and all(row.get(k) == v for k, v in match.items())
    ]


def ratios(
    rows: list[dict[str, Any]],
    history: dict[str, Any] | None,
    floor: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The ratios issues 7 and 21 set targets for, from rows of this same run."""
    out: list[dict[str, Any]] = []
    out.extend(_over_floor(rows, floor))

    def throughput(name: str, store: str, base: dict[str, Any], target: float | None) -> None:
        # Paired by trial: each pair ran back to back (bench/run.py's plan).
        peer_rows = _all(rows, system="langgraph-functional", store=store, **base)
        peers = {r.get("trial", 1): r for r in peer_rows}
        pairs = [
            (r, peers[r.get("trial", 1)])
            for r in _all(rows, system="cairn", store=store, durability="sync", **base)
            if r.get("trial", 1) in peers and peers[r.get("trial", 1)]["steps_per_second"]
        ]
        if not pairs and target is None:
            return
        each = [c["steps_per_second"] / p["steps_per_second"] for c, p in pairs]
        value = round(statistics.median(each), 2) if each else None
        detail = ", ".join(
            f"{_fmt(c['steps_per_second'])} / {_fmt(p['steps_per_second'])}" for c, p in pairs
        )
        if len(pairs) > 1:
            listed = ", ".join(f"{r:.2f}" for r in each)
            detail = f"median of {len(pairs)} paired trials ({listed}): {detail}"
        out.append(
            {
                "name": name,
                "value": value,
                "target": "(context)" if target is None else f">= {target:g}x",
                "met": None if value is None or target is None else value >= target,
                "detail": f"{detail or '-'} steps/s",
            }
        )

    for store in ("sqlite", "postgres"):
        for n in sorted({r["steps"] for r in _all(rows, workload="sequential")}):
            throughput(
                f"Cairn sequential steps/s / LangGraph functional ({store}, sync, N={n})",
                store,
                {"workload": "sequential", "steps": n, "concurrency": 1},
                THROUGHPUT_TARGETS[store, 1],
            )
        for c in (32, 256):
            throughput(
                f"Cairn steps/s / LangGraph functional, {c} runs in flight ({store}, sync, N=10)",
                store,
                {"workload": "concurrent", "steps": 10, "concurrency": c},
                THROUGHPUT_TARGETS[store, c],
            )
    out.extend(_over_restate(rows))
    for store in ("sqlite", "postgres"):
        crash = _find(rows, system="cairn", store=store, workload="crash", durability="sync")
        if crash is None:
            continue
        finished = sum(crash["finished_reran_steps"] or [])
        out.append(
            {
                "name": f"Finished steps re-run after a server SIGKILL (Cairn, {store}, sync)",
                "value": finished,
                "target": "0",
                "met": finished == 0,
                "detail": f"{len(crash['reran_steps'] or [])} trials; with the step in flight "
                f"at the kill: {crash['reran_steps']} per trial",
            }
        )
    lengths = sorted({h["history"] for h in (history or {}).get("rows", [])})
    for store, figures in ((history or {}).get("ratios") or {}).items():
        value = round(figures["commit"], 2)
        low, high = f"{lengths[0]:,}", f"{lengths[-1]:,}"
        out.append(
            {
                "name": f"Step cost at {high} prior checkpoints / at {low} (Cairn store, {store})",
                "value": value,
                "target": f"<= {TARGETS['history']:g}x",
                "met": value <= TARGETS["history"],
                "detail": f"store commit p50; bytes written {figures['written']:.2f}x, "
                f"latest-checkpoint read {figures['latest']:.2f}x",
            }
        )
    return out


def _over_restate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cairn's steps/s over Restate's, for context (no target): sequential at
    each N and 32 and 256 runs in flight, per Cairn store. Restate runs once,
    after everything else, so these are not paired: each side is its median
    over its trials."""
    out: list[dict[str, Any]] = []
    shapes = [("sequential", n, 1) for n in sorted(_steps(rows, "restate", "sequential"))]
    shapes += [("concurrent", 10, c) for c in (32, 256)]
    for store in ("sqlite", "postgres"):
        for workload, n, c in shapes:
            shape = {"workload": workload, "steps": n, "concurrency": c}
            cairn = _throughputs(
                _all(rows, system="cairn", store=store, durability="sync", **shape)
            )
            restate = _throughputs(_all(rows, system="restate", **shape))
            if not cairn or not restate:
                continue
            mine, theirs = statistics.median(cairn), statistics.median(restate)
            where = f"(Cairn on {store}, sync, N={n})"
            if workload == "sequential":
                name = f"Cairn sequential steps/s / Restate {where}"
            else:
                name = f"Cairn steps/s / Restate, {c} runs in flight {where}"
            trials = f" (median of {len(cairn)} trials)" if len(cairn) > 1 else ""
            out.append(
                {
                    "name": name,
                    "value": round(mine / theirs, 2),
                    "target": "(context)",
                    "met": None,
                    "detail": f"{_fmt(mine)}{trials} / {_fmt(theirs)} steps/s",
                }
            )
    return out


def _throughputs(rows: list[dict[str, Any]]) -> list[float]:
    return [r["steps_per_second"] for r in rows if r.get("steps_per_second")]


def _steps(rows: list[dict[str, Any]], system: str, workload: str) -> set[int]:
    return {r["steps"] for r in _all(rows, system=system, workload=workload)}


def _over_floor(rows: list[dict[str, Any]], floor: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Cairn's sequential sync step (p50, the median over trials) over the
    floor measured in this run (bench/floor.py: a bare gRPC round trip plus
    one step's commit)."""
    out: list[dict[str, Any]] = []
    for store in ("sqlite", "postgres"):
        base = (floor or {}).get(f"floor_{store}_tcp_p50_us")
        if not base:
            continue
        runs = [
            r
            for r in _all(
                rows, system="cairn", store=store, workload="sequential", durability="sync"
            )
            if r.get("status") == "ok" and r.get("p50_step_ms")
        ]
        for n in sorted({r["steps"] for r in runs}):
            steps = [r["p50_step_ms"] for r in runs if r["steps"] == n]
            each = [step * 1e3 / base for step in steps]
            target = TARGETS["floor"] if store == "sqlite" else None
            value = round(statistics.median(each), 2)
            listed = ", ".join(f"{step:.3f}" for step in steps)
            trials = f"{len(steps)} trial{'s' if len(steps) > 1 else ''}"
            out.append(
                {
                    "name": f"Cairn sequential step / floor ({store}, sync, N={n})",
                    "value": value,
                    "target": "(context)" if target is None else f"<= {target:g}x",
                    "met": None if target is None else value <= target,
                    "detail": f"step p50 {listed} ms ({trials}); floor {base / 1e3:.3f} ms",
                }
            )
    return out


def _floor(floor: dict[str, Any]) -> list[str]:
    header = ["part", "p50 us", "mean us", "p90 us", "statements"]
    body = []
    for key, label in (
        ("echo_tcp", "gRPC round trip, TCP"),
        ("echo_unix", "gRPC round trip, Unix socket"),
        ("commit_sqlite", "step commit, SQLite"),
        ("commit_postgres", "step commit, Postgres"),
    ):
        part = floor.get(key)
        if part:
            figures = [part["p50_us"], part["mean_us"], part["p90_us"]]
            body.append([label, *figures, part.get("statements_per_commit")])
    return _table(header, body)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in body]
    return lines


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    system = row.get("system", "")
    rank = SYSTEM_ORDER.index(system) if system in SYSTEM_ORDER else len(SYSTEM_ORDER)
    durability = {"sync": 0, "async": 1, "exit": 2}.get(row.get("durability") or "", 3)
    store = row.get("store")
    place = STORE_ORDER.index(store) if store in STORE_ORDER else len(STORE_ORDER)
    return (place, row.get("steps") or 0, rank, durability, row.get("trial", 1))


def _cells(row: dict[str, Any], *keys: str) -> list[Any]:
    cells = [row.get(key) for key in keys]
    if keys[0] == "system" and row.get("trial", 1) > 1:
        cells[0] = f"{cells[0]} (trial {row['trial']})"
    return cells


def _median_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per measurement: of repeated trials, the one with the median
    throughput."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shape = ("system", "store", "workload", "steps", "concurrency", "durability")
        groups.setdefault(tuple(row.get(k) for k in shape), []).append(row)
    picked = []
    for group in groups.values():
        group.sort(key=lambda r: r.get("steps_per_second") or 0)
        picked.append(group[(len(group) - 1) // 2])
    return picked


def _sequential(rows: list[dict[str, Any]]) -> list[str]:
    header = ["system", "store", "durability", "N", "runs"]
    header += ["median ms/run", "p99 ms/run", "steps/s", "p99 ms/step"]
    keys = ("system", "store", "durability", "steps", "runs")
    keys += ("median_run_ms", "p99_run_ms", "steps_per_second", "p99_step_ms")
    return _table(header, [_cells(r, *keys) for r in rows if r["workload"] == "sequential"])


def _concurrent(rows: list[dict[str, Any]]) -> list[str]:
    header = ["system", "store", "C", "N", "runs"]
    header += ["steps/s", "p50 ms/step", "p99 ms/step", "median ms/run"]
    keys = ("system", "store", "concurrency", "steps", "runs")
    keys += ("steps_per_second", "p50_step_ms", "p99_step_ms", "median_run_ms")
    picked = sorted(
        (r for r in rows if r["workload"] == "concurrent"),
        key=lambda r: (r["concurrency"], *_order(r)),
    )
    return _table(header, [_cells(r, *keys) for r in picked])


def _crash(rows: list[dict[str, Any]]) -> list[str]:
    header = ["system", "store", "durability", "N", "trials", "steps re-run per trial"]
    header += ["of which had finished", "steps run before the kill", "recovery s (median)"]
    body = []
    for r in rows:
        if r["workload"] != "crash":
            continue
        reran = _list(r.get("reran_steps"))
        if r.get("lost_runs"):
            reran = f"runs lost: {r['lost_runs']}"
        # Only the runners that tell the step in flight apart (Cairn, Restate).
        finished = r.get("finished_reran_steps")
        finished = None if finished is None else _list(finished)
        before = _list(r.get("steps_before_kill"))
        cells = _cells(r, "system", "store", "durability", "steps", "runs")
        body.append([*cells, reran, finished, before, r.get("recovery_median_s")])
    return _table(header, body)


def _memory(rows: list[dict[str, Any]]) -> list[str]:
    header = ["system", "store", "N", "after warm-up MiB", "runs waiting on an interrupt"]
    header += ["RSS MiB", "runs in flight", "RSS MiB"]
    body = []
    for r in rows:
        if r["workload"] != "memory":
            continue
        in_flight = r.get("rss_in_flight_mib")
        cells = _cells(r, "system", "store", "steps", "rss_baseline_mib", "runs", "rss_mib")
        body.append([*cells, r["concurrency"] if in_flight else None, in_flight])
    return _table(header, body)


def _cpu(rows: list[dict[str, Any]]) -> list[str]:
    """Where Cairn's steps spend CPU: each process's CPU time over the
    measured runs (after warm-up) per step, run starts and ends included,
    beside the wall time per step (on 2 cores, C runs in flight)."""
    parts = ("server", "worker", "client", "postgres")
    header = ["store", "C", "N", "trial", *(f"{p} us/step" for p in parts)]
    header += ["CPU us/step", "wall us/step"]
    body = []
    for r in rows:
        cpu = r.get("cpu_seconds")
        if r["system"] != "cairn" or r["durability"] != "sync" or not cpu:
            continue
        if r["workload"] not in ("sequential", "concurrent") or not r["steps_per_second"]:
            continue
        steps = r["steps"] * r["runs"]
        each = [round(cpu[p] / steps * 1e6) if p in cpu else None for p in parts]
        total = round(sum(cpu.values()) / steps * 1e6)
        wall = round(1e6 / r["steps_per_second"])
        where = [r["store"], r["concurrency"], r["steps"], r.get("trial", 1)]
        body.append([*where, *each, total, wall])
    body.sort(key=lambda cells: tuple(cells[:4]))
    return _table(header, body)


def _history(history: dict[str, Any]) -> list[str]:
    header = ["store", "H", "commit p50 ms", "commit p90 ms", "read latest p50 ms"]
    header += ["bytes written/step (p50)", "bytes stored/step"]
    body = []
    for h in history["rows"]:
        ms = [h[f"{k}_seconds"] * 1e3 for k in ("commit_p50", "commit_p90", "read_latest_p50")]
        sizes = [round(h["written_p50_bytes"]), round(h["stored_bytes"])]
        body.append([h["store"], h["history"], *ms, *sizes])
    return _table(header, body)


def _ratios(ratios: list[dict[str, Any]]) -> list[str]:
    met = {True: "yes", False: "**no**"}
    body = [[r["name"], r["value"], r["target"], met.get(r["met"]), r["detail"]] for r in ratios]
    return _table(["ratio", "value", "target", "met", "from"], body)


def markdown(report: dict[str, Any], *, notes: bool = True) -> str:
    rows = report["rows"]
    ok = sorted((r for r in rows if r["status"] == "ok"), key=_order)
    lines = ["### Ratios (computed in this run)", "", *_ratios(report["ratios"])]
    lines += ["", "### Sequential: runs one after the other", "", *_sequential(ok)]
    lines += ["", "### Concurrent: C runs in flight at once (sync)", "", *_concurrent(ok)]
    lines += ["", "### Crash: SIGKILL once step N/2 has run, then recover", "", *_crash(ok)]
    lines += ["", "### Memory: RSS of the process that holds the runs", "", *_memory(ok)]
    title = "### Where a Cairn step's CPU goes: each process's CPU time per step"
    lines += ["", title, "", *_cpu(ok)]
    if report.get("history"):
        title = "### History growth: one step's store commit on a thread with H prior checkpoints"
        lines += ["", title, "", *_history(report["history"])]
    if report.get("floor"):
        title = "### The floor under one step: a bare round trip and one step's commit"
        lines += ["", title, "", *_floor(report["floor"])]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "### Not measured", ""]
        lines += [f"- {r['job']}: {r['status']}" for r in failed]
    if notes:
        lines += ["", "Notes from the runners:", ""] + [f"- {n}" for n in _notes(ok)]
    else:
        lines += ["", "The runners' notes are in bench/results/results.md."]
    lines += ["", *_meta_lines(report["meta"])]
    return "\n".join(lines) + "\n"


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    """Each runner's notes once per system and store, sentence by sentence."""
    sentences: dict[str, list[str]] = {}
    for row in rows:
        said = sentences.setdefault(f"{row['system']} ({row['store']})", [])
        for sentence in (row.get("notes") or "").split(". "):
            sentence = sentence.strip().rstrip(".")
            if sentence and sentence not in said:
                said.append(sentence)
    return [f"{who}: {'. '.join(said)}." for who, said in sorted(sentences.items()) if said]


def _list(values: Any) -> str:
    return "-" if values is None else ", ".join(str(v) for v in values)


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(meta.get("versions", {}).items()))
    return [
        f"Machine: {meta.get('machine')}. Load average before/after: "
        f"{meta.get('load_before')} / {meta.get('load_after')}.",
        f"Versions: {versions}.",
        f"Code: {meta.get('git')}. Command: `{meta.get('command')}`, "
        f"{meta.get('wall_seconds', 0):.0f} s in all.",
    ]


def plot(report: dict[str, Any], path: pathlib.Path) -> bool:
    """Draw bench.png; False when matplotlib is missing (the `bench` extra)."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _median_trials([r for r in report["rows"] if r["status"] == "ok"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    def bars(ax: Any, picked: list[dict[str, Any]], value: str, label: Any, title: str) -> None:
        picked = [r for r in picked if r.get(value) is not None]
        names = [label(r) for r in picked]
        values = [r[value] for r in picked]
        colors = ["#2a7ab0" if r["system"].startswith("cairn") else "#b0b0b0" for r in picked]
        ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize=7)

    sequential = sorted(
        (r for r in rows if r["workload"] == "sequential" and r["durability"] == "sync"),
        key=lambda r: (r["steps"], r["store"] != "sqlite", *_order(r)),
    )
    bars(
        axes[0][0],
        sequential,
        "steps_per_second",
        lambda r: f"{r['system']} {r['store']} N={r['steps']}",
        "Sequential runs, sync: steps/s (higher is better)",
    )
    concurrent = sorted(
        (r for r in rows if r["workload"] == "concurrent"),
        key=lambda r: (r["concurrency"], r["store"] != "sqlite", *_order(r)),
    )
    bars(
        axes[0][1],
        concurrent,
        "steps_per_second",
        lambda r: f"{r['system']} {r['store']} C={r['concurrency']}",
        "Concurrent runs (N=10), sync: steps/s (higher is better)",
    )
    bars(
        axes[1][0],
        concurrent,
        "p99_step_ms",
        lambda r: f"{r['system']} {r['store']} C={r['concurrency']}",
        "Concurrent runs: p99 ms between consecutive step starts in a run\n"
        "(leaves out the wait before a run's first step and after its last)",
    )
    axes[1][0].set_xscale("log")
    memory = sorted((r for r in rows if r["workload"] == "memory"), key=_order)
    ax = axes[1][1]
    labels = [f"{r['system']} {r['store']}" for r in memory]
    for offset, (key, name) in enumerate(
        (
            ("rss_baseline_mib", "after warm-up"),
            ("rss_mib", "runs waiting on interrupts"),
            ("rss_in_flight_mib", "runs in flight"),
        )
    ):
        values = [r.get(key) or 0 for r in memory]
        ax.barh([i + offset * 0.27 for i in range(len(memory))], values, height=0.27, label=name)
    ax.set_yticks([i + 0.27 for i in range(len(memory))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Memory: RSS MiB of the process holding the runs", fontsize=10)
    meta = report["meta"]
    fig.suptitle(f"Cairn and peers on {meta.get('machine')} ({meta.get('git')})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(
    folder: pathlib.Path,
    rows: list[dict[str, Any]],
    history: dict[str, Any] | None,
    meta: dict[str, Any],
    *,
    floor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results.md, results.json and bench.png into `folder`."""
    report = {
        "meta": meta,
        "ratios": ratios(rows, history, floor),
        "rows": rows,
        "history": history,
        "floor": floor,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (folder / "results.md").write_text(markdown(report))
    if not plot(report, folder / "bench.png"):
        print("no plots: matplotlib is missing (pip install -e '.[bench]')", file=sys.stderr)
    return report


def main() -> int:
    """Rebuild the tables and plots in bench/results from the runners' JSON
    files that bench/run.py kept (bench/results/tmp/run)."""
    raw = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/tmp/run")
    rows = []
    for path in sorted(raw.glob("*.json")):
        if path.name in ("history.json", "floor.json"):
            continue
        if path.name == "results.json":
            continue
        row = summarize(json.loads(path.read_text()))
        row["job"] = path.stem
        # A repeated measurement's file name ends in -t<trial> (run.py's Job.name).
        trial = re.search(r"-t(\d+)$", path.stem)
        row["trial"] = int(trial.group(1)) if trial else 1
        rows.append(row)
    history_path = raw / "history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else None
    floor_path = raw / "floor.json"
    floor = json.loads(floor_path.read_text()) if floor_path.exists() else None
    folder = raw if raw.name == "quick" else raw.parent.parent  # where bench/run.py wrote
    meta_path = folder / "results.json"
    meta = json.loads(meta_path.read_text())["meta"] if meta_path.exists() else {}
    report = write(folder, rows, history, meta, floor=floor)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
