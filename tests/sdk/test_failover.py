"""Several servers: a client given several addresses fails over to the next
one when its server is gone, streams continue from the last event they
delivered, a retried start attaches to the run the first attempt started,
and a worker serves every address at once within one concurrency limit."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import pathlib
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cairn import (
    Client,
    Command,
    RunState,
    SyncClient,
    ThreadNotFoundError,
    UnavailableError,
    Worker,
    entrypoint,
    get_stream_writer,
    interrupt,
    task,
)
from cairn_server.server import ServerConfig, create_server
from tests.e2e.processes import Process, free_port, start_server, stopping

FAILOVER_APP = pathlib.Path(__file__).with_name("failover_app.py")


class Changes:
    """Wakes whoever waits for a condition each time something it reads changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def until(self, condition: Callable[[], bool], within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                await self._event.wait()
                self._event.clear()


def unused_address() -> str:
    """An address nobody listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def two_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@contextlib.asynccontextmanager
async def serving(db: pathlib.Path) -> AsyncIterator[str]:
    """An in-process server on a SQLite file; yields its address."""
    config = ServerConfig(address="127.0.0.1:0", store_url=f"sqlite:///{db}")
    instance, port = await create_server(config)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await instance.stop(grace=0.5)


@contextlib.asynccontextmanager
async def working(worker: Worker, *, everywhere: bool = True) -> AsyncIterator[Worker]:
    """Run `worker` until the block ends; connected to every address, or
    with `everywhere=False` to at least one."""
    runner = asyncio.ensure_future(worker.run())
    try:
        ready = worker.all_connected if everywhere else worker.connected
        await asyncio.wait_for(ready.wait(), 20)
        yield worker
    finally:
        await worker.stop(grace=1)
        await asyncio.wait_for(runner, 10)


# --- the client skips addresses it cannot reach ---------------------------------------------


@task
def double(x: int) -> int:
    return 2 * x


@entrypoint()
def doubling(x: int) -> int:
    return double(x).result()


def test_addresses_are_one_a_comma_separated_list_or_a_sequence() -> None:
    assert Worker("127.0.0.1:1").addresses == ("127.0.0.1:1",)
    assert Worker(" 127.0.0.1:1, 127.0.0.1:2 ").addresses == ("127.0.0.1:1", "127.0.0.1:2")
    assert Worker(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"]).addresses == (
        "127.0.0.1:1",
        "127.0.0.1:2",
    )
    with pytest.raises(ValueError):
        Worker(" , ")
    with pytest.raises(ValueError):
        Worker([])


async def test_client_skips_an_address_nobody_listens_on(tmp_path: pathlib.Path) -> None:
    async with (
        serving(tmp_path / "cairn.db") as live,
        working(Worker(live, functions=[double, doubling])),
    ):
        async with Client([unused_address(), live]) as client:
            run = await client.invoke(doubling, 21, thread_id="a")
            assert (run.state, run.output) == (RunState.SUCCEEDED, 42)
            assert client.address == live
        async with Client(f"{unused_address()},{live}") as client:
            events = [e async for e in client.stream(doubling, 5, thread_id="b")]
            assert events[-1].run is not None and events[-1].run.output == 10
        # A script's client fails over the same way (it runs its own loop).
        with SyncClient([unused_address(), live]) as sync_client:
            run = await asyncio.to_thread(sync_client.invoke, doubling, 1, thread_id="c")
            assert run.output == 2


async def test_other_errors_are_raised_at_once_and_unreachable_servers_after_a_while(
    tmp_path: pathlib.Path,
) -> None:
    async with serving(tmp_path / "cairn.db") as live:
        async with Client([live, unused_address()]) as client:
            with pytest.raises(ThreadNotFoundError):
                await client.get_thread("nobody")
            assert client.address == live
        # An update, which must not apply twice, moves on from an address
        # where no server answered at all.
        async with Client([unused_address(), live]) as client:
            with pytest.raises(ThreadNotFoundError):
                await client.update_state("nobody", {"x": 1})
            assert client.address == live
    async with Client([unused_address(), unused_address()], failover_timeout=0.5) as client:
        with pytest.raises(UnavailableError):
            await client.get_thread("nobody")
        with pytest.raises(UnavailableError):
            [e async for e in client.join("some-run")]


# --- a worker serves every address --------------------------------------------------------


@task
def shout(text: str) -> str:
    get_stream_writer()({"shouting": text})
    return text.upper()


@entrypoint()
def shout_and_ask(text: str) -> dict:
    loud = shout(text).result()
    answer = interrupt({"ok?": loud})
    return {"loud": loud, "answer": answer}


@pytest.mark.parametrize("local_calls", [True, False], ids=["local-calls", "through-service"])
async def test_a_worker_serves_runs_of_two_independent_services(
    tmp_path: pathlib.Path, local_calls: bool
) -> None:
    async with serving(tmp_path / "one.db") as first, serving(tmp_path / "two.db") as second:
        worker = Worker([first, second], functions=[shout, shout_and_ask], local_calls=local_calls)
        async with working(worker):
            assert worker.addresses == (first, second)

            async def converse(address: str, text: str) -> tuple[list[Any], Any]:
                # Tasks, stream chunks, an interrupt and a resume, each of
                # which reaches only the service that assigned the work.
                async with Client(address) as client:
                    custom, interrupts = [], ()
                    async for event in client.stream(
                        shout_and_ask, text, thread_id="t", stream_mode="custom"
                    ):
                        if event.mode == "custom":
                            custom.append(event.data)
                        elif event.run is not None:
                            interrupts = event.run.interrupts
                    assert [i.value for i in interrupts] == [{"ok?": text.upper()}]
                    run = await client.invoke(shout_and_ask, Command(resume="yes"), thread_id="t")
                    return custom, run.output

            results = await asyncio.wait_for(
                asyncio.gather(converse(first, "one"), converse(second, "two")), 30
            )
    assert results == [
        ([{"shouting": "one"}], {"loud": "ONE", "answer": "yes"}),
        ([{"shouting": "two"}], {"loud": "TWO", "answer": "yes"}),
    ]


class Holding:
    """Task bodies that are running now, the most that ever ran at once, and
    gates the test opens to let each one finish."""

    def __init__(self) -> None:
        self.changes = Changes()
        self.now = 0
        self.peak = 0
        self.started: list[str] = []
        self.gates: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(
            asyncio.Event
        )
        self.slot_waits = 0


holding = Holding()


def started(count: int) -> bool:
    return len(holding.started) == count


@task
async def hold(key: str) -> str:
    holding.now += 1
    holding.peak = max(holding.peak, holding.now)
    holding.started.append(key)
    holding.changes.notify()
    try:
        await holding.gates[key].wait()
    finally:
        holding.now -= 1
    return key


@entrypoint()
async def holder(key: str) -> str:
    return str(await hold(key))


class SlotWaits(logging.Handler):
    """Counts the assignments the worker holds back for want of a slot."""

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for a free slot" in record.getMessage():
            holding.slot_waits += 1
            holding.changes.notify()


@pytest.fixture
def slot_waits() -> Any:
    logger = logging.getLogger("cairn.worker")
    handler, level = SlotWaits(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_max_concurrency_bounds_all_connections_together(
    tmp_path: pathlib.Path, slot_waits: Any
) -> None:
    global holding
    holding = Holding()
    async with serving(tmp_path / "one.db") as first, serving(tmp_path / "two.db") as second:
        # Each service may send 2 tasks on its stream; the worker runs 2 in all.
        worker = Worker(
            [first, second], functions=[hold, holder], max_concurrency=2, local_calls=False
        )
        async with (
            working(worker),
            Client(first) as one,
            Client(second) as two,
        ):
            keys = {"a1": one, "a2": one, "b1": two, "b2": two}
            runs = [
                asyncio.ensure_future(client.invoke(holder, key, thread_id=key))
                for key, client in keys.items()
            ]
            # All four assignments reached the worker: two run, two wait.
            await holding.changes.until(
                lambda: len(holding.started) == 2 and holding.slot_waits == 2
            )
            assert holding.now == 2
            # Each finished task lets exactly one waiting task start.
            for released in range(4):
                holding.gates[holding.started[released]].set()
                if released + 2 < 4:
                    await holding.changes.until(functools.partial(started, released + 3))
                    assert holding.now == 2
            finished = await asyncio.wait_for(asyncio.gather(*runs), 20)
    assert sorted(run.output for run in finished) == sorted(keys)
    assert sorted(holding.started) == sorted(keys)
    assert holding.peak == 2


# --- a server dies: retried starts and streams continue on another one ---------------------


gate = asyncio.Event()
gate_changes = Changes()
gated_starts: list[str] = []


@task
async def wait_for_gate(x: str) -> str:
    gated_starts.append(x)
    gate_changes.notify()
    await gate.wait()
    return f"{x} passed"


@entrypoint()
async def gated(x: str) -> str:
    return str(await wait_for_gate(x))


async def test_a_retried_invoke_attaches_to_the_run_it_started(tmp_path: pathlib.Path) -> None:
    """The server dies while Invoke waits; the client retries on the next
    address, a server on the same store, with the request_id it generated,
    and gets the first run instead of starting a second one."""
    global gate
    gate = asyncio.Event()
    gated_starts.clear()
    db = tmp_path / "cairn.db"
    port_a, port_b = two_ports()
    a, b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
    first = start_server(db, port_a)
    second: Process | None = None
    try:
        worker = Worker([a, b], functions=[wait_for_gate, gated], reconnect_max_interval=0.2)
        async with working(worker, everywhere=False), Client([a, b]) as client:
            invoking = asyncio.ensure_future(client.invoke(gated, "x", thread_id="once"))
            await gate_changes.until(lambda: len(gated_starts) == 1)
            first.kill()
            second = await asyncio.to_thread(start_server, db, port_b)  # recovers the run
            gate.set()
            run = await asyncio.wait_for(invoking, 60)
            assert (run.state, run.output) == (RunState.SUCCEEDED, "x passed")
            assert client.address == b
            runs = await client.list_runs("once")
            assert [r.run_id for r in runs] == [run.run_id]
    finally:
        first.kill()
        if second is not None:
            second.stop()


@pytest.mark.parametrize("durability", ["sync", "async"])
async def test_a_stream_continues_on_another_server_after_a_sigkill(
    tmp_path: pathlib.Path, durability: str
) -> None:
    """Server A is killed mid-run; server B starts on the same store and
    recovers the run; the client's stream continues on B, and the worker,
    connected to both addresses, finishes the run through B. The stream
    yields every event of the run's log once, in order. With async
    durability A may have sent events it never stored: B numbers its own
    above them, so the client misses none of B's."""
    db, gates = tmp_path / "cairn.db", tmp_path / "gates"
    gates.mkdir()
    port_a, port_b = two_ports()
    a, b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
    server_a = start_server(db, port_a)
    servers: list[Process] = [server_a]
    worker = Process(
        [sys.executable, str(FAILOVER_APP), "--address", f"{a},{b}", "--gates", str(gates)]
    ).start()
    with stopping(worker):
        try:
            worker.wait_for_line("worker ready")
            async with Client([a, b]) as client:
                event_ids, waits, final = [], [], None
                async with asyncio.timeout(90):
                    async for event in client.stream(
                        "gated_steps",
                        4,
                        thread_id="failover",
                        durability=durability,
                        stream_mode="custom",
                        subgraphs=True,  # every event of the log, none filtered
                    ):
                        event_ids.append(event.event_id)
                        if event.mode == "custom":
                            step = event.data["waiting"]
                            waits.append(step)
                            if step == 2 and len(servers) == 1:
                                server_a.kill()
                                servers.append(await asyncio.to_thread(start_server, db, port_b))
                            (gates / f"open-{step}").touch()
                        elif event.run is not None:
                            final = event.run
                assert len(servers) == 2, "server A was never killed"
                assert client.address == b
                assert final is not None and final.state is RunState.SUCCEEDED
                assert final.output == 0 + 10 + 20 + 30
                # Step 2 ran again on B (its result was not recorded on A).
                assert waits == [0, 1, 2, 2, 3]
                logged = [e.event_id async for e in client.join(final.run_id, subgraphs=True)]
                if durability == "sync":  # an event a client saw is stored
                    assert event_ids == list(range(1, len(event_ids) + 1))
                    assert event_ids == logged
                else:  # what A published but did not store is not in the log
                    assert event_ids == sorted(set(event_ids))
                    assert set(logged) <= set(event_ids)
                    assert max(logged) == event_ids[-1]
        finally:
            for server in servers:
                server.stop()
