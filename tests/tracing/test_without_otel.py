"""Without OpenTelemetry installed, nothing is traced and nothing breaks: a
caller's W3C context still reaches the workers as it came, and is stored
with the run (the server passes it through)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"{name} is not installed")
            return None

    sys.meta_path.insert(0, NoOtel())

    from cairn import Client, Worker, entrypoint, task
    from cairn_server import tracing
    from cairn_server.server import ServerConfig, create_server
    from cairn import _tracing

    assert not tracing.enabled() and not _tracing._otel
    seen = []

    @task
    async def double(x: int) -> int:
        return x * 2

    @entrypoint()
    async def flow(x: int) -> int:
        return await double(x) + 1

    TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def main():
        server, port = await create_server(
            ServerConfig(address="127.0.0.1:0", store_url="sqlite://:memory:")
        )
        address = f"127.0.0.1:{port}"
        worker = Worker(address, functions=[flow, double], local_calls=False)
        original = worker._execute

        async def spy(execution):
            seen.append(dict(execution.assignment.trace_context))
            await original(execution)

        worker._execute = spy
        running = asyncio.ensure_future(worker.run())
        await worker.connected.wait()
        async with Client(address) as client:
            run = await client.invoke(flow, 4, thread_id="plain")
            assert run.output == 9
            stub = client._run_stubs[0]
            from cairn.v1 import run_service_pb2
            from cairn._values import to_value
            await stub.Invoke(
                run_service_pb2.InvokeRequest(
                    thread_id="traced", target="flow", input=to_value(1), create_thread=True
                ),
                metadata=(("traceparent", TRACEPARENT),),
            )
            stored = await server.runs.store.list_runs("traced", limit=1)
        await worker.stop(grace=1)
        await server.stop(grace=0.5)
        running.cancel()
        assert seen[:2] == [{}, {}], seen
        assert seen[2:] == [{"traceparent": TRACEPARENT}] * 2, seen
        assert stored[0][0].trace_context == {"traceparent": TRACEPARENT}
        print("ok")

    asyncio.run(main())
    """
)


def test_runs_work_and_pass_the_callers_context_on_without_opentelemetry() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
