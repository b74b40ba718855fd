"""Who may call what, against the real server (DESIGN.md 8.1-8.3): every RPC
of every cairn.v1 service, each with a valid request, called by callers
without credentials, with a badly signed or an expired token, with an
unknown API key, with a grant only in another namespace (by token and by
API key), with a role too weak and with the right role.

The refused ones get UNAUTHENTICATED, NOT_FOUND or PERMISSION_DENIED with
the matching ErrorInfo, leave an audit line, and change nothing an admin
sees (threads with their state, history and runs, LangGraph checkpoints);
the right role gets past the checks. The list of RPCs comes from the
service descriptors, so an RPC added to a proto fails here until it has a
row in CALLS.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import grpc
import pytest
from google.protobuf import duration_pb2, json_format

from cairn import END, START, StateGraph, entrypoint, task
from cairn._values import to_value
from cairn.v1 import (
    checkpoint_service_pb2,
    graph_service_pb2,
    run_pb2,
    run_service_pb2,
    schedule_service_pb2,
    store_service_pb2,
    thread_service_pb2,
    worker_service_pb2,
)
from cairn_server.auth import METHOD_ROLES
from tests.api.conftest import Api
from tests.api.secured import (
    ADMIN,
    OTHER_SECRET,
    WAIT,
    Metadata,
    Secured,
    Workers,
    as_caller,
    connected,
    hello,
    refused,
    secured_server,
    snapshot,
    stubs,
    token,
)

cpb = checkpoint_service_pb2
rpb = run_service_pb2
schdpb = schedule_service_pb2
spb = store_service_pb2
tpb = thread_service_pb2
wpb = worker_service_pb2

NS = "team-a"
"""The namespace every call of the matrix acts in."""
OTHER_NS = "team-b"

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED

# --- what the worker serves -----------------------------------------------------------------

gates: dict[str, asyncio.Event] = {}


@task
def shout(text: str) -> str:
    return text.upper()


@entrypoint()
def echo(text: str) -> str:
    return str(shout(text).result())


@task
async def wait_for_release(text: str) -> str:
    gates["entered"].set()
    await gates["release"].wait()
    return text


@entrypoint()
async def held(text: str) -> str:
    return str(await wait_for_release(text))


class Counter(TypedDict):
    value: int
    log: Annotated[list[str], operator.add]


def bump(state: Counter) -> dict[str, Any]:
    return {"value": state["value"] + 1, "log": ["bump"]}


counter = (
    StateGraph(Counter)
    .add_node("bump", bump)
    .add_edge(START, "bump")
    .add_edge("bump", END)
    .compile(name="counter")
)

# --- the world every test starts from ---------------------------------------------------------


def admin(namespace: str = NS) -> Metadata:
    return as_caller(ADMIN, namespace)


@dataclass
class World:
    """What the admin set up in NS before the call under test."""

    api: Api
    served: Secured
    done_run: str
    """A SUCCEEDED run of `echo` on thread t-done."""
    held_run: str
    """A RUNNING run of `held` on thread t-held, its task waiting for release."""
    lg_checkpoint: str
    """A LangGraph checkpoint on thread lg-1, of LangGraph run lg-run-1."""


def struct(data: dict[str, Any]) -> Any:
    return to_value(data).struct_value


def memory_key(key: str) -> dict[str, Any]:
    return {"namespace": ["users", "u-1"], "key": key}


def typed(data: bytes) -> cpb.TypedValue:
    return cpb.TypedValue(type="json", data=data)


def put_checkpoint(thread_id: str, checkpoint_id: str, run_id: str) -> cpb.PutCheckpointRequest:
    return cpb.PutCheckpointRequest(
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        checkpoint=typed(b'{"v": 1}'),
        metadata_json=f'{{"run_id": "{run_id}", "source": "input", "step": -1}}',
        channel_versions={"x": "1"},
        blobs=[cpb.SavedBlob(channel="x", version="1", value=typed(b"1"))],
    )


async def start_held(api: Api, thread_id: str) -> str:
    """Start `held` on `thread_id`; its run id once its task runs on the worker."""
    request = rpb.StreamRequest(
        thread_id=thread_id,
        target="held",
        input=to_value("hold"),
        create_thread=True,
        stream_modes=[run_pb2.STREAM_MODE_UPDATES],
    )
    call = api.runs.Stream(request, metadata=admin(), timeout=WAIT)
    try:
        run_id = ""
        async for response in call:
            run_id = response.event.run_id
            break
    finally:
        call.cancel()
    assert run_id
    await asyncio.wait_for(gates["entered"].wait(), WAIT)
    return run_id


@pytest.fixture
async def world(tmp_path: pathlib.Path) -> AsyncIterator[World]:
    gates["entered"], gates["release"] = asyncio.Event(), asyncio.Event()
    async with (
        secured_server(
            tmp_path, api_keys={"other-key": [f"{OTHER_NS}:admin"], "ci-writer": [f"{NS}:writer"]}
        ) as served,
        stubs(served.address) as api,
    ):
        workers = Workers(served.address)
        try:
            await workers.start(
                [shout, echo, wait_for_release, held, counter],
                token=token("worker-1", f"{NS}:worker"),
                namespace=NS,
                worker_id="worker-1",
            )
            invoked = await api.runs.Invoke(
                rpb.InvokeRequest(
                    thread_id="t-done", target="echo", input=to_value("hi"), create_thread=True
                ),
                metadata=admin(),
                timeout=WAIT,
            )
            assert invoked.run.state == run_pb2.RUN_STATE_SUCCEEDED
            graph_run = await api.runs.Invoke(
                rpb.InvokeRequest(
                    thread_id="t-graph",
                    target="counter",
                    input=to_value({"value": 1, "log": []}),
                    create_thread=True,
                ),
                metadata=admin(),
                timeout=WAIT,
            )
            assert graph_run.run.state == run_pb2.RUN_STATE_SUCCEEDED
            held_run = await start_held(api, "t-held")
            await api.checkpoints.PutCheckpoint(
                put_checkpoint("lg-1", "cp-1", "lg-run-1"), metadata=admin(), timeout=WAIT
            )
            await api.checkpoints.PutWrites(
                cpb.PutWritesRequest(
                    thread_id="lg-1",
                    checkpoint_id="cp-1",
                    writes=[cpb.SavedWrite(task_id="t1", idx=0, channel="x", value=typed(b"2"))],
                ),
                metadata=admin(),
                timeout=WAIT,
            )
            await api.store.PutItem(
                spb.PutItemRequest(
                    namespace=["users", "u-1"], key="likes", value=struct({"food": "pizza"})
                ),
                metadata=admin(),
                timeout=WAIT,
            )
            await api.schedules.CreateSchedule(
                schdpb.CreateScheduleRequest(
                    schedule_id="nightly", cron="@daily", target="echo", input=to_value("n")
                ),
                metadata=admin(),
                timeout=WAIT,
            )
            yield World(api, served, invoked.run.run_id, held_run, "cp-1")
        finally:
            gates["release"].set()
            await workers.stop_all()


async def everything(api: Api) -> dict[str, Any]:
    return {namespace: await snapshot(api, namespace) for namespace in (NS, OTHER_NS, "default")}


# --- one valid request per RPC ----------------------------------------------------------------

Caller = Callable[[World, Metadata], Awaitable[Any]]


async def drain(call: Any) -> list[Any]:
    """Every response of a server stream (raises its error, if any)."""
    return [response async for response in call]


def _start(thread_id: str) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "target": "echo",
        "input": to_value("new"),
        "create_thread": True,
    }


async def _session(w: World, md: Metadata) -> Any:
    start = rpb.StreamRequest(**_start("t-session"), stream_modes=[run_pb2.STREAM_MODE_UPDATES])
    return await drain(
        w.api.runs.Session(iter([rpb.SessionRequest(start=start)]), metadata=md, timeout=WAIT)
    )


async def _connect(w: World, md: Metadata) -> Any:
    """A worker stream registering `echo`: its welcome, then it is closed."""
    async with connected(w.api, md, hello("echo")) as welcome:
        return welcome


def _minute() -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=60)


def _update_state() -> tpb.UpdateStateRequest:
    return tpb.UpdateStateRequest(
        thread_id="t-graph", values=to_value({"value": 10, "log": ["edit"]}), as_node="bump"
    )


@dataclass(frozen=True)
class Rpc:
    """The role an RPC needs (the contract's, not read from the server's
    table) and a valid call of it."""

    role: str
    call: Caller
    too_weak: str = ""
    """A role that may not make the call ('': TOO_WEAK[role])."""

    @property
    def weaker(self) -> str:
        return self.too_weak or TOO_WEAK[self.role]


CALLS: dict[str, Rpc] = {
    # ThreadService
    "cairn.v1.ThreadService/CreateThread": Rpc(
        "writer",
        lambda w, md: w.api.threads.CreateThread(
            tpb.CreateThreadRequest(thread_id="t-new"), metadata=md
        ),
    ),
    "cairn.v1.ThreadService/GetThread": Rpc(
        "reader",
        lambda w, md: w.api.threads.GetThread(
            tpb.GetThreadRequest(thread_id="t-done"), metadata=md
        ),
    ),
    "cairn.v1.ThreadService/ListThreads": Rpc(
        "reader", lambda w, md: w.api.threads.ListThreads(tpb.ListThreadsRequest(), metadata=md)
    ),
    "cairn.v1.ThreadService/DeleteThread": Rpc(
        "writer",
        lambda w, md: w.api.threads.DeleteThread(
            tpb.DeleteThreadRequest(thread_id="t-done"), metadata=md
        ),
    ),
    "cairn.v1.ThreadService/GetState": Rpc(
        "reader",
        lambda w, md: w.api.threads.GetState(tpb.GetStateRequest(thread_id="t-done"), metadata=md),
    ),
    "cairn.v1.ThreadService/GetStateHistory": Rpc(
        "reader",
        lambda w, md: w.api.threads.GetStateHistory(
            tpb.GetStateHistoryRequest(thread_id="t-done"), metadata=md
        ),
    ),
    "cairn.v1.ThreadService/UpdateState": Rpc(
        "writer", lambda w, md: w.api.threads.UpdateState(_update_state(), metadata=md)
    ),
    "cairn.v1.ThreadService/PruneThreads": Rpc(
        "admin",
        lambda w, md: w.api.threads.PruneThreads(
            tpb.PruneThreadsRequest(thread_ids=["t-done"], strategy=tpb.PRUNE_STRATEGY_DELETE),
            metadata=md,
        ),
    ),
    # RunService
    "cairn.v1.RunService/Invoke": Rpc(
        "writer",
        lambda w, md: w.api.runs.Invoke(rpb.InvokeRequest(**_start("t-invoke")), metadata=md),
    ),
    "cairn.v1.RunService/Stream": Rpc(
        "writer",
        lambda w, md: drain(
            w.api.runs.Stream(rpb.StreamRequest(**_start("t-stream")), metadata=md)
        ),
    ),
    "cairn.v1.RunService/Session": Rpc("writer", _session),
    "cairn.v1.RunService/JoinRun": Rpc(
        "reader",
        lambda w, md: drain(w.api.runs.JoinRun(rpb.JoinRunRequest(run_id=w.done_run), metadata=md)),
    ),
    "cairn.v1.RunService/GetRun": Rpc(
        "reader", lambda w, md: w.api.runs.GetRun(rpb.GetRunRequest(run_id=w.done_run), metadata=md)
    ),
    "cairn.v1.RunService/ListRuns": Rpc(
        "reader",
        lambda w, md: w.api.runs.ListRuns(rpb.ListRunsRequest(thread_id="t-done"), metadata=md),
    ),
    "cairn.v1.RunService/CancelRun": Rpc(
        "writer",
        lambda w, md: w.api.runs.CancelRun(rpb.CancelRunRequest(run_id=w.held_run), metadata=md),
    ),
    # WorkerService
    "cairn.v1.WorkerService/Connect": Rpc("worker", _connect),
    "cairn.v1.WorkerService/ListWorkers": Rpc(
        "reader", lambda w, md: w.api.workers.ListWorkers(wpb.ListWorkersRequest(), metadata=md)
    ),
    # GraphService
    "cairn.v1.GraphService/GetGraph": Rpc(
        "reader",
        lambda w, md: w.api.graphs.GetGraph(
            graph_service_pb2.GetGraphRequest(name="counter"), metadata=md
        ),
    ),
    # StoreService: reads are open to readers and workers, so only a replica
    # grant is too weak for them; writes are open to writers and workers.
    "cairn.v1.StoreService/GetItem": Rpc(
        "reader",
        lambda w, md: w.api.store.GetItem(spb.GetItemRequest(**memory_key("likes")), metadata=md),
        too_weak="replica",
    ),
    "cairn.v1.StoreService/PutItem": Rpc(
        "writer",
        lambda w, md: w.api.store.PutItem(
            spb.PutItemRequest(**memory_key("drinks"), value=struct({"drink": "tea"})),
            metadata=md,
        ),
    ),
    "cairn.v1.StoreService/DeleteItem": Rpc(
        "writer",
        lambda w, md: w.api.store.DeleteItem(
            spb.DeleteItemRequest(**memory_key("likes")), metadata=md
        ),
    ),
    "cairn.v1.StoreService/SearchItems": Rpc(
        "reader",
        lambda w, md: w.api.store.SearchItems(
            spb.SearchItemsRequest(namespace_prefix=["users"]), metadata=md
        ),
        too_weak="replica",
    ),
    "cairn.v1.StoreService/ListNamespaces": Rpc(
        "reader",
        lambda w, md: w.api.store.ListNamespaces(spb.ListNamespacesRequest(), metadata=md),
        too_weak="replica",
    ),
    "cairn.v1.StoreService/BatchItems": Rpc(
        "reader",
        lambda w, md: w.api.store.BatchItems(
            spb.BatchItemsRequest(
                operations=[spb.StoreOperation(get=spb.GetItemRequest(**memory_key("likes")))]
            ),
            metadata=md,
        ),
        too_weak="replica",
    ),
    # ScheduleService
    "cairn.v1.ScheduleService/CreateSchedule": Rpc(
        "writer",
        lambda w, md: w.api.schedules.CreateSchedule(
            schdpb.CreateScheduleRequest(schedule_id="s-new", interval=_minute(), target="echo"),
            metadata=md,
        ),
    ),
    "cairn.v1.ScheduleService/GetSchedule": Rpc(
        "reader",
        lambda w, md: w.api.schedules.GetSchedule(
            schdpb.GetScheduleRequest(schedule_id="nightly"), metadata=md
        ),
    ),
    "cairn.v1.ScheduleService/ListSchedules": Rpc(
        "reader",
        lambda w, md: w.api.schedules.ListSchedules(schdpb.ListSchedulesRequest(), metadata=md),
    ),
    "cairn.v1.ScheduleService/PauseSchedule": Rpc(
        "writer",
        lambda w, md: w.api.schedules.PauseSchedule(
            schdpb.PauseScheduleRequest(schedule_id="nightly"), metadata=md
        ),
    ),
    "cairn.v1.ScheduleService/ResumeSchedule": Rpc(
        "writer",
        lambda w, md: w.api.schedules.ResumeSchedule(
            schdpb.ResumeScheduleRequest(schedule_id="nightly"), metadata=md
        ),
    ),
    "cairn.v1.ScheduleService/TriggerSchedule": Rpc(
        "writer",
        lambda w, md: w.api.schedules.TriggerSchedule(
            schdpb.TriggerScheduleRequest(schedule_id="nightly"), metadata=md
        ),
    ),
    "cairn.v1.ScheduleService/DeleteSchedule": Rpc(
        "writer",
        lambda w, md: w.api.schedules.DeleteSchedule(
            schdpb.DeleteScheduleRequest(schedule_id="nightly"), metadata=md
        ),
    ),
    # CheckpointService
    "cairn.v1.CheckpointService/GetTuple": Rpc(
        "reader",
        lambda w, md: w.api.checkpoints.GetTuple(
            cpb.GetTupleRequest(thread_id="lg-1"), metadata=md
        ),
    ),
    "cairn.v1.CheckpointService/ListCheckpoints": Rpc(
        "reader",
        lambda w, md: w.api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest(), metadata=md),
    ),
    "cairn.v1.CheckpointService/PutCheckpoint": Rpc(
        "writer",
        lambda w, md: w.api.checkpoints.PutCheckpoint(
            put_checkpoint("lg-1", "cp-2", "lg-run-2"), metadata=md
        ),
    ),
    "cairn.v1.CheckpointService/PutWrites": Rpc(
        "writer",
        lambda w, md: w.api.checkpoints.PutWrites(
            cpb.PutWritesRequest(
                thread_id="lg-1",
                checkpoint_id=w.lg_checkpoint,
                writes=[cpb.SavedWrite(task_id="t2", idx=0, channel="x", value=typed(b"3"))],
            ),
            metadata=md,
        ),
    ),
    "cairn.v1.CheckpointService/DeleteThreadCheckpoints": Rpc(
        "writer",
        lambda w, md: w.api.checkpoints.DeleteThreadCheckpoints(
            cpb.DeleteThreadCheckpointsRequest(thread_id="lg-1"), metadata=md
        ),
    ),
    "cairn.v1.CheckpointService/DeleteForRuns": Rpc(
        "writer",
        lambda w, md: w.api.checkpoints.DeleteForRuns(
            cpb.DeleteForRunsRequest(run_ids=["lg-run-1"]), metadata=md
        ),
    ),
    "cairn.v1.CheckpointService/CopyThreadCheckpoints": Rpc(
        "writer",
        lambda w, md: w.api.checkpoints.CopyThreadCheckpoints(
            cpb.CopyThreadCheckpointsRequest(source_thread_id="lg-1", target_thread_id="lg-copy"),
            metadata=md,
        ),
    ),
    "cairn.v1.CheckpointService/PruneCheckpoints": Rpc(
        "admin",
        lambda w, md: w.api.checkpoints.PruneCheckpoints(
            cpb.PruneCheckpointsRequest(thread_ids=["lg-1"], strategy=tpb.PRUNE_STRATEGY_DELETE),
            metadata=md,
        ),
    ),
    "cairn.v1.CheckpointService/GetCapabilities": Rpc(
        "reader",
        lambda w, md: w.api.checkpoints.GetCapabilities(cpb.GetCapabilitiesRequest(), metadata=md),
    ),
}

SERVICE_FILES = (
    thread_service_pb2,
    run_service_pb2,
    worker_service_pb2,
    checkpoint_service_pb2,
    graph_service_pb2,
    store_service_pb2,
    schedule_service_pb2,
)
RPCS = sorted(
    f"{service.full_name}/{method.name}"
    for file in SERVICE_FILES
    for service in file.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)
"""Every RPC of every cairn.v1 service, from the descriptors."""


def test_every_rpc_is_in_the_matrix_and_in_the_servers_table() -> None:
    assert {
        service.full_name
        for f in SERVICE_FILES
        for service in f.DESCRIPTOR.services_by_name.values()
    } == {
        "cairn.v1.ThreadService",
        "cairn.v1.RunService",
        "cairn.v1.WorkerService",
        "cairn.v1.CheckpointService",
        "cairn.v1.GraphService",
        "cairn.v1.StoreService",
        "cairn.v1.ScheduleService",
    }
    assert set(RPCS) == {method for method in METHOD_ROLES if method.startswith("cairn.v1.")}
    assert set(RPCS) == set(CALLS)


# --- the callers --------------------------------------------------------------------------------

TOO_WEAK = {"reader": "worker", "writer": "reader", "admin": "writer", "worker": "reader"}
"""A role too weak for each role: reads need more than a worker grant."""


@dataclass(frozen=True)
class Case:
    """A caller of an RPC and what it must be told (None: not refused)."""

    credential: Callable[[Secured, Rpc], str | None]
    code: grpc.StatusCode | None
    reason: str = ""
    audited_as: str = "unauthenticated"


CASES: dict[str, Case] = {
    "no-credentials": Case(lambda s, rpc: None, UNAUTHENTICATED, "UNAUTHENTICATED"),
    "bad-signature": Case(
        lambda s, rpc: token("mallory", f"{NS}:admin", secret=OTHER_SECRET),
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
    ),
    "expired": Case(
        lambda s, rpc: token("alice", f"{NS}:admin", lifetime=-60),
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
    ),
    "unknown-api-key": Case(
        lambda s, rpc: s.api_keys["ci-writer"][:-4] + "AAAA", UNAUTHENTICATED, "UNAUTHENTICATED"
    ),
    "other-namespace": Case(
        lambda s, rpc: token("bob", f"{OTHER_NS}:admin"),
        NOT_FOUND,
        "NAMESPACE_NOT_FOUND",
        "jwt:bob",
    ),
    "other-namespace-api-key": Case(
        lambda s, rpc: s.api_keys["other-key"], NOT_FOUND, "NAMESPACE_NOT_FOUND", "key:other-key"
    ),
    "too-weak": Case(
        lambda s, rpc: token("carol", f"{NS}:{rpc.weaker}"),
        PERMISSION_DENIED,
        "PERMISSION_DENIED",
        "jwt:carol",
    ),
    "right-role": Case(lambda s, rpc: token("dave", f"{NS}:{rpc.role}"), None),
}


def _audit(records: Iterable[logging.LogRecord], event: str) -> list[dict[str, str]]:
    """The structured fields of the audit log's `event` lines."""
    fields = [r.__dict__.get("audit", {}) for r in records if r.name == "cairn.audit"]
    return [f for f in fields if f.get("event") == event]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", RPCS)
async def test_access(
    world: World, method: str, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    rpc, expected = CALLS[method], CASES[case]
    metadata = as_caller(expected.credential(world.served, rpc), NS)
    before = await everything(world.api)

    with caplog.at_level(logging.INFO, logger="cairn.audit"):
        if expected.code is None:
            await asyncio.wait_for(rpc.call(world, metadata), WAIT)
        else:
            await refused(rpc.call(world, metadata), expected.code, expected.reason)

    denied = _audit(caplog.records, "denied")
    if expected.code is None:
        assert denied == []
        return
    assert await everything(world.api) == before
    assert [(d["method"], d["caller"], d["namespace"], d["code"]) for d in denied] == [
        (method, expected.audited_as, NS, expected.code.name)
    ]


# --- what the right role did (it did get past the checks) ---------------------------------------


async def test_right_roles_change_what_they_were_asked_to(world: World) -> None:
    """Spot checks that the calls the matrix makes with the right role take
    effect, so `not refused` there means the service served them."""
    api = world.api
    writer = as_caller(token("dave", f"{NS}:writer"), NS)
    reader = as_caller(token("erin", f"{NS}:reader"), NS)
    run = await api.runs.CancelRun(rpb.CancelRunRequest(run_id=world.held_run), metadata=writer)
    assert run.run.state == run_pb2.RUN_STATE_CANCELLED
    await api.threads.DeleteThread(tpb.DeleteThreadRequest(thread_id="t-done"), metadata=writer)
    await refused(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id="t-done"), metadata=reader),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
    )
    updated = await api.threads.UpdateState(_update_state(), metadata=writer)
    assert json_format.MessageToDict(updated.state.values)["value"] == 10
    await api.checkpoints.DeleteForRuns(
        cpb.DeleteForRunsRequest(run_ids=["lg-run-1"]), metadata=writer
    )
    left = await api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest(), metadata=reader)
    assert list(left.checkpoints) == []


# --- the audit log --------------------------------------------------------------------------------


async def test_denied_calls_are_audited_with_caller_namespace_and_ids(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    api = world.api
    with caplog.at_level(logging.INFO, logger="cairn.audit"):
        await refused(
            api.threads.DeleteThread(
                tpb.DeleteThreadRequest(thread_id="t-done"),
                metadata=as_caller(token("erin", f"{NS}:reader"), NS),
            ),
            PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        await refused(
            api.runs.GetRun(
                rpb.GetRunRequest(run_id=world.done_run),
                metadata=as_caller(world.served.api_keys["other-key"], NS),
            ),
            NOT_FOUND,
            "NAMESPACE_NOT_FOUND",
        )
    denied = _audit(caplog.records, "denied")
    assert [
        {k: d.get(k) for k in ("caller", "namespace", "method", "code", "thread_id", "run_id")}
        for d in denied
    ] == [
        {
            "caller": "jwt:erin",
            "namespace": NS,
            "method": "cairn.v1.ThreadService/DeleteThread",
            "code": "PERMISSION_DENIED",
            "thread_id": "t-done",
            "run_id": None,
        },
        {
            "caller": "key:other-key",
            "namespace": NS,
            "method": "cairn.v1.RunService/GetRun",
            "code": "NOT_FOUND",
            "thread_id": None,
            "run_id": world.done_run,
        },
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "cairn.audit"]
    assert "caller=jwt:erin" in lines[0] and "namespace=team-a" in lines[0]
    assert "thread_id=t-done" in lines[0]


async def test_destructive_calls_are_audited_with_caller_namespace_and_ids(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    api = world.api
    writer = as_caller(token("dave", f"{NS}:writer"), NS)
    ops = as_caller(token("ops", f"{NS}:admin"), NS)
    with caplog.at_level(logging.INFO, logger="cairn.audit"):
        await api.runs.CancelRun(rpb.CancelRunRequest(run_id=world.held_run), metadata=writer)
        await api.threads.UpdateState(_update_state(), metadata=writer)
        await api.checkpoints.PutCheckpoint(
            put_checkpoint("lg-1", "cp-2", "lg-run-2"), metadata=writer
        )
        await api.threads.DeleteThread(tpb.DeleteThreadRequest(thread_id="t-done"), metadata=writer)
        await api.threads.PruneThreads(
            tpb.PruneThreadsRequest(
                thread_ids=["t-graph", "t-held"], strategy=tpb.PRUNE_STRATEGY_KEEP_LATEST
            ),
            metadata=ops,
        )
        # Reads are not destructive: no line.
        await api.threads.GetThread(tpb.GetThreadRequest(thread_id="t-graph"), metadata=writer)
    assert _audit(caplog.records, "denied") == []
    lines = _audit(caplog.records, "destructive")
    assert [{k: v for k, v in line.items() if k not in ("event",)} for line in lines] == [
        {
            "caller": "jwt:dave",
            "namespace": NS,
            "method": "cairn.v1.RunService/CancelRun",
            "run_id": world.held_run,
        },
        {
            "caller": "jwt:dave",
            "namespace": NS,
            "method": "cairn.v1.ThreadService/UpdateState",
            "thread_id": "t-graph",
        },
        {
            "caller": "jwt:dave",
            "namespace": NS,
            "method": "cairn.v1.CheckpointService/PutCheckpoint",
            "thread_id": "lg-1",
            "checkpoint_id": "cp-2",
        },
        {
            "caller": "jwt:dave",
            "namespace": NS,
            "method": "cairn.v1.ThreadService/DeleteThread",
            "thread_id": "t-done",
        },
        {
            "caller": "jwt:ops",
            "namespace": NS,
            "method": "cairn.v1.ThreadService/PruneThreads",
            "thread_ids": "t-graph,t-held",
        },
    ]
