"""Restate peer runner: a Restate service handler calling a trivial `ctx.run`
step N times, served by the Python SDK to restate-server (the npm package in
bench/.restate), driven through Restate's HTTP ingress.

    bench/.venv-peers/bin/python bench/peers/run_restate.py \\
        --system restate --workload sequential --steps 10 --runs 20 --out r.json

The CLI and the JSON it writes are those of bench/peers/__init__.py, with
--store restate (its only store: the server's own log and partition store,
RocksDB in a fresh data directory) and the workloads sequential, concurrent
and crash.

Three processes, as Cairn's server, worker and client:

- restate-server (Rust), with its data directory in a temporary folder and
  telemetry off, listening on 127.0.0.1 only;
- the SDK's service, this file with --serve-sdk: hypercorn serving the SDK's
  ASGI app (HTTP/2 cleartext, which restate-server speaks to deployments);
  the runner registers it with the admin API;
- this process, the client: one httpx.AsyncClient calling the ingress,
  `POST /Bench/chain`, which answers with the handler's output (HTTP/1.1
  keep-alive for sequential runs, one HTTP/2 connection for concurrent ones).

The server's telemetry is off in its configuration, and it cannot reach any
network anyway: before anything else this runner moves itself into a network
namespace of its own (unshare(CLONE_NEWNET), root needed) with only loopback
up, and every process it starts inherits it. Each process is stopped by its
PID at the end, also on errors and on SIGTERM; their PIDs are in `<out>.pids`
while they run, and each gets SIGKILL should this process die
(PR_SET_PDEATHSIG).

Workloads (each run a new invocation; --warmup unmeasured runs first):

- sequential / concurrent: as every runner's. `step_latency_seconds` is the
  time between consecutive step starts within a run, as the SDK service's
  clock saw them (perf_counter, written out when it stops).
- crash: per trial, each step appends "<run> <index>" to a file as it starts;
  once step N/2 (1-based) has, restate-server gets SIGKILL and is started
  again on the same data directory; the invocation (sent with /send, so its
  id is known) recovers by itself: the server invokes the service again,
  which replays the journal. `reran_steps` counts the steps that had run
  before the kill and ran again; `finished_reran_steps` leaves out the last
  of them, the step in flight at the kill. `run_seconds`: from the kill to
  the output, restart and Restate's retry delay included.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import fcntl
import itertools
import json
import os
import pathlib
import platform
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import restate
from _shared import (
    Result,
    measure_concurrent,
    measure_sequential,
    parse_args,
    run_id,
    scratch_dir,
    versions,
)

BENCH = pathlib.Path(__file__).resolve().parents[1]
SYSTEMS = ("restate",)
SERVICE = "Bench"
TIMEOUT = 120.0  # the longest any single wait may take
# Fixed ports: the runner's network namespace is its own, so nothing else
# can hold them, and a restarted server keeps its addresses.
INGRESS_PORT, ADMIN_PORT, NODE_PORT, SDK_PORT = 8080, 9070, 5122, 9080

# --- the SDK service's side (this file with --serve-sdk) ------------------------------------

STARTS: dict[str, list[float]] = {}  # run -> perf_counter() at each step's start
LOG: pathlib.Path | None = None  # crash: each step appends "<run> <index>"


async def step(index: int, run: str) -> dict[str, Any]:
    """The trivial step: journaled by ctx.run, like a LangGraph @task call."""
    if not run.startswith("warmup"):
        STARTS.setdefault(run, []).append(time.perf_counter())
    if LOG is not None:
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{run} {index}\n".encode())
        finally:
            os.close(fd)
    return {"index": index, "ok": True}


SERVICE_DEFINITION = restate.Service(SERVICE)


@SERVICE_DEFINITION.handler("chain")
async def chain(ctx: restate.Context, inputs: dict[str, Any]) -> dict[str, Any]:
    done = 0
    for index in range(inputs["n"]):
        # An async action runs on the handler's event loop (a sync one would
        # go through a thread pool); its result is journaled before the
        # awaited future resolves.
        result = await ctx.run_typed("step", step, restate.RunOptions(), index, inputs["run"])
        done += result["ok"]
    return {"steps": done}


async def serve_sdk(port: int, log: pathlib.Path | None) -> None:
    """hypercorn serving the SDK's app on 127.0.0.1 until SIGTERM."""
    global LOG
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from restate.server import install_shutdown_hook

    LOG = log
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.loglevel = "ERROR"  # not its notice that the SDK's app has no ASGI lifespan
    config.graceful_timeout = 2.0
    config.h2_max_concurrent_streams = 2**31 - 1
    config.keep_alive_timeout = 3600
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The SDK's app keeps one SIGTERM handler per loop and runs the hooks
    # registered with it: a handler of our own would be replaced.
    install_shutdown_hook(loop, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    app = restate.app(services=[SERVICE_DEFINITION])
    await serve(app, config, mode="asgi", shutdown_trigger=stop.wait)


# --- isolation --------------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True)


def private_network() -> list[str]:
    """Moves this process into a new network namespace and brings its
    loopback up; returns the interfaces it sees (only "lo")."""
    if LIBC.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        hint = " (needs root, or run it under `unshare -rn`)" if code == errno.EPERM else ""
        raise SystemExit(f"unshare(CLONE_NEWNET) failed: {os.strerror(code)}{hint}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        raise SystemExit(f"the new network namespace has {names}, expected only lo")
    return names


def die_with_parent() -> None:
    """In a child before exec: SIGKILL when the runner dies, however it dies."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# --- processes --------------------------------------------------------------------------------


def server_binary() -> pathlib.Path:
    """restate-server from the npm package's platform binary (bench/peers/setup.sh)."""
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    package = f"restate-server-{sys.platform}-{arch}"
    path = BENCH / ".restate" / "node_modules" / "@restatedev" / package / "bin" / "restate-server"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run bash bench/peers/setup.sh (it needs npm)")
    return path


def server_version() -> str:
    out = subprocess.run(
        [str(server_binary()), "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()[-1]


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_until(check: Callable[[], bool], what: str, alive: Callable[[], bool]) -> None:
    """Polls `check` (an HTTP or TCP probe) every 20 ms until it holds, the
    process it waits on has exited, or TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if not alive():
            raise RuntimeError(f"exited before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {TIMEOUT:.0f} s")
        time.sleep(0.02)


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


SERVER_CONFIG = """\
# restate-server for bench/peers/run_restate.py: defaults, but for where it
# keeps its data, its addresses and telemetry.
node-name = "bench"
base-dir = "{base}"
disable-telemetry = true
listen-mode = "tcp"
bind-address = "127.0.0.1:{node}"
advertised-address = "http://127.0.0.1:{node}/"
log-filter = "warn"
log-disable-ansi-codes = true

[admin]
bind-address = "127.0.0.1:{admin}"
disable-web-ui = true

[ingress]
bind-address = "127.0.0.1:{ingress}"
"""


class Stack:
    """restate-server and the SDK service, on 127.0.0.1 in this namespace."""

    def __init__(self, args: argparse.Namespace, tmp: pathlib.Path) -> None:
        self.args = args
        self.tmp = tmp
        self.pids = pathlib.Path(args.out).with_name(pathlib.Path(args.out).name + ".pids")
        self.config = tmp / "restate.toml"
        self.config.write_text(
            SERVER_CONFIG.format(
                base=tmp / "restate-data", node=NODE_PORT, admin=ADMIN_PORT, ingress=INGRESS_PORT
            )
        )
        self.server_log = tmp / "restate-server.log"
        self.clock = tmp / "starts.json"
        self.log = tmp / "steps.log" if args.workload == "crash" else None
        self.server: subprocess.Popen[bytes] | None = None
        self.sdk: subprocess.Popen[bytes] | None = None
        self.cpu_before: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{INGRESS_PORT}"

    def _record_pids(self) -> None:
        alive = [p.pid for p in (self.server, self.sdk) if p is not None and p.poll() is None]
        self.pids.write_text("".join(f"{pid}\n" for pid in alive))

    def start_server(self) -> None:
        with self.server_log.open("ab") as log:
            self.server = subprocess.Popen(
                [str(server_binary()), "--config-file", str(self.config), "--no-logo"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
                preexec_fn=die_with_parent,
            )
        self._record_pids()
        server = self.server
        try:
            for url in (f"http://127.0.0.1:{ADMIN_PORT}/health", f"{self.ingress}/restate/health"):
                wait_until(partial(http_ok, url), f"200 from {url}", partial(alive, server))
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"restate-server: {error}\n{self.server_tail()}") from None

    def server_tail(self) -> str:
        return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-20:])

    def start_sdk(self) -> None:
        argv = [sys.executable, __file__, "--serve-sdk", str(SDK_PORT), "--clock", str(self.clock)]
        if self.log is not None:
            argv += ["--log", str(self.log)]
        self.sdk = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self._record_pids()
        sdk = self.sdk
        wait_until(lambda: accepts(SDK_PORT), "the SDK service listening", lambda: alive(sdk))

    def register(self) -> None:
        """Registers the SDK service's deployment (the admin API discovers its
        handlers), then waits until the ingress routes to it."""
        import httpx

        admin = f"http://127.0.0.1:{ADMIN_PORT}"
        reply = httpx.post(
            f"{admin}/deployments", json={"uri": f"http://127.0.0.1:{SDK_PORT}"}, timeout=TIMEOUT
        )
        if reply.status_code not in (200, 201):
            raise RuntimeError(f"registering the deployment: {reply.status_code} {reply.text}")
        # The ingress learns of new services from the schema a moment later:
        # an unknown service is a 404.
        probe = f"{self.ingress}/{SERVICE}/chain"

        def routed() -> bool:
            body = {"n": 0, "run": "warmup-probe"}
            return httpx.post(probe, json=body, timeout=TIMEOUT).status_code != 404

        server = self.server
        assert server is not None
        wait_until(routed, f"a route to {SERVICE} on the ingress", lambda: alive(server))

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()
        self.server.wait(TIMEOUT)
        self._record_pids()

    def mark(self) -> None:
        self.cpu_before = self._cpu()

    def _cpu(self) -> dict[str, float]:
        times = os.times()
        cpu = {"client": times.user + times.system}
        for name, process in (("server", self.server), ("sdk", self.sdk)):
            if process is not None and process.poll() is None:
                cpu[name] = cpu_seconds(process.pid)
        return cpu

    def measure_cpu(self) -> None:
        now = self._cpu()
        self.cpu = {k: round(v - self.cpu_before.get(k, 0.0), 3) for k, v in now.items()}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL what has not exited within 10 s; by PID.
        The SDK service writes its clock on the way out."""
        for process in (self.server, self.sdk):  # the server first: it holds the SDK's streams
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(TIMEOUT)
        self.pids.unlink(missing_ok=True)

    def step_gaps(self, keys: list[str]) -> list[float]:
        if not self.clock.exists():
            return []
        starts = json.loads(self.clock.read_text())
        gaps: list[float] = []
        for key in keys:
            gaps.extend(b - a for a, b in itertools.pairwise(starts.get(key, [])))
        return gaps


def alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


# --- the client -------------------------------------------------------------------------------


class App:
    """Calls the handler through the ingress and checks its output."""

    def __init__(self, args: argparse.Namespace, ingress: str) -> None:
        import httpx

        self.args = args
        # Runs in flight share one HTTP/2 connection (cleartext, prior
        # knowledge), as Cairn's client shares one gRPC channel: with a
        # connection each over HTTP/1.1, httpx's pool cost the client more
        # CPU than the server used at 256 in flight. One run at a time goes
        # faster over HTTP/1.1 keep-alive (about 4 ms less per run of 10
        # steps here than over HTTP/2: the h2 package is pure Python).
        self.http2 = args.workload == "concurrent"
        self.http = httpx.AsyncClient(
            base_url=ingress,
            timeout=TIMEOUT,
            http1=not self.http2,
            http2=self.http2,
        )

    def inputs(self, run: str) -> dict[str, Any]:
        return {"n": self.args.steps, "run": run}

    def check(self, output: Any) -> None:
        if output != {"steps": self.args.steps}:
            raise AssertionError(f"the run did not do its {self.args.steps} steps: {output!r}")

    async def invoke(self, run: str) -> None:
        reply = await self.http.post(f"/{SERVICE}/chain", json=self.inputs(run))
        reply.raise_for_status()
        self.check(reply.json())

    async def send(self, run: str) -> str:
        """Starts a run without waiting for it; its invocation id."""
        reply = await self.http.post(f"/{SERVICE}/chain/send", json=self.inputs(run))
        reply.raise_for_status()
        return str(reply.json()["invocationId"])

    async def attach(self, invocation: str) -> Any:
        """The output of an invocation, once it has one."""
        reply = await self.http.get(f"/restate/invocation/{invocation}/attach")
        reply.raise_for_status()
        return reply.json()

    async def close(self) -> None:
        await self.http.aclose()


class FileWatch:
    """Waits until a file has a given line, woken by inotify: no polling."""

    IN_MODIFY = 0x2

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        path.touch()
        self.fd = LIBC.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or LIBC.inotify_add_watch(self.fd, bytes(path), self.IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    def wait_for(self, line: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while line not in self.lines():
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError(f"{self.path} never got {line!r}")
            os.read(self.fd, 4096)

    def close(self) -> None:
        os.close(self.fd)


# --- workloads --------------------------------------------------------------------------------


def sequential(loop: asyncio.AbstractEventLoop, app: App, stack: Stack, result: Result) -> None:
    def run_one(run: str) -> None:
        if run.startswith("run") and not stack.cpu_before:
            stack.mark()  # the first measured run: CPU time counts from here
        loop.run_until_complete(app.invoke(run))

    result.run_seconds, keys, result.wall_seconds = measure_sequential(run_one, app.args)
    result.extra["keys"] = keys


def concurrent(loop: asyncio.AbstractEventLoop, app: App, stack: Stack, result: Result) -> None:
    async def run_one(run: str) -> None:
        if run.startswith("run") and not stack.cpu_before:
            stack.mark()
        await app.invoke(run)

    durations, keys, wall = loop.run_until_complete(measure_concurrent(run_one, app.args))
    result.run_seconds, result.wall_seconds = durations, wall
    result.extra["keys"] = keys


def crash(loop: asyncio.AbstractEventLoop, app: App, stack: Stack, result: Result) -> None:
    assert stack.log is not None
    args = app.args
    kill_after = args.steps // 2 - 1  # the index of step N/2
    watch = FileWatch(stack.log)
    reran: list[int] = []
    finished_reran: list[int] = []
    before_kill: list[int] = []
    try:
        for _ in range(args.runs):
            key = run_id("crash")
            invocation = loop.run_until_complete(app.send(key))
            watch.wait_for(f"{key} {kill_after}")
            killed = time.perf_counter()
            stack.kill_server()
            before = [int(line.split()[1]) for line in watch.lines() if line.startswith(key)]
            stack.start_server()
            # The ingress is up; the invocation's partition may take a moment
            # more to have a leader again, which attach waits for.
            output = loop.run_until_complete(attach_after_restart(app, invocation))
            result.run_seconds.append(time.perf_counter() - killed)
            app.check(output)
            counts = Counter(int(line.split()[1]) for line in watch.lines() if line.startswith(key))
            if set(counts) != set(range(args.steps)):
                raise AssertionError(f"steps that ran: {dict(counts)}")
            in_flight = max(before)
            reran.append(sum(1 for index in set(before) if counts[index] > 1))
            finished_reran.append(
                sum(1 for index in set(before) if index < in_flight and counts[index] > 1)
            )
            before_kill.append(len(before))
    finally:
        watch.close()
    result.reran_steps = reran
    result.extra["finished_reran_steps"] = finished_reran
    result.extra["steps_before_kill"] = before_kill


async def attach_after_restart(app: App, invocation: str) -> Any:
    """attach, again while the restarted server answers 5xx or drops the
    connection (its partitions are still electing leaders), up to TIMEOUT."""
    import httpx

    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return await app.attach(invocation)
        except (httpx.TransportError, httpx.HTTPStatusError) as error:
            server_error = isinstance(error, httpx.TransportError) or (
                error.response.status_code >= 500
            )
            if not server_error or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


WORKLOADS = {"sequential": sequential, "concurrent": concurrent, "crash": crash}


# --- main -------------------------------------------------------------------------------------


def serve_sdk_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-sdk", type=int, required=True)
    parser.add_argument("--clock", type=pathlib.Path, required=True)
    parser.add_argument("--log", type=pathlib.Path)
    args = parser.parse_args(argv)
    asyncio.run(serve_sdk(args.serve_sdk, args.log))
    args.clock.write_text(json.dumps(STARTS))


def bench(args: argparse.Namespace, result: Result) -> None:
    with scratch_dir() as tmp:
        stack = Stack(args, tmp)
        loop = asyncio.new_event_loop()
        app: App | None = None
        try:
            stack.start_server()
            stack.start_sdk()
            stack.register()
            app = loop.run_until_complete(make_app(args, stack.ingress))
            WORKLOADS[args.workload](loop, app, stack, result)
            if args.workload != "crash":  # a restarted server starts its count again
                stack.measure_cpu()
            assert stack.server is not None and stack.sdk is not None
            result.rss_bytes = rss_bytes(stack.server.pid)
            result.extra["sdk_rss_bytes"] = rss_bytes(stack.sdk.pid)
        except Exception:  # not on SIGTERM (SystemExit): then it is not the server's fault
            if stack.server_log.exists():
                print(f"restate-server's log, last lines:\n{stack.server_tail()}", file=sys.stderr)
            raise
        finally:
            if app is not None:
                loop.run_until_complete(app.close())
            loop.close()
            stack.stop()
        result.step_latency_seconds = stack.step_gaps(result.extra.pop("keys", []))
        result.extra["cpu_seconds"] = stack.cpu


async def make_app(args: argparse.Namespace, ingress: str) -> App:
    return App(args, ingress)  # the httpx client belongs to the running loop


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-sdk":
        serve_sdk_main(sys.argv[1:])
        return
    args = parse_args(SYSTEMS, stores=("restate",))
    if args.workload not in WORKLOADS:
        raise SystemExit(f"restate runs {', '.join(WORKLOADS)}, not {args.workload}")

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally that stops the children

    signal.signal(signal.SIGTERM, terminate)
    interfaces = private_network()
    result = Result(
        system=args.system,
        store=args.store,
        workload=args.workload,
        steps=args.steps,
        runs=args.runs,
        concurrency=args.concurrency,
        # ctx.run's future resolves once the server has the entry in its log,
        # which fsyncs each write batch by default: no other mode is measured.
        durability="sync",
        packages=("restate-sdk", "hypercorn", "httpx"),
    )
    result.extra["versions"] = {
        **versions(result.packages),
        "restate-server": server_version(),
    }
    if args.durability != "sync":
        result.notes.append(f"--durability {args.durability} ignored: measured with defaults.")
    result.notes.append(
        "restate-server (defaults: its log and partition store on RocksDB in a fresh data "
        "directory, the log fsynced on each write batch), the SDK service (hypercorn, "
        "HTTP/2) and this client (httpx: HTTP/1.1 keep-alive for sequential runs, one HTTP/2 "
        "connection for concurrent ones) as separate processes, in a network namespace of "
        f"their own with only {', '.join(interfaces)}."
    )
    if args.workload in ("sequential", "concurrent"):
        result.notes.append(
            f"{args.warmup} unmeasured warm-up run(s) first; each run a new invocation."
        )
    if args.workload == "crash":
        result.notes.append(
            "Recovery: restate-server restarted on the same data directory; it invokes the "
            "service again (after its retry delay), which replays the journal."
        )
    bench(args, result)
    result.write(args.out)


if __name__ == "__main__":
    main()
