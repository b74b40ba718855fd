"""Bad requests: each one is answered with the right status code and a
google.rpc.ErrorInfo (domain cairn.dev, the right reason, the offending ids),
the server keeps serving, and the thread it was about is left as it was."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2

from cairn import (
    Client,
    Command,
    InvalidArgumentError,
    ResourceExhaustedError,
    RunNotFoundError,
    RunState,
    ThreadBusyError,
    ThreadNotFoundError,
    entrypoint,
    interrupt,
    task,
)
from cairn._errors import error_info
from cairn._values import to_json, to_value
from cairn.v1 import (
    run_pb2,
    run_service_pb2,
    thread_pb2,
    thread_service_pb2,
    worker_service_pb2,
)
from tests.api.conftest import LIMIT, Api

WAIT = 10.0
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

rpb = run_service_pb2
tpb = thread_service_pb2
wpb = worker_service_pb2


# --- the functions the in-process worker serves -------------------------------------------


@task
def double(x: int) -> int:
    return 2 * x


@entrypoint()
def doubler(x: int) -> int:
    return double(x).result()


@entrypoint()
def ask(question: str) -> dict:
    answer = interrupt({"question": question})
    return {"question": question, "answer": answer}


@task
def approve(name: str) -> str:
    return f"{name}: {interrupt(f'approve {name}?')}"


@entrypoint()
def approve_both(names: list[str]) -> list[str]:
    futures = [approve(name) for name in names]  # both calls are in flight at once
    return [future.result() for future in futures]


gates: dict[str, asyncio.Event] = {}


@task
async def wait_for_gate(x: int) -> int:
    gates["started"].set()
    await gates["release"].wait()
    return x + 1


@entrypoint()
async def gated(x: int) -> int:
    return await wait_for_gate(x)


FUNCTIONS = [double, doubler, ask, approve, approve_both, wait_for_gate, gated]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def worker(start_worker) -> None:
    gates["started"], gates["release"] = asyncio.Event(), asyncio.Event()
    await start_worker(FUNCTIONS)


# --- helpers --------------------------------------------------------------------------------


def check_error(
    error: grpc.aio.AioRpcError, code: grpc.StatusCode, reason: str, *ids: str
) -> error_details_pb2.ErrorInfo:
    """The status has `code` and an ErrorInfo with `reason` whose metadata
    names every id in `ids`."""
    assert error.code() == code, f"{error.code()}: {error.details()}"
    info = error_info(error)
    assert info is not None, f"no ErrorInfo detail on {error.code()}: {error.details()}"
    assert info.domain == "cairn.dev"
    assert info.reason == reason, f"{info.reason}: {error.details()}"
    for offending in ids:
        assert any(offending in value for value in info.metadata.values()), (
            f"{offending!r} not in the ErrorInfo metadata {dict(info.metadata)}"
        )
    return info


async def rejected(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str, *ids: str
) -> error_details_pb2.ErrorInfo:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call, WAIT)
    return check_error(caught.value, code, reason, *ids)


async def drain(call: Any) -> list[Any]:
    """All messages of a server stream."""
    return [message async for message in call]


def value(data: Any) -> struct_pb2.Value:
    return to_value(data)


def invoke(thread_id: str, target: str = "", **fields: Any) -> rpb.InvokeRequest:
    return rpb.InvokeRequest(thread_id=thread_id, target=target, **fields)


def resume(data: Any) -> run_pb2.Command:
    return run_pb2.Command(resume=to_value(data))


@dataclass(frozen=True)
class ThreadView:
    """What a user checks to see that a thread did not change."""

    status: int
    update_time: int
    checkpoint_id: str
    interrupts: list[tuple[str, Any]]
    run_ids: list[str]


async def view(api: Api, thread_id: str) -> ThreadView:
    thread = (await api.threads.GetThread(tpb.GetThreadRequest(thread_id=thread_id))).thread
    state = (await api.threads.GetState(tpb.GetStateRequest(thread_id=thread_id))).state
    runs = (await api.runs.ListRuns(rpb.ListRunsRequest(thread_id=thread_id))).runs
    return ThreadView(
        status=thread.status,
        update_time=thread.update_time.ToNanoseconds(),
        checkpoint_id=state.config.checkpoint_id,
        interrupts=[(i.id, to_json(i.value)) for i in state.interrupts],
        run_ids=[r.run_id for r in runs],
    )


async def still_serving(api: Api) -> None:
    """Health says SERVING and a normal run on a new thread succeeds."""
    health = await api.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    response = await api.runs.Invoke(
        invoke(f"ok-{uuid.uuid4()}", "doubler", input=value(21), create_thread=True),
        timeout=WAIT,
    )
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert to_json(response.run.output) == 42


async def interrupted_thread(api: Api, thread_id: str) -> rpb.InvokeResponse:
    response = await api.runs.Invoke(
        invoke(thread_id, "ask", input=value("color?"), create_thread=True), timeout=WAIT
    )
    assert response.run.state == run_pb2.RUN_STATE_INTERRUPTED
    return response


async def finished_thread(api: Api, thread_id: str) -> None:
    response = await api.runs.Invoke(
        invoke(thread_id, "doubler", input=value(1), create_thread=True), timeout=WAIT
    )
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED


async def resume_succeeds(api: Api, thread_id: str, answer: Any) -> None:
    response = await api.runs.Invoke(invoke(thread_id, command=resume(answer)), timeout=WAIT)
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert to_json(response.run.output) == {"question": "color?", "answer": answer}


# --- unknown targets, threads and runs ----------------------------------------------------


async def test_unknown_entrypoint_is_target_not_found_and_creates_no_thread(
    api: Api, worker: None
) -> None:
    await rejected(
        api.runs.Invoke(
            invoke("fresh", "never_registered", input=value({"a": 1}), create_thread=True)
        ),
        NOT_FOUND,
        "TARGET_NOT_FOUND",
        "never_registered",
    )
    await rejected(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id="fresh")),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        "fresh",
    )
    await still_serving(api)


async def test_unknown_entrypoint_on_an_interrupted_thread_leaves_it_interrupted(
    api: Api, worker: None
) -> None:
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    assert before.status == thread_pb2.THREAD_STATUS_INTERRUPTED and before.interrupts
    await rejected(
        api.runs.Invoke(invoke("t", "never_registered", input=value(1))),
        NOT_FOUND,
        "TARGET_NOT_FOUND",
        "never_registered",
    )
    assert await view(api, "t") == before
    await still_serving(api)
    await resume_succeeds(api, "t", "blue")


async def test_unknown_thread_is_thread_not_found_everywhere(api: Api, worker: None) -> None:
    ghost = "no-such-thread"
    await rejected(
        api.runs.Invoke(invoke(ghost, "doubler", input=value(1), create_thread=False)),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        ghost,
    )
    await rejected(
        drain(
            api.runs.Stream(rpb.StreamRequest(thread_id=ghost, target="doubler", input=value(1)))
        ),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        ghost,
    )
    await rejected(
        api.runs.Invoke(invoke(ghost, command=resume(True))), NOT_FOUND, "THREAD_NOT_FOUND", ghost
    )
    await rejected(
        api.threads.GetState(tpb.GetStateRequest(thread_id=ghost)),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        ghost,
    )
    await rejected(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id=ghost)),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        ghost,
    )
    await rejected(
        api.runs.ListRuns(rpb.ListRunsRequest(thread_id=ghost)),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
        ghost,
    )
    # None of the calls created it.
    listed = await api.threads.ListThreads(tpb.ListThreadsRequest())
    assert ghost not in [t.thread_id for t in listed.threads]
    await still_serving(api)


async def test_unknown_run_is_run_not_found(api: Api, worker: None) -> None:
    ghost = str(uuid.uuid4())
    await rejected(
        api.runs.GetRun(rpb.GetRunRequest(run_id=ghost)), NOT_FOUND, "RUN_NOT_FOUND", ghost
    )
    await rejected(
        api.runs.CancelRun(rpb.CancelRunRequest(run_id=ghost)), NOT_FOUND, "RUN_NOT_FOUND", ghost
    )
    await rejected(
        drain(api.runs.JoinRun(rpb.JoinRunRequest(run_id=ghost))),
        NOT_FOUND,
        "RUN_NOT_FOUND",
        ghost,
    )
    await still_serving(api)


async def test_cancelling_a_finished_run_is_run_finished(api: Api, worker: None) -> None:
    await finished_thread(api, "done")
    before = await view(api, "done")
    [run_id] = before.run_ids
    await rejected(
        api.runs.CancelRun(rpb.CancelRunRequest(run_id=run_id)),
        FAILED_PRECONDITION,
        "RUN_FINISHED",
        run_id,
    )
    run = (await api.runs.GetRun(rpb.GetRunRequest(run_id=run_id))).run
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert await view(api, "done") == before
    await still_serving(api)


# --- values that JSON cannot carry -------------------------------------------------------------


def nan_value() -> struct_pb2.Value:
    return struct_pb2.Value(number_value=math.nan)


def struct_with_empty_field() -> struct_pb2.Value:
    bad = to_value({"ok": 1})
    bad.struct_value.fields["empty"].CopyFrom(struct_pb2.Value())  # no kind set
    return bad


def list_with_infinity() -> struct_pb2.Value:
    bad = to_value([1, 2])
    bad.list_value.values.add(number_value=math.inf)
    return bad


@pytest.mark.parametrize(
    "bad", [nan_value, struct_with_empty_field, list_with_infinity], ids=lambda f: f.__name__
)
async def test_input_that_is_not_json_is_invalid_argument(api: Api, worker: None, bad: Any) -> None:
    await finished_thread(api, "t")
    before = await view(api, "t")
    await rejected(
        api.runs.Invoke(invoke("t", "doubler", input=bad())), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    await rejected(
        api.runs.Invoke(invoke("new", "doubler", input=bad(), create_thread=True)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert await view(api, "t") == before
    await rejected(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id="new")),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
    )
    await still_serving(api)


@pytest.mark.parametrize(
    "bad", [nan_value, struct_with_empty_field, list_with_infinity], ids=lambda f: f.__name__
)
async def test_resume_value_that_is_not_json_is_invalid_argument(
    api: Api, worker: None, bad: Any
) -> None:
    first = await interrupted_thread(api, "t")
    before = await view(api, "t")
    await rejected(
        api.runs.Invoke(invoke("t", command=run_pb2.Command(resume=bad()))),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    [pending] = first.run.interrupts
    by_id = run_pb2.Command(resume_map=run_pb2.ResumeMap(values={pending.id: bad()}))
    await rejected(
        api.runs.Invoke(invoke("t", command=by_id)), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert await view(api, "t") == before
    await still_serving(api)
    await resume_succeeds(api, "t", "green")


async def test_metadata_that_is_not_json_is_invalid_argument(api: Api, worker: None) -> None:
    await finished_thread(api, "t")
    before = await view(api, "t")
    metadata = struct_pb2.Struct()
    metadata.fields["score"].number_value = math.nan
    await rejected(
        api.runs.Invoke(invoke("t", "doubler", input=value(2), metadata=metadata)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert await view(api, "t") == before
    await still_serving(api)


async def test_input_and_command_together_are_invalid_argument(api: Api, worker: None) -> None:
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    await rejected(
        api.runs.Invoke(invoke("t", "ask", input=value("again?"), command=resume("red"))),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    await rejected(
        drain(
            api.runs.Stream(
                rpb.StreamRequest(
                    thread_id="t", target="ask", input=value("again?"), command=resume("red")
                )
            )
        ),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert await view(api, "t") == before
    await still_serving(api)
    await resume_succeeds(api, "t", "red")


async def test_negative_page_sizes_are_invalid_argument(api: Api, worker: None) -> None:
    await finished_thread(api, "t")
    await rejected(
        api.threads.ListThreads(tpb.ListThreadsRequest(page_size=-1)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    await rejected(
        api.runs.ListRuns(rpb.ListRunsRequest(thread_id="t", page_size=-5)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    await rejected(
        api.threads.GetStateHistory(tpb.GetStateHistoryRequest(thread_id="t", limit=-1)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    listed = await api.threads.ListThreads(tpb.ListThreadsRequest(page_size=0))
    assert "t" in [t.thread_id for t in listed.threads]
    await still_serving(api)


def session_without_start(api: Api) -> Any:
    return drain(api.runs.Session(iter([rpb.SessionRequest(resume=resume("x"))])))


MALFORMED = {
    "no_thread_id": lambda api: api.runs.Invoke(invoke("", "ask", input=value("q"))),
    "input_without_target": lambda api: api.runs.Invoke(invoke("t", "", input=value("q"))),
    "command_without_resume": lambda api: api.runs.Invoke(invoke("t", command=run_pb2.Command())),
    "empty_resume_map": lambda api: api.runs.Invoke(
        invoke("t", command=run_pb2.Command(resume_map=run_pb2.ResumeMap()))
    ),
    "resume_naming_another_entrypoint": lambda api: api.runs.Invoke(
        invoke("t", "doubler", command=resume("x"))
    ),
    "unknown_stream_mode": lambda api: drain(
        api.runs.Stream(
            rpb.StreamRequest(
                thread_id="t",
                command=resume("x"),
                stream_modes=[run_pb2.STREAM_MODE_UPDATES, 99],  # type: ignore[list-item]
            )
        )
    ),
    "unknown_durability": lambda api: api.runs.Invoke(
        invoke("t", command=resume("x"), durability=99)  # type: ignore[arg-type]
    ),
    "session_without_start": session_without_start,
    "join_without_run_id": lambda api: drain(api.runs.JoinRun(rpb.JoinRunRequest(run_id=""))),
    "get_state_without_thread_id": lambda api: api.threads.GetState(tpb.GetStateRequest()),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_requests_are_invalid_argument(api: Api, worker: None, case: str) -> None:
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    await rejected(MALFORMED[case](api), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert await view(api, "t") == before
    await still_serving(api)
    await resume_succeeds(api, "t", "gold")


async def test_retry_without_unfinished_run_is_nothing_to_resume(api: Api, worker: None) -> None:
    await finished_thread(api, "t")
    created = await api.threads.CreateThread(tpb.CreateThreadRequest(thread_id="empty"))
    assert created.thread.thread_id == "empty"
    for thread_id in ("t", "empty"):
        before = await view(api, thread_id)
        await rejected(
            api.runs.Invoke(invoke(thread_id)),  # neither input nor command
            FAILED_PRECONDITION,
            "NOTHING_TO_RESUME",
            thread_id,
        )
        assert await view(api, thread_id) == before
    await still_serving(api)


async def test_unknown_checkpoint_is_checkpoint_not_found(api: Api, worker: None) -> None:
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    ghost = str(uuid.uuid4())
    await rejected(
        api.threads.GetState(tpb.GetStateRequest(thread_id="t", checkpoint_id=ghost)),
        NOT_FOUND,
        "CHECKPOINT_NOT_FOUND",
        ghost,
    )
    assert await view(api, "t") == before
    await still_serving(api)


async def test_existing_thread_id_is_thread_already_exists(api: Api, worker: None) -> None:
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    await rejected(
        api.threads.CreateThread(tpb.CreateThreadRequest(thread_id="t")),
        grpc.StatusCode.ALREADY_EXISTS,
        "THREAD_ALREADY_EXISTS",
        "t",
    )
    assert await view(api, "t") == before
    await still_serving(api)
    await resume_succeeds(api, "t", "pink")


async def test_retried_create_thread_with_same_request_id_is_not_already_exists(
    api: Api, worker: None
) -> None:
    request = tpb.CreateThreadRequest(thread_id="once", request_id="create-1")
    created = await api.threads.CreateThread(request, timeout=WAIT)
    # A different request for the same id is refused ...
    await rejected(
        api.threads.CreateThread(tpb.CreateThreadRequest(thread_id="once", request_id="other")),
        grpc.StatusCode.ALREADY_EXISTS,
        "THREAD_ALREADY_EXISTS",
        "once",
    )
    # ... the retried one gets the thread back.
    again = await api.threads.CreateThread(request, timeout=WAIT)
    assert again.thread.thread_id == created.thread.thread_id == "once"


def unknown_thread_status(api: Api) -> Any:
    return api.threads.ListThreads(tpb.ListThreadsRequest(status=99))  # type: ignore[arg-type]


def forged_thread_page_token(api: Api) -> Any:
    return api.threads.ListThreads(tpb.ListThreadsRequest(page_token="not-a-token"))


def forged_run_page_token(api: Api) -> Any:
    return api.runs.ListRuns(rpb.ListRunsRequest(thread_id="t", page_token="not-a-token"))


def unknown_run_state(api: Api) -> Any:
    return api.runs.ListRuns(rpb.ListRunsRequest(thread_id="t", state=99))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "listing",
    [unknown_thread_status, forged_thread_page_token, forged_run_page_token, unknown_run_state],
    ids=lambda f: f.__name__,
)
async def test_bad_listing_requests_are_invalid_argument(
    api: Api, worker: None, listing: Any
) -> None:
    await finished_thread(api, "t")
    before = await view(api, "t")
    await rejected(listing(api), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert await view(api, "t") == before
    await still_serving(api)


# --- resumes that do not fit the thread -----------------------------------------------------


async def test_resume_without_pending_interrupt_is_no_pending_interrupt(
    api: Api, worker: None
) -> None:
    await finished_thread(api, "t")
    before = await view(api, "t")
    assert before.status == thread_pb2.THREAD_STATUS_IDLE and not before.interrupts
    await rejected(
        api.runs.Invoke(invoke("t", command=resume(True))),
        FAILED_PRECONDITION,
        "NO_PENDING_INTERRUPT",
        "t",
    )
    assert await view(api, "t") == before
    await still_serving(api)


async def test_resume_of_unknown_interrupt_id_is_interrupt_not_found(
    api: Api, worker: None
) -> None:
    first = await interrupted_thread(api, "t")
    before = await view(api, "t")
    made_up = str(uuid.uuid4())
    command = run_pb2.Command(resume_map=run_pb2.ResumeMap(values={made_up: value("x")}))
    await rejected(
        api.runs.Invoke(invoke("t", command=command)), NOT_FOUND, "INTERRUPT_NOT_FOUND", made_up
    )
    assert await view(api, "t") == before
    await still_serving(api)
    # The real id still resumes it.
    [pending] = first.run.interrupts
    command = run_pb2.Command(resume_map=run_pb2.ResumeMap(values={pending.id: value("teal")}))
    response = await api.runs.Invoke(invoke("t", command=command), timeout=WAIT)
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert to_json(response.run.output) == {"question": "color?", "answer": "teal"}


async def test_plain_resume_with_two_pending_interrupts_is_ambiguous(
    api: Api, worker: None
) -> None:
    first = await api.runs.Invoke(
        invoke("two", "approve_both", input=value(["a", "b"]), create_thread=True),
        timeout=WAIT,
    )
    assert first.run.state == run_pb2.RUN_STATE_INTERRUPTED
    pending = {to_json(i.value): i.id for i in first.run.interrupts}
    assert set(pending) == {"approve a?", "approve b?"}
    before = await view(api, "two")
    assert sorted(id for id, _ in before.interrupts) == sorted(pending.values())

    await rejected(
        api.runs.Invoke(invoke("two", command=resume(True))),
        INVALID_ARGUMENT,
        "AMBIGUOUS_RESUME",
        *pending.values(),
    )
    assert await view(api, "two") == before
    await still_serving(api)

    command = run_pb2.Command(
        resume_map=run_pb2.ResumeMap(
            values={pending["approve a?"]: value("yes"), pending["approve b?"]: value("no")}
        )
    )
    done = await api.runs.Invoke(invoke("two", command=command), timeout=WAIT)
    assert done.run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert to_json(done.run.output) == ["a: yes", "b: no"]


# --- a busy thread -------------------------------------------------------------------------------


async def test_second_run_on_a_busy_thread_is_thread_busy(api: Api, worker: None) -> None:
    await finished_thread(api, "busy")
    first = asyncio.ensure_future(
        api.runs.Invoke(invoke("busy", "gated", input=value(1)), timeout=30)
    )
    try:
        await asyncio.wait_for(gates["started"].wait(), WAIT)
        before = await view(api, "busy")
        assert before.status == thread_pb2.THREAD_STATUS_BUSY
        await rejected(
            api.runs.Invoke(invoke("busy", "gated", input=value(2))),
            FAILED_PRECONDITION,
            "THREAD_BUSY",
            "busy",
        )
        await rejected(
            api.runs.Invoke(invoke("busy", command=resume(True))),
            FAILED_PRECONDITION,
            "THREAD_BUSY",
            "busy",
        )
        await rejected(
            api.threads.DeleteThread(tpb.DeleteThreadRequest(thread_id="busy")),
            FAILED_PRECONDITION,
            "THREAD_BUSY",
            "busy",
        )
        assert await view(api, "busy") == before
        await still_serving(api)
        assert not first.done()
    finally:
        gates["release"].set()
    response = await asyncio.wait_for(first, WAIT)
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert to_json(response.run.output) == 2
    after = await view(api, "busy")
    assert after.status == thread_pb2.THREAD_STATUS_IDLE
    assert after.run_ids == before.run_ids  # the rejected calls left no runs behind
    assert after.run_ids[0] == response.run.run_id


async def test_two_concurrent_starts_on_a_new_thread_one_runs_one_is_thread_busy(
    api: Api, worker: None
) -> None:
    first, second = (
        asyncio.ensure_future(
            api.runs.Invoke(invoke("race", "gated", input=value(n), create_thread=True), timeout=30)
        )
        for n in (1, 2)
    )
    try:
        await asyncio.wait_for(gates["started"].wait(), WAIT)
        done, _ = await asyncio.wait(
            [first, second], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED
        )
        [loser] = done
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            loser.result()
        check_error(caught.value, FAILED_PRECONDITION, "THREAD_BUSY", "race")
    finally:
        gates["release"].set()
    winner = second if loser is first else first
    response = await asyncio.wait_for(winner, WAIT)
    assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
    after = await view(api, "race")
    assert after.run_ids == [response.run.run_id]
    assert after.status == thread_pb2.THREAD_STATUS_IDLE


# --- oversized payloads ------------------------------------------------------------------------


async def test_oversized_input_and_resume_are_payload_too_large(api: Api, worker: None) -> None:
    big = "x" * (LIMIT + 1024)
    await rejected(
        api.runs.Invoke(invoke("big", "doubler", input=value(big), create_thread=True)),
        RESOURCE_EXHAUSTED,
        "PAYLOAD_TOO_LARGE",
    )
    await rejected(
        api.threads.GetThread(tpb.GetThreadRequest(thread_id="big")),
        NOT_FOUND,
        "THREAD_NOT_FOUND",
    )
    await interrupted_thread(api, "t")
    before = await view(api, "t")
    await rejected(
        api.runs.Invoke(invoke("t", command=resume({"answer": big}))),
        RESOURCE_EXHAUSTED,
        "PAYLOAD_TOO_LARGE",
    )
    assert await view(api, "t") == before
    await still_serving(api)
    # Just under the limit is fine.
    await resume_succeeds(api, "t", "y" * (LIMIT - 1024))


# --- idempotency keys ---------------------------------------------------------------------------


async def test_request_id_reused_for_a_different_request_is_already_exists(
    api: Api, worker: None
) -> None:
    first = await api.runs.Invoke(
        invoke("idem", "doubler", input=value(5), request_id="req-1", create_thread=True),
        timeout=WAIT,
    )
    assert to_json(first.run.output) == 10
    # The same request again attaches to the first run.
    again = await api.runs.Invoke(
        invoke("idem", "doubler", input=value(5), request_id="req-1", create_thread=True),
        timeout=WAIT,
    )
    assert again.run.run_id == first.run.run_id
    before = await view(api, "idem")
    await rejected(
        api.runs.Invoke(invoke("idem", "doubler", input=value(6), request_id="req-1")),
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
        "req-1",
    )
    assert await view(api, "idem") == before
    await still_serving(api)


# --- the worker stream --------------------------------------------------------------------------


async def read(call: Any) -> wpb.ConnectResponse:
    message = await asyncio.wait_for(call.read(), WAIT)
    assert message is not grpc.aio.EOF, "the server closed the worker stream"
    return message


def hello(*entrypoints: str) -> wpb.ConnectRequest:
    return wpb.ConnectRequest(
        hello=wpb.WorkerHello(
            registrations=[
                wpb.Registration(name=name, kind=wpb.TASK_KIND_ENTRYPOINT) for name in entrypoints
            ],
            sdk_language="raw",
        )
    )


def check_rejection(message: wpb.ConnectResponse, task_id: str, reason: str, code: str) -> None:
    assert message.WhichOneof("kind") == "rejected", message
    assert message.rejected.task_id == task_id
    assert message.rejected.error.reason == reason
    assert message.rejected.error.code == code
    assert message.rejected.error.metadata["task_id"] == task_id


async def test_results_for_tasks_a_worker_does_not_hold_are_rejected_on_an_open_stream(
    api: Api,
) -> None:
    call = api.workers.Connect()
    try:
        await call.write(hello("raw_echo"))
        welcome = await read(call)
        assert welcome.WhichOneof("kind") == "welcome"
        assert welcome.welcome.max_payload_bytes == LIMIT

        made_up = str(uuid.uuid4())
        completed = wpb.TaskCompleted(task_id=made_up, result=value("forged"))
        await call.write(wpb.ConnectRequest(completed=completed))
        check_rejection(await read(call), made_up, "TASK_NOT_HELD", "FAILED_PRECONDITION")

        another = str(uuid.uuid4())
        interrupted = wpb.TaskInterrupted(task_id=another, value=value("forged"))
        await call.write(wpb.ConnectRequest(interrupted=interrupted))
        check_rejection(await read(call), another, "TASK_NOT_HELD", "FAILED_PRECONDITION")

        # The stream is still open: a real run is assigned to this worker.
        run = asyncio.ensure_future(
            api.runs.Invoke(
                invoke("raw", "raw_echo", input=value({"n": 7}), create_thread=True), timeout=30
            )
        )
        message = await read(call)
        assert message.WhichOneof("kind") == "assignment", message
        assignment = message.assignment
        assert (assignment.name, assignment.thread_id) == ("raw_echo", "raw")
        assert to_json(assignment.input) == {"n": 7}

        # An oversized result is rejected, and the task fails with the reason
        # rather than staying held (its run would wait for a result that
        # never comes); the worker is told to drop it.
        oversized = wpb.TaskCompleted(task_id=assignment.task_id, result=value("z" * (LIMIT + 1)))
        await call.write(wpb.ConnectRequest(completed=oversized))
        check_rejection(
            await read(call), assignment.task_id, "PAYLOAD_TOO_LARGE", "RESOURCE_EXHAUSTED"
        )
        dropped = await read(call)
        assert dropped.WhichOneof("kind") == "cancel", dropped
        assert dropped.cancel.task_id == assignment.task_id
        response = await asyncio.wait_for(run, WAIT)
        assert response.run.state == run_pb2.RUN_STATE_FAILED
        assert response.run.error.type == "PayloadTooLargeError"
        assert not response.run.error.retryable

        # A result sent after that: the task is no longer held.
        done = wpb.TaskCompleted(task_id=assignment.task_id, result=value({"echo": 7}))
        await call.write(wpb.ConnectRequest(completed=done))
        check_rejection(
            await read(call), assignment.task_id, "TASK_NOT_HELD", "FAILED_PRECONDITION"
        )
        thread = (await api.threads.GetThread(tpb.GetThreadRequest(thread_id="raw"))).thread
        assert thread.status == thread_pb2.THREAD_STATUS_ERROR
    finally:
        call.cancel()
    health = await api.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_worker_stream_without_hello_is_hello_required(api: Api, worker: None) -> None:
    call = api.workers.Connect()
    completed = wpb.TaskCompleted(task_id=str(uuid.uuid4()), result=value(1))
    await call.write(wpb.ConnectRequest(completed=completed))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), WAIT)
    check_error(caught.value, FAILED_PRECONDITION, "HELLO_REQUIRED")

    call = api.workers.Connect()
    await call.done_writing()  # no message at all
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), WAIT)
    check_error(caught.value, FAILED_PRECONDITION, "HELLO_REQUIRED")
    await still_serving(api)


async def connect(api: Api, *entrypoints: str) -> Any:
    call = api.workers.Connect()
    await call.write(hello(*entrypoints))
    assert (await read(call)).WhichOneof("kind") == "welcome"
    return call


async def test_reports_on_a_task_another_worker_holds_are_rejected(api: Api) -> None:
    holder = await connect(api, "raw_echo")
    other = await connect(api, "other_entrypoint")
    try:
        run = asyncio.ensure_future(
            api.runs.Invoke(
                invoke("held", "raw_echo", input=value("hi"), create_thread=True), timeout=30
            )
        )
        message = await read(holder)
        assert message.WhichOneof("kind") == "assignment", message
        task_id = message.assignment.task_id

        forged = [
            wpb.ConnectRequest(completed=wpb.TaskCompleted(task_id=task_id, result=value("x"))),
            wpb.ConnectRequest(failed=wpb.TaskFailed(task_id=task_id)),
            wpb.ConnectRequest(interrupted=wpb.TaskInterrupted(task_id=task_id, value=value(1))),
            wpb.ConnectRequest(suspended=wpb.TaskSuspended(task_id=task_id)),
            wpb.ConnectRequest(
                schedule=wpb.ScheduleTask(
                    parent_task_id=task_id, index=0, name="raw_echo", input=value(1)
                )
            ),
            wpb.ConnectRequest(
                chunk=wpb.TaskStreamChunk(
                    task_id=task_id, mode=run_pb2.STREAM_MODE_CUSTOM, data=value("x")
                )
            ),
        ]
        for request in forged:
            await other.write(request)
            check_rejection(await read(other), task_id, "TASK_NOT_HELD", "FAILED_PRECONDITION")
        assert not run.done()

        # A second hello on an open stream is not accepted.
        await holder.write(hello("raw_echo"))
        message = await read(holder)
        assert message.WhichOneof("kind") == "rejected", message
        assert message.rejected.error.reason == "INVALID_ARGUMENT"
        assert not run.done()

        # The holder's own result that JSON cannot carry is rejected and the
        # task fails with the reason, not retried.
        bad = wpb.TaskCompleted(task_id=task_id, result=struct_pb2.Value(number_value=math.nan))
        await holder.write(wpb.ConnectRequest(completed=bad))
        check_rejection(await read(holder), task_id, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        response = await asyncio.wait_for(run, WAIT)
        assert response.run.state == run_pb2.RUN_STATE_FAILED
        assert response.run.error.type == "InvalidArgumentError"
        assert "refused the task's completed report" in response.run.error.message
    finally:
        holder.cancel()
        other.cancel()


async def test_hello_with_a_nameless_registration_is_invalid_argument(api: Api) -> None:
    call = api.workers.Connect()
    nameless = wpb.WorkerHello(registrations=[wpb.Registration(kind=wpb.TASK_KIND_TASK)])
    await call.write(wpb.ConnectRequest(hello=nameless))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), WAIT)
    check_error(caught.value, INVALID_ARGUMENT, "INVALID_ARGUMENT")
    health = await api.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


# --- the SDK's typed exceptions -----------------------------------------------------------------


async def test_sdk_raises_typed_errors_with_reasons(client: Client, api: Api, worker: None) -> None:
    with pytest.raises(ThreadNotFoundError) as not_found:
        await client.invoke(doubler, 1, thread_id="ghost", create_thread=False)
    assert not_found.value.reason == "THREAD_NOT_FOUND"
    assert not_found.value.code == grpc.StatusCode.NOT_FOUND
    assert not_found.value.metadata["thread_id"] == "ghost"
    with pytest.raises(ThreadNotFoundError):
        await client.get_state("ghost")

    with pytest.raises(RunNotFoundError) as no_run:
        await client.get_run(str(uuid.uuid4()))
    assert no_run.value.reason == "RUN_NOT_FOUND"

    with pytest.raises(ResourceExhaustedError) as too_large:
        await client.invoke(doubler, "x" * (LIMIT + 1), thread_id="large")
    assert too_large.value.reason == "PAYLOAD_TOO_LARGE"
    assert too_large.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED

    interrupted = await client.invoke(approve_both, ["a", "b"], thread_id="two")
    assert interrupted.state is RunState.INTERRUPTED and len(interrupted.interrupts) == 2
    with pytest.raises(InvalidArgumentError) as ambiguous:
        await client.invoke(approve_both, Command(resume="yes"), thread_id="two")
    assert ambiguous.value.reason == "AMBIGUOUS_RESUME"
    assert ambiguous.value.code == grpc.StatusCode.INVALID_ARGUMENT

    running = asyncio.ensure_future(client.invoke(gated, 10, thread_id="busy"))
    try:
        await asyncio.wait_for(gates["started"].wait(), WAIT)
        with pytest.raises(ThreadBusyError) as busy:
            await client.invoke(gated, 11, thread_id="busy")
        assert busy.value.reason == "THREAD_BUSY"
        assert busy.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert busy.value.metadata["thread_id"] == "busy"
    finally:
        gates["release"].set()
    assert (await asyncio.wait_for(running, WAIT)).output == 11


async def test_negative_recursion_limit_is_invalid_argument(api: Api, worker: None) -> None:
    request = rpb.InvokeRequest(
        thread_id=f"t-{uuid.uuid4()}",
        target="doubler",
        input=to_value(2),
        create_thread=True,
        recursion_limit=-1,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.runs.Invoke(request, timeout=WAIT)
    check_error(caught.value, INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "recursion_limit" in (caught.value.details() or "")
