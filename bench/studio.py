"""How fast Cairn Studio answers on a thread with a long history.

    .venv/bin/python bench/studio.py [--checkpoints 10000] [--threads 100]
        [--calls 50] [--loads 11] [--json bench/results/studio.json]

Starts `cairn serve --ui-address 127.0.0.1:0` on a fresh SQLite file (a
separate process on 127.0.0.1), writes one LangGraph thread of
`--checkpoints` checkpoints through CairnSaver (as tests/studio does) and
`--threads` more empty threads (and one of 50 checkpoints, to compare the
first page of a long history with a whole short one), then measures:

- the gateway: ListThreads (a page of 50), GetState of the long thread, and
  the first page of its GetStateHistory (limit 50), each `--calls` times as
  JSON over HTTP on one keep-alive connection, as the page calls them (after
  5 warm-up calls); and the same requests over gRPC to the same server, the
  floor the gateway adds to;
- the page: in headless Debian chromium (/usr/bin/chromium), the time from
  navigating to the thread's page to the first item of its timeline being
  visible, `--loads` times; the first load is in a fresh browser context
  (nothing cached), the others reload from about:blank with the static
  files cached. The time is taken in the page (performance.now() when a
  MutationObserver first sees the item visible), and also from this process
  (goto, then wait for the item), which adds Playwright's round trips.

It prints median and p95 in milliseconds as a markdown table and writes them
with every sample to the JSON file. The figures are for reporting only: no
test asserts a time.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.studio.harness, shared with the browser tests

import grpc  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from cairn import SyncClient  # noqa: E402
from cairn.v1 import thread_service_pb2, thread_service_pb2_grpc  # noqa: E402
from tests.studio.harness import fill_history, start_studio  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
THREAD = "bench-long-history"
SHORT_THREAD = "bench-short-history"  # the same checkpoints, 50 of them
WARMUP = 5
FIRST_ITEM = 'ol[data-testid="timeline"] > li[data-testid="checkpoint"]'
# Set in every page before its own scripts: the time (ms since navigation
# start) at which the timeline's first item is in the DOM and visible.
SEEN_SCRIPT = (
    f"const FIRST_ITEM = {json.dumps(FIRST_ITEM)};"
    + """
new MutationObserver((changes, observer) => {
  const item = document.querySelector(FIRST_ITEM);
  if (item && item.checkVisibility()) {
    window.__firstItemSeen = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true, attributes: true});
"""
)


def summary(samples: list[float]) -> dict[str, Any]:
    """Median and p95 of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "samples_ms": [round(s * 1000, 3) for s in samples],
    }


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


class Gateway:
    """JSON POSTs to the Studio's /api/, on one keep-alive connection."""

    def __init__(self, url: str) -> None:
        host_port = url.removeprefix("http://").rstrip("/")
        host, port = host_port.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        self.connection.request(
            "POST", f"/api/{method}", payload, {"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method}: HTTP {response.status} {data[:300]!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer


def page_loads(url: str, loads: int) -> tuple[list[float], list[float]]:
    """Per load of `url`: the browser's time from navigation start to the
    timeline's first item being visible (read in the page, so Playwright's
    own round trips are not in it), and the wall-clock time of the same
    (navigate, then wait for the item, from this process). The first load is
    in a fresh context, the others reload from about:blank."""
    in_page, wall = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(SEEN_SCRIPT)
            page = context.new_page()
            for _ in range(loads):
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(url)
                page.locator(FIRST_ITEM).first.wait_for(state="visible", timeout=60_000)
                wall.append(time.perf_counter() - start)
                page.wait_for_function("window.__firstItemSeen !== undefined")
                in_page.append(page.evaluate("window.__firstItemSeen") / 1000)
            assert page.locator(FIRST_ITEM).count() == 50
            context.close()
        finally:
            browser.close()
    return in_page, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=100, help="other (empty) threads")
    parser.add_argument("--calls", type=int, default=50, help="measured calls per request")
    parser.add_argument("--loads", type=int, default=11, help="page loads (the first is cold)")
    parser.add_argument(
        "--json", type=pathlib.Path, default=ROOT / "bench" / "results" / "studio.json"
    )
    args = parser.parse_args()
    if not pathlib.Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    began = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="cairn-bench-studio-") as directory:
        studio = start_studio(pathlib.Path(directory))
        try:
            fill_started = time.monotonic()
            fill_history(studio.address, THREAD, args.checkpoints)
            fill_seconds = time.monotonic() - fill_started
            fill_history(studio.address, SHORT_THREAD, 50)
            with SyncClient(studio.address) as client:
                for index in range(args.threads):
                    client.create_thread(f"bench-thread-{index:03}")
            print(
                f"{args.checkpoints} checkpoints written in {fill_seconds:.1f} s;"
                f" {args.threads} more threads",
                file=sys.stderr,
            )

            gateway = Gateway(studio.url)
            requests: dict[str, tuple[str, dict[str, Any]]] = {
                "ListThreads (page of 50)": ("ThreadService/ListThreads", {"page_size": 50}),
                "GetState": ("ThreadService/GetState", {"thread_id": THREAD}),
                "GetStateHistory (first 50)": (
                    "ThreadService/GetStateHistory",
                    {"thread_id": THREAD, "limit": 50},
                ),
                "GetStateHistory (all 50 of a short thread)": (
                    "ThreadService/GetStateHistory",
                    {"thread_id": SHORT_THREAD, "limit": 50},
                ),
            }
            assert len(gateway.call(*requests["GetStateHistory (first 50)"])["states"]) == 50
            http_rows = {
                name: summary(timed(functools.partial(gateway.call, method, body), args.calls))
                for name, (method, body) in requests.items()
            }
            gateway.connection.close()

            with grpc.insecure_channel(studio.address) as channel:
                stub = thread_service_pb2_grpc.ThreadServiceStub(channel)
                grpc_calls: dict[str, Callable[[], Any]] = {
                    "ListThreads (page of 50)": lambda: stub.ListThreads(
                        thread_service_pb2.ListThreadsRequest(page_size=50)
                    ),
                    "GetState": lambda: stub.GetState(
                        thread_service_pb2.GetStateRequest(thread_id=THREAD)
                    ),
                    "GetStateHistory (first 50)": lambda: stub.GetStateHistory(
                        thread_service_pb2.GetStateHistoryRequest(thread_id=THREAD, limit=50)
                    ),
                    "GetStateHistory (all 50 of a short thread)": lambda: stub.GetStateHistory(
                        thread_service_pb2.GetStateHistoryRequest(thread_id=SHORT_THREAD, limit=50)
                    ),
                }
                grpc_rows = {
                    name: summary(timed(call, args.calls)) for name, call in grpc_calls.items()
                }

            in_page, wall = page_loads(studio.thread_url(THREAD), args.loads)
        finally:
            studio.server.stop()

    print(f"\nCairn Studio, a thread of {args.checkpoints:,} checkpoints (ms)\n")
    print("| measured | median | p95 | n | gRPC median | gRPC p95 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in http_rows.items():
        floor = grpc_rows[name]
        print(
            f"| gateway {name} | {row['median_ms']:.2f} | {row['p95_ms']:.2f} | {row['n']}"
            f" | {floor['median_ms']:.2f} | {floor['p95_ms']:.2f} |"
        )
    warm, warm_wall = summary(in_page[1:]), summary(wall[1:])
    print(
        "| page: navigation start to the timeline's first item visible (cached)"
        f" | {warm['median_ms']:.1f} | {warm['p95_ms']:.1f} | {warm['n']} | | |"
    )
    print(f"| the same, first load in a fresh context | {in_page[0] * 1000:.1f} | | 1 | | |")
    print(
        "| the same seen from Playwright (goto, then wait for the item; cached)"
        f" | {warm_wall['median_ms']:.1f} | {warm_wall['p95_ms']:.1f} | {warm_wall['n']} | | |"
    )

    report = {
        "bench": "studio",
        "checkpoints": args.checkpoints,
        "threads": args.threads + 1,
        "calls": args.calls,
        "warmup": WARMUP,
        "fill_seconds": round(fill_seconds, 1),
        "seconds": round(time.monotonic() - began, 1),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "chromium": chromium_version(),
        },
        "gateway_http": http_rows,
        "grpc": grpc_rows,
        "page_first_item": {
            "cold_ms": round(in_page[0] * 1000, 1),
            "warm": warm,
            "cold_wall_ms": round(wall[0] * 1000, 1),
            "warm_wall": warm_wall,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def chromium_version() -> str:
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
