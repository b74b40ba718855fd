"""The limits of errors.proto's "Limits" paragraph (issue 15, items 6 and 7):
ids, names and paths longer than their limit, JSON nested deeper than 24
levels, oversized checkpoints, invalid worker hellos and reports are refused
with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED) and an ErrorInfo before
anything is recorded; a LangGraph checkpoint whose bytes do not decode
leaves its thread readable; a second server on a bound address does not
start; and after all of it a normal workflow runs and the store is intact."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from cairn import Client, Command, entrypoint, interrupt, task
from cairn._values import MAX_JSON_DEPTH, to_json, to_value
from cairn.v1 import (
    checkpoint_service_pb2,
    run_pb2,
    run_service_pb2,
    thread_service_pb2,
    worker_service_pb2,
)
from cairn_server.api.limits import MAX_ID_BYTES, MAX_PATH_BYTES
from cairn_server.server import CairnServer, ServerConfig, create_server
from cairn_server.store.typed_values import MAX_SHOWN_DEPTH
from tests.api.conftest import LIMIT, Api
from tests.api.test_bad_input import check_error, rejected

WAIT = 10.0
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

cpb = checkpoint_service_pb2
rpb = run_service_pb2
tpb = thread_service_pb2
wpb = worker_service_pb2


@task
def double(x: int) -> int:
    return 2 * x


@entrypoint()
def doubler(x: int) -> int:
    return double(x).result()


@entrypoint()
def ask(question: str) -> dict:
    return {"question": question, "answer": interrupt(question)}


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def deep_value(depth: int) -> struct_pb2.Value:
    """A Value `depth` levels deep, built without the SDK's own check."""
    return to_value(nested(depth), max_depth=None)


async def thread_count(api: Api) -> int:
    listed = await api.threads.ListThreads(tpb.ListThreadsRequest(page_size=1000), timeout=WAIT)
    return len(listed.threads)


async def bad_worker_stream(api: Api, first: wpb.ConnectRequest) -> grpc.aio.AioRpcError:
    call = api.workers.Connect()
    try:
        await call.write(first)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), WAIT)
        return caught.value
    finally:
        call.cancel()


def hello(**fields: Any) -> wpb.ConnectRequest:
    registrations = fields.pop("registrations", None) or [
        wpb.Registration(name="raw_echo", kind=wpb.TASK_KIND_ENTRYPOINT)
    ]
    return wpb.ConnectRequest(hello=wpb.WorkerHello(registrations=registrations, **fields))


# --- ids, names and paths ------------------------------------------------------------------


async def test_a_one_mebibyte_thread_id_is_id_too_long_and_nothing_runs(api: Api) -> None:
    huge = "t" * (1024 * 1024)
    request = rpb.InvokeRequest(
        thread_id=huge, target="doubler", input=to_value(2), create_thread=True
    )
    info = await rejected(api.runs.Invoke(request, timeout=WAIT), INVALID_ARGUMENT, "ID_TOO_LONG")
    assert info.metadata["limit"] == str(MAX_ID_BYTES)
    assert info.metadata["field"] == "InvokeRequest.thread_id"
    assert await thread_count(api) == 0


async def test_ids_over_the_limit_are_refused_and_listing_keeps_working(
    api: Api, client: Client, start_worker: Any
) -> None:
    await start_worker([double, doubler])
    for n in range(11):
        create = tpb.CreateThreadRequest(thread_id=f"{n}-" + "x" * 900_000)
        await rejected(
            api.threads.CreateThread(create, timeout=WAIT), INVALID_ARGUMENT, "ID_TOO_LONG"
        )
    at_limit = "a" * MAX_ID_BYTES
    run = await client.invoke(doubler, 4, thread_id=at_limit)
    assert run.output == 8
    threads = await client.list_threads()
    assert [t.thread_id for t in threads] == [at_limit]
    over = "ü" * (MAX_ID_BYTES // 2 + 1)  # 258 bytes of UTF-8 in 129 characters
    await rejected(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id=over), timeout=WAIT),
        INVALID_ARGUMENT,
        "ID_TOO_LONG",
    )


@pytest.mark.parametrize(
    "case",
    [
        "request_id",
        "checkpoint_id",
        "target",
        "metadata_key",
        "resume_map_key",
        "run_id",
        "page_token",
        "prune_thread_ids",
    ],
)
async def test_every_kind_of_id_over_its_limit_is_id_too_long(api: Api, case: str) -> None:
    long = "x" * (MAX_ID_BYTES + 1)
    calls = {
        "request_id": lambda: api.runs.Invoke(rpb.InvokeRequest(thread_id="t", request_id=long)),
        "checkpoint_id": lambda: api.threads.GetState(
            tpb.GetStateRequest(thread_id="t", checkpoint_id=long)
        ),
        "target": lambda: api.runs.Invoke(rpb.InvokeRequest(thread_id="t", target=long)),
        "metadata_key": lambda: api.threads.CreateThread(
            tpb.CreateThreadRequest(thread_id="t", metadata={long: 1})
        ),
        "resume_map_key": lambda: api.runs.Invoke(
            rpb.InvokeRequest(
                thread_id="t",
                command=run_pb2.Command(
                    resume_map=run_pb2.ResumeMap(values={long: to_value("yes")})
                ),
            )
        ),
        "run_id": lambda: api.runs.GetRun(rpb.GetRunRequest(run_id=long)),
        "page_token": lambda: api.threads.ListThreads(
            tpb.ListThreadsRequest(page_token="p" * (MAX_PATH_BYTES + 1))
        ),
        "prune_thread_ids": lambda: api.threads.PruneThreads(
            tpb.PruneThreadsRequest(thread_ids=["ok", long])
        ),
    }
    await rejected(calls[case](), INVALID_ARGUMENT, "ID_TOO_LONG")
    assert await thread_count(api) == 0


async def test_checkpoint_paths_have_the_larger_limit(api: Api) -> None:
    def put(ns: str) -> Any:
        return api.checkpoints.PutCheckpoint(
            cpb.PutCheckpointRequest(
                thread_id="lg", checkpoint_ns=ns, checkpoint_id="1", metadata_json="{}"
            ),
            timeout=WAIT,
        )

    await put("n" * MAX_PATH_BYTES)  # a deep subgraph's namespace fits
    info = await rejected(put("n" * (MAX_PATH_BYTES + 1)), INVALID_ARGUMENT, "ID_TOO_LONG")
    assert info.metadata["limit"] == str(MAX_PATH_BYTES)


async def test_a_worker_id_over_the_limit_is_refused_and_not_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = await bad_worker_stream(api, hello(worker_id="w" * (1024 * 1024)))
    check_error(error, INVALID_ARGUMENT, "ID_TOO_LONG")
    assert all(len(record.getMessage()) < 2000 for record in caplog.records)


# --- JSON depth ------------------------------------------------------------------------------


async def test_json_deeper_than_the_limit_is_json_too_deep_before_anything_is_recorded(
    api: Api,
) -> None:
    too_deep = deep_value(MAX_JSON_DEPTH + 1)
    metadata = struct_pb2.Struct()
    metadata.fields["deep"].CopyFrom(deep_value(MAX_JSON_DEPTH))  # one more level: the struct
    calls = [
        api.runs.Invoke(
            rpb.InvokeRequest(thread_id="t", target="doubler", input=too_deep, create_thread=True)
        ),
        api.threads.CreateThread(tpb.CreateThreadRequest(thread_id="t", metadata=metadata)),
        api.threads.UpdateState(tpb.UpdateStateRequest(thread_id="t", values=too_deep)),
        api.checkpoints.PutCheckpoint(
            cpb.PutCheckpointRequest(
                thread_id="lg", checkpoint_id="1", metadata_json=str(nested(30)).replace("'", '"')
            )
        ),
        api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest(filter_json="[" * 5000)),
    ]
    for call in calls:
        info = await rejected(call, INVALID_ARGUMENT, "JSON_TOO_DEEP")
        assert info.metadata["limit"] == str(MAX_JSON_DEPTH)
    assert await thread_count(api) == 0
    assert not (await api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest())).checkpoints


async def test_a_worker_result_too_deep_is_rejected_on_the_stream(api: Api) -> None:
    call = api.workers.Connect()
    try:
        await call.write(hello())
        assert (await call.read()).WhichOneof("kind") == "welcome"
        completed = wpb.TaskCompleted(task_id="some-task", result=deep_value(MAX_JSON_DEPTH + 2))
        await call.write(wpb.ConnectRequest(completed=completed))
        answer = await asyncio.wait_for(call.read(), WAIT)
        assert answer.rejected.error.reason == "JSON_TOO_DEEP"
        assert answer.rejected.task_id == "some-task"
    finally:
        call.cancel()


async def test_list_checkpoints_with_nan_in_its_filter_is_invalid_argument(api: Api) -> None:
    for text in ('{"score": NaN}', '{"score": Infinity}', '{"score": -Infinity}'):
        request = cpb.ListCheckpointsRequest(filter_json=text)
        await rejected(
            api.checkpoints.ListCheckpoints(request), INVALID_ARGUMENT, "INVALID_ARGUMENT"
        )


# --- checkpoint payloads ---------------------------------------------------------------------


async def test_checkpoint_writes_honour_the_payload_limit(api: Api) -> None:
    big = cpb.TypedValue(type="msgpack", data=b"z" * (LIMIT + 1))
    put = cpb.PutCheckpointRequest(thread_id="lg", checkpoint_id="1", metadata_json="{}")
    for request in (
        cpb.PutCheckpointRequest(
            thread_id="lg", checkpoint_id="1", metadata_json="{}", checkpoint=big
        ),
        cpb.PutCheckpointRequest(
            thread_id="lg",
            checkpoint_id="1",
            metadata_json="{}",
            blobs=[cpb.SavedBlob(channel="messages", version="1", value=big)],
        ),
    ):
        await rejected(
            api.checkpoints.PutCheckpoint(request), RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE"
        )
    assert not (await api.checkpoints.ListCheckpoints(cpb.ListCheckpointsRequest())).checkpoints
    await api.checkpoints.PutCheckpoint(put, timeout=WAIT)
    writes = cpb.PutWritesRequest(
        thread_id="lg",
        checkpoint_id="1",
        writes=[cpb.SavedWrite(task_id="t", task_path="p", idx=0, channel="c", value=big)],
    )
    await rejected(api.checkpoints.PutWrites(writes), RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE")
    found = await api.checkpoints.GetTuple(cpb.GetTupleRequest(thread_id="lg"), timeout=WAIT)
    assert found.checkpoint.checkpoint_id == "1" and not found.checkpoint.pending_writes


# --- undecodable LangGraph checkpoints --------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("json", b"\xff\x00 not json"),
        ("msgpack", b"\xc1\xc1\xc1"),
        ("msgpack", b"\xc7\x03\x00\x93\xa1"),  # an extension whose payload is cut short
        ("pickle", b"\x80\x04 anything"),
    ],
)
async def test_a_checkpoint_whose_bytes_do_not_decode_leaves_the_thread_readable(
    api: Api, kind: str, data: bytes
) -> None:
    garbage = cpb.TypedValue(type=kind, data=data)
    await api.checkpoints.PutCheckpoint(
        cpb.PutCheckpointRequest(
            thread_id="lg",
            checkpoint_id="1",
            checkpoint=garbage,
            metadata_json='{"step": 1}',
            channel_versions={"answer": "1"},
            blobs=[cpb.SavedBlob(channel="answer", version="1", value=garbage)],
        ),
        timeout=WAIT,
    )
    write = cpb.SavedWrite(
        task_id="t1", task_path="~__pregel_pull, node", idx=0, channel="answer", value=garbage
    )
    await api.checkpoints.PutWrites(
        cpb.PutWritesRequest(thread_id="lg", checkpoint_id="1", writes=[write]), timeout=WAIT
    )
    state = (await api.threads.GetState(tpb.GetStateRequest(thread_id="lg"), timeout=WAIT)).state
    shown = to_json(state.values)
    assert shown["answer"]["$blob"]["type"] == kind
    assert shown["answer"]["$blob"]["size"] == len(data)
    history = await api.threads.GetStateHistory(
        tpb.GetStateHistoryRequest(thread_id="lg"), timeout=WAIT
    )
    assert [s.config.checkpoint_id for s in history.states] == ["1"]


async def test_a_langgraph_value_nested_past_the_limit_shows_a_marker(api: Api) -> None:
    deep_json = str(nested(60)).replace("'", '"').encode()
    value = cpb.TypedValue(type="json", data=deep_json)
    await api.checkpoints.PutCheckpoint(
        cpb.PutCheckpointRequest(
            thread_id="lg",
            checkpoint_id="1",
            metadata_json="{}",
            channel_versions={"deep": "1"},
            blobs=[cpb.SavedBlob(channel="deep", version="1", value=value)],
        ),
        timeout=WAIT,
    )
    state = (await api.threads.GetState(tpb.GetStateRequest(thread_id="lg"), timeout=WAIT)).state
    shown: Any = to_json(state.values)["deep"]
    depth = 0
    while isinstance(shown, dict | list) and "$too_deep" not in shown:
        shown = shown["k"] if isinstance(shown, dict) else shown[0]
        depth += 1
    assert depth == MAX_SHOWN_DEPTH - 1
    assert shown["$too_deep"].startswith("[")


# --- worker hellos and reports -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"max_concurrent_tasks": -1},
        {"max_concurrent_entrypoints": -5},
        {"backoff_factor": float("nan")},
        {"backoff_factor": float("inf")},
        {"backoff_factor": -2.0},
        {"max_attempts": -1},
        {"initial_interval": -1},
    ],
    ids=str,
)
async def test_an_invalid_hello_is_invalid_argument(api: Api, fields: dict[str, Any]) -> None:
    policy = run_pb2.RetryPolicy()
    hello_fields: dict[str, Any] = {}
    for name, setting in fields.items():
        if name.startswith("max_concurrent"):
            hello_fields[name] = setting
        elif name == "initial_interval":
            policy.initial_interval.FromSeconds(setting)
        else:
            setattr(policy, name, setting)
    registration = wpb.Registration(name="raw_task", kind=wpb.TASK_KIND_TASK, retry_policy=policy)
    error = await bad_worker_stream(api, hello(registrations=[registration], **hello_fields))
    check_error(error, INVALID_ARGUMENT, "INVALID_ARGUMENT")


def duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


# Final reports of an entrypoint that the service cannot take, by task id.
BAD_REPORTS: dict[str, Callable[[str], wpb.ConnectRequest]] = {
    "interrupt at a negative index": lambda task_id: wpb.ConnectRequest(
        interrupted=wpb.TaskInterrupted(task_id=task_id, index=-1, value=to_value("?"))
    ),
    "interrupt with a negative timeout": lambda task_id: wpb.ConnectRequest(
        interrupted=wpb.TaskInterrupted(
            task_id=task_id, index=0, value=to_value("?"), timeout=duration(-5)
        )
    ),
    "interrupt timing out after the year 9999": lambda task_id: wpb.ConnectRequest(
        interrupted=wpb.TaskInterrupted(
            task_id=task_id, index=0, value=to_value("?"), timeout=duration(315_576_000_000)
        )
    ),
    "sleep with no due time": lambda task_id: wpb.ConnectRequest(
        sleeping=wpb.TaskSleeping(task_id=task_id, index=0)
    ),
    "sleep at a negative index": lambda task_id: wpb.ConnectRequest(
        sleeping=wpb.TaskSleeping(task_id=task_id, index=-2, sleep_duration=duration(1))
    ),
    "sleep of a negative duration": lambda task_id: wpb.ConnectRequest(
        sleeping=wpb.TaskSleeping(task_id=task_id, index=0, sleep_duration=duration(-1))
    ),
    "sleep ending after the year 9999": lambda task_id: wpb.ConnectRequest(
        sleeping=wpb.TaskSleeping(
            task_id=task_id, index=0, sleep_duration=duration(315_576_000_000)
        )
    ),
    "sleep until a time no timestamp holds": lambda task_id: wpb.ConnectRequest(
        sleeping=wpb.TaskSleeping(
            task_id=task_id, index=0, wake_time=timestamp_pb2.Timestamp(seconds=10**12)
        )
    ),
}


@pytest.mark.parametrize("case", list(BAD_REPORTS))
async def test_a_report_the_service_cannot_take_is_rejected_and_fails_its_task(
    api: Api, case: str
) -> None:
    call = api.workers.Connect()
    try:
        await call.write(hello())
        assert (await call.read()).WhichOneof("kind") == "welcome"
        thread_id = f"raw-{len(case)}-{case.split()[0]}"
        run = asyncio.ensure_future(
            api.runs.Invoke(
                rpb.InvokeRequest(
                    thread_id=thread_id, target="raw_echo", input=to_value(1), create_thread=True
                ),
                timeout=30,
            )
        )
        assignment = (await asyncio.wait_for(call.read(), WAIT)).assignment
        await call.write(BAD_REPORTS[case](assignment.task_id))
        answer = await asyncio.wait_for(call.read(), WAIT)
        assert answer.rejected.error.reason == "INVALID_ARGUMENT"
        assert answer.rejected.task_id == assignment.task_id
        # The task fails with the reason instead of staying held, and the
        # run ends rather than waiting for a report that never comes.
        dropped = await asyncio.wait_for(call.read(), WAIT)
        assert dropped.cancel.task_id == assignment.task_id
        response = await asyncio.wait_for(run, WAIT)
        assert response.run.state == run_pb2.RUN_STATE_FAILED
        assert response.run.error.type == "InvalidArgumentError"
        assert not response.run.interrupts
    finally:
        call.cancel()


# --- the server protects itself -------------------------------------------------------------


async def test_a_second_server_on_a_bound_address_refuses_to_start(
    server: tuple[CairnServer, str], tmp_path: pathlib.Path, client: Client
) -> None:
    address = server[1]
    config = ServerConfig(address=address, store_url=f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(OSError, match=address):
        await create_server(config)
    assert await client.list_threads() == []  # the first one still serves


# --- after all of it ----------------------------------------------------------------------------


async def test_after_bad_requests_a_workflow_runs_and_the_store_is_intact(
    api: Api, client: Client, start_worker: Any
) -> None:
    await start_worker([double, doubler, ask])
    before = await client.invoke(doubler, 1, thread_id="before")
    assert before.output == 2
    await client.invoke(ask, "ok?", thread_id="asking")
    # A barrage of every kind of bad request.
    long = "x" * (MAX_ID_BYTES + 1)
    bad_calls = [
        api.runs.Invoke(rpb.InvokeRequest(thread_id=long, target="doubler", input=to_value(1))),
        api.runs.Invoke(
            rpb.InvokeRequest(thread_id="before", target="doubler", input=deep_value(30))
        ),
        api.threads.UpdateState(tpb.UpdateStateRequest(thread_id="before", values=deep_value(30))),
        api.runs.Invoke(
            rpb.InvokeRequest(
                thread_id="asking",
                target="ask",
                command=run_pb2.Command(resume_map=run_pb2.ResumeMap(values={long: to_value(1)})),
            )
        ),
        api.threads.CreateThread(tpb.CreateThreadRequest(thread_id=long)),
        api.checkpoints.PutCheckpoint(
            cpb.PutCheckpointRequest(
                thread_id="before",
                checkpoint_id="x",
                metadata_json="{}",
                checkpoint=cpb.TypedValue(type="json", data=b"z" * (LIMIT + 1)),
            )
        ),
    ]
    for call in bad_calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call, WAIT)
        assert caught.value.code() in (INVALID_ARGUMENT, RESOURCE_EXHAUSTED)
    await bad_worker_stream(api, hello(worker_id=long))
    # A normal workflow afterwards, and every thread readable.
    resumed = await client.invoke(ask, Command(resume="yes"), thread_id="asking")
    assert resumed.output == {"question": "ok?", "answer": "yes"}
    after = await client.invoke(doubler, 21, thread_id="after")
    assert after.output == 42
    threads = await client.list_threads()
    assert sorted(t.thread_id for t in threads) == ["after", "asking", "before"]
    for thread in threads:
        state = await client.get_state(thread.thread_id)
        assert state.values is not None
        assert await client.get_state_history(thread.thread_id)
        runs = await client.list_runs(thread.thread_id)
        assert runs and all(r.state.value in ("succeeded", "interrupted") for r in runs)
        assert runs[0].state.value == "succeeded"


def test_the_store_shows_values_as_deep_as_the_api_carries() -> None:
    assert MAX_SHOWN_DEPTH == MAX_JSON_DEPTH
