"""What metrics and tracing cost: bench/steps.py's sequential workload (an
entrypoint calling a trivial task N times, sync durability, one run after
the other) with observability off, with Prometheus metrics on, and with
OpenTelemetry tracing on, in paired trials (one of each per trial, in
turn), on the same machine in the same run.

    .venv/bin/python bench/observability.py [--trials 5] [--runs 20] [--steps 100]

- off: `cairn serve` without --metrics-address, and OpenTelemetry cannot be
  imported in any process (as without `cairn[otel]`);
- metrics: `cairn serve --metrics-address 127.0.0.1:<port>`, scraped once
  per trial so that the collectors run;
- tracing: server, worker and client each with an OpenTelemetry SDK
  TracerProvider and a batch processor whose exporter drops the spans (the
  cost of making and batching spans, without a collector's network).

Each mode starts its own server (fresh SQLite file), worker and client
processes through this script's own entry points, so each process is set up
before Cairn is imported. Prints steps/s per trial and mode, the medians and
the median ratio to `off` over the paired trials.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

HERE = pathlib.Path(__file__).resolve().parent
MODES = ("off", "metrics", "tracing")


class _NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(name)
        return None


def set_up(mode: str) -> None:
    """Before Cairn is imported: block OpenTelemetry, or install a provider."""
    if mode != "tracing":
        sys.meta_path.insert(0, _NoOpenTelemetry())
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Dropped(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


def serve(address: str, store: str, metrics_address: str) -> None:
    from cairn_server.cli import main

    args = ["serve", "--address", address, "--store", store, "--log-level", "warning"]
    if metrics_address:
        args += ["--metrics-address", metrics_address]
    sys.exit(main(args))


def work(address: str) -> None:
    sys.path.insert(0, str(HERE))
    import steps

    from cairn import Worker

    print("worker ready", flush=True)
    Worker(address, functions=[steps.step, steps.chain]).run_sync()


def measure(address: str, runs: int, n: int) -> None:
    from cairn import Client

    async def main() -> float:
        async with Client(address) as client:
            await client.invoke("chain", 3, thread_id="warm-up", durability="sync")
            started = time.perf_counter()
            for i in range(runs):
                run = await client.invoke("chain", n, thread_id=f"b-{i}", durability="sync")
                assert run.output == n, run
            return runs * n / (time.perf_counter() - started)

    print(f"steps/s {asyncio.run(main()):.1f}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def started(args: list[str], needle: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if needle in line:
            return process
    raise RuntimeError(f"{args[0]} ended before printing {needle!r}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def trial(mode: str, runs: int, n: int) -> float:
    address = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}" if mode == "metrics" else ""
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{folder}/bench.db"
        server = started(["--serve", mode, address, store, metrics], "cairn serving on")
        worker = None
        try:
            worker = started(["--work", mode, address], "worker ready")
            client = subprocess.run(
                [sys.executable, __file__, "--measure", mode, address, str(runs), str(n)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            if metrics:
                with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as page:
                    assert b"cairn_runs_started_total" in page.read()
            return float(client.stdout.split()[-1])
        finally:
            for process in (worker, server):
                if process is not None:
                    stop(process)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] in ("--serve", "--work", "--measure"):
        role, mode, *rest = sys.argv[1:]
        set_up(mode)
        if role == "--serve":
            serve(*rest)
        elif role == "--work":
            work(*rest)
        else:
            measure(rest[0], int(rest[1]), int(rest[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for number in range(args.trials):
        for mode in MODES:
            results[mode].append(trial(mode, args.runs, args.steps))
        print(
            f"trial {number + 1}: "
            + ", ".join(f"{mode} {results[mode][-1]:.0f}" for mode in MODES)
            + " steps/s",
            flush=True,
        )
    off = results["off"]
    for mode in MODES:
        ratios = [value / base for value, base in zip(results[mode], off, strict=True)]
        print(
            f"{mode:<8} median {statistics.median(results[mode]):.0f} steps/s,"
            f" median paired ratio to off {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
