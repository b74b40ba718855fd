"""/metrics accounts for exactly what happened, with bounded labels."""

from __future__ import annotations

import asyncio
import collections
import pathlib
import urllib.error
import urllib.request
import uuid

import grpc
import pytest

from cairn import Client, Command, RetryPolicy, RunState, entrypoint, interrupt, task
from cairn_server.server import ServerConfig, create_server
from tests.metrics.conftest import Scrape

calls: collections.Counter[str] = collections.Counter()

RUNS = "cairn.v1.RunService"


@pytest.fixture(autouse=True)
def reset() -> None:
    calls.clear()


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
def flaky(text: str) -> str:
    calls["flaky"] += 1
    if calls["flaky"] == 1:
        raise ConnectionError("connection reset")
    return text.upper()


@entrypoint()
def reviewed(topic: str) -> dict[str, str]:
    draft = flaky(topic).result()
    verdict = interrupt({"draft": draft})
    return {"draft": draft, "verdict": verdict}


async def test_a_retry_an_interrupt_and_a_resume_are_counted_exactly(
    client: Client, start_worker, scrape: Scrape
) -> None:
    # Local calls off: every attempt goes through the server's queue.
    await start_worker([flaky, reviewed], local_calls=False)
    run = await client.invoke(reviewed, "bees", thread_id="t-1")
    assert run.state is RunState.INTERRUPTED
    run = await client.invoke(reviewed, Command(resume="ok"), thread_id="t-1")
    assert run.output == {"draft": "BEES", "verdict": "ok"}
    with pytest.raises(Exception) as missing:
        await client.get_run("no-such-run")
    assert calls["flaky"] == 2

    m = await scrape()
    assert m.value("cairn_runs_started_total", target="reviewed", namespace="default") == 2
    ended = {"target": "reviewed", "namespace": "default"}
    assert m.value("cairn_runs_ended_total", **ended, outcome="interrupted") == 1
    assert m.value("cairn_runs_ended_total", **ended, outcome="succeeded") == 1
    assert m.total("cairn_runs_ended_total") == 2
    assert m.samples[("cairn_runs_active", frozenset({("namespace", "default")}))] == 0
    for reason in ("no_worker", "worker_busy", "retry_backoff"):
        assert m.value("cairn_runs_waiting", reason=reason) == 0
    # Attempts: the entrypoint twice (interrupted, then resumed), the task
    # twice (failed once, retried); the resume replays its result.
    assert m.value("cairn_task_retries_total", name="flaky") == 1
    assert m.total("cairn_task_retries_total") == 1
    assert m.value("cairn_task_queue_wait_seconds_count", name="reviewed") == 2
    assert m.value("cairn_task_queue_wait_seconds_count", name="flaky") == 2
    execution = "cairn_task_execution_seconds_count"
    assert m.value(execution, name="reviewed", outcome="interrupted") == 1
    assert m.value(execution, name="reviewed", outcome="succeeded") == 1
    assert m.value(execution, name="flaky", outcome="failed") == 1
    assert m.value(execution, name="flaky", outcome="succeeded") == 1
    assert m.total(execution) == 4
    assert m.total("cairn_task_queue_wait_seconds_count") == 4
    # RPCs, by the code each call ended with.
    assert m.value("cairn_rpc_requests_total", service=RUNS, method="Invoke", code="OK") == 2
    assert m.total("cairn_rpc_requests_total", method="Invoke") == 2
    assert m.value("cairn_rpc_duration_seconds_count", service=RUNS, method="Invoke") == 2
    assert isinstance(missing.value, Exception)
    assert m.value("cairn_rpc_requests_total", service=RUNS, method="GetRun", code="NOT_FOUND") == 1
    # The worker's Connect stream is open: counted once it ends.
    assert m.total("cairn_rpc_requests_total", method="Connect") == 0
    assert m.value("cairn_workers_connected", language="python") == 1
    assert m.total("cairn_workers_connected") == 1
    slots = m.value("cairn_worker_free_slots", namespace="default", name="flaky")
    assert slots > 0  # every slot free again
    assert m.value("cairn_worker_free_slots", namespace="default", name="reviewed") > 0
    # The store committed every start, step and end, in groups.
    commits = m.value("cairn_store_commit_seconds_count")
    assert commits > 0
    assert m.value("cairn_store_commit_group_size_count") == commits
    assert m.value("cairn_store_commit_group_size_sum") >= commits
    assert m.total("cairn_store_errors_total") == 0
    assert m.value("cairn_fencing_rejections_total") == 0
    assert m.value("cairn_lease_takeovers_total") == 0
    assert m.value("cairn_event_log_appends_total") > 0


async def test_a_worker_leaving_and_a_refused_call_show_up(
    server, client: Client, start_worker, scrape: Scrape
) -> None:
    worker = await start_worker([flaky, reviewed])
    before = await scrape()
    assert before.value("cairn_workers_connected", language="python") == 1
    await worker.stop(grace=1)
    dispatcher = server[0].runs.dispatcher
    while dispatcher.direct_workers():  # its stream's end reaches the server
        dispatcher.workers_changed.clear()
        await asyncio.wait_for(dispatcher.workers_changed.wait(), 10)
    after = await scrape()
    # A gauge once seen stays, at 0, rather than vanishing.
    assert after.value("cairn_workers_connected", language="python") == 0
    assert after.value("cairn_worker_free_slots", namespace="default", name="flaky") == 0
    connects = after.total("cairn_rpc_requests_total", method="Connect")
    assert connects == 1
    assert (
        after.value(
            "cairn_rpc_duration_seconds_count", method="Connect", service="cairn.v1.WorkerService"
        )
        == 1
    )


async def test_labels_never_carry_thread_run_or_task_ids(
    client: Client, start_worker, scrape: Scrape
) -> None:
    await start_worker([flaky, reviewed])
    thread_ids = [f"thread-{uuid.uuid4().hex}" for _ in range(3)]
    run_ids = []
    for thread_id in thread_ids:
        calls.clear()
        run = await client.invoke(reviewed, "x", thread_id=thread_id)
        run_ids.append(run.run_id)
        run = await client.invoke(reviewed, Command(resume="y"), thread_id=thread_id)
        run_ids.append(run.run_id)
    m = await scrape()
    values = {value for (_, labels) in m.samples for _, value in labels}
    for unique in [*thread_ids, *run_ids]:
        assert not any(unique in value for value in values), unique
    # Task ids are derived from run ids (and contain them).
    assert not any("-" in v and len(v) > 30 for v in values)
    assert m.value("cairn_runs_started_total", target="reviewed", namespace="default") == 6


async def test_metrics_are_off_by_default(tmp_path: pathlib.Path) -> None:
    config = ServerConfig(address="127.0.0.1:0", store_url=f"sqlite:///{tmp_path / 'c.db'}")
    assert config.metrics_address == ""
    instance, _ = await create_server(config)
    try:
        assert instance.metrics_port == 0
        assert instance.metrics_server is None
    finally:
        await instance.stop(grace=0.5)


async def test_metrics_port_stops_with_the_server(tmp_path: pathlib.Path) -> None:
    config = ServerConfig(
        address="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path / 'c.db'}",
        metrics_address="127.0.0.1:0",
    )
    instance, _ = await create_server(config)
    url = f"http://127.0.0.1:{instance.metrics_port}/metrics"
    try:
        text = await asyncio.to_thread(_get, url)
        assert "cairn_runs_active" in text
        with pytest.raises(urllib.error.HTTPError) as missing:
            await asyncio.to_thread(_get, url.replace("/metrics", "/other"))
        assert missing.value.code == 404
    finally:
        await instance.stop(grace=0.5)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(_get, url)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_a_refused_call_is_counted_with_its_code(address: str, scrape: Scrape) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        get_run = channel.unary_unary(
            f"/{RUNS}/GetRun", request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await get_run(b"", metadata=(("cairn-namespace", "Not A Name"),))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        unknown = channel.unary_unary(
            "/cairn.v1.RunService/NoSuchMethod",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await unknown(b"")
    m = await scrape()
    assert (
        m.value("cairn_rpc_requests_total", service=RUNS, method="GetRun", code="INVALID_ARGUMENT")
        == 1
    )
    assert m.total("cairn_rpc_requests_total", method="NoSuchMethod") == 0
