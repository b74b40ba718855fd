"""The API tests' server, with a small payload limit, and the raw stubs of
every service on one channel (to send what no SDK would)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from cairn.v1 import (
    checkpoint_service_pb2_grpc,
    graph_service_pb2_grpc,
    run_service_pb2_grpc,
    schedule_service_pb2_grpc,
    store_service_pb2_grpc,
    thread_service_pb2_grpc,
    worker_service_pb2_grpc,
)
from cairn_server.server import CairnServer, ServerConfig, create_server

LIMIT = 64 * 1024
"""The servers' --max-payload-bytes here."""


@pytest.fixture
async def server(db_path: pathlib.Path) -> AsyncIterator[tuple[CairnServer, str]]:
    """The real server with a 64 KiB payload limit (overrides tests/conftest.py's)."""
    config = ServerConfig(
        address="127.0.0.1:0", store_url=f"sqlite:///{db_path}", max_payload_bytes=LIMIT
    )
    instance, port = await create_server(config)
    try:
        yield instance, f"127.0.0.1:{port}"
    finally:
        await instance.stop(grace=0.5)


@dataclass
class Api:
    runs: run_service_pb2_grpc.RunServiceStub
    threads: thread_service_pb2_grpc.ThreadServiceStub
    workers: worker_service_pb2_grpc.WorkerServiceStub
    checkpoints: checkpoint_service_pb2_grpc.CheckpointServiceStub
    health: health_pb2_grpc.HealthStub
    graphs: graph_service_pb2_grpc.GraphServiceStub
    store: store_service_pb2_grpc.StoreServiceStub
    schedules: schedule_service_pb2_grpc.ScheduleServiceStub


@pytest.fixture
async def api(address: str) -> AsyncIterator[Api]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield Api(
            run_service_pb2_grpc.RunServiceStub(channel),
            thread_service_pb2_grpc.ThreadServiceStub(channel),
            worker_service_pb2_grpc.WorkerServiceStub(channel),
            checkpoint_service_pb2_grpc.CheckpointServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            graph_service_pb2_grpc.GraphServiceStub(channel),
            store_service_pb2_grpc.StoreServiceStub(channel),
            schedule_service_pb2_grpc.ScheduleServiceStub(channel),
        )
