"""`cairn serve` exports its spans as the standard OTEL_* variables say."""

from __future__ import annotations

import pathlib

import pytest

from cairn import Client
from cairn_server.tracing.setup import wanted
from tests.e2e.processes import BIN, Process, free_port, start_worker, stopping


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "Console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
    ],
)
def test_the_exporters_the_environment_asks_for(
    environ: dict[str, str], exporters: list[str]
) -> None:
    assert wanted(environ) == exporters


async def test_cairn_serve_prints_its_run_spans_with_the_console_exporter(
    tmp_path: pathlib.Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    command = [str(BIN / "cairn"), "serve", "--address", address]
    server = Process(
        [*command, "--store", f"sqlite:///{tmp_path / 'cairn.db'}"],
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "cairn-test"},
    ).start()
    worker = None
    with stopping(server):
        server.wait_for_line("cairn serving on")
        worker = start_worker(address, tmp_path / "tasks.log")
        with stopping(worker):
            async with Client(address) as client:
                run = await client.invoke("twenty_steps", 2, thread_id="t", durability="sync")
            assert run.output is not None
            # The batch processor exports within seconds; the console exporter
            # prints each span as JSON.
            server.wait_for_line('"name": "cairn.run twenty_steps"')
            server.wait_for_line('"service.name": "cairn-test"')
