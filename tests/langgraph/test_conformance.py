"""LangGraph's checkpointer conformance suite against CairnSaver and a real
server, on the SQLite store and on the Postgres one."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate

from cairn.langgraph import CairnSaver
from cairn_server.server import ServerConfig, create_server
from tests import postgres

CAPABILITIES = (
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
)


@pytest.mark.parametrize("capability", CAPABILITIES)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_conformance(tmp_path: pathlib.Path, backend: str, capability: str) -> None:
    with postgres.store_url(backend, tmp_path) as url:
        await _check(url, capability)


async def _check(url: str, capability: str) -> None:
    config = ServerConfig(address="127.0.0.1:0", store_url=url)
    server, port = await create_server(config)
    try:

        @checkpointer_test(name="CairnSaver")
        async def cairn_saver() -> AsyncIterator[CairnSaver]:
            saver = CairnSaver(f"127.0.0.1:{port}")
            try:
                yield saver
            finally:
                await saver.aclose()

        report = await validate(cairn_saver, capabilities={capability})
    finally:
        await server.stop(grace=0.5)
    result = report.results[capability]
    assert result.detected, capability
    assert result.passed, result.failures
    assert result.tests_failed == 0
    assert result.tests_passed > 0


async def test_sync_methods(address: str) -> None:
    """The blocking methods (run off the loop that serves) see the same store."""
    import asyncio

    from langgraph.checkpoint.base import empty_checkpoint

    def use() -> None:
        with CairnSaver(address) as saver:
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"topic": "cats"}
            checkpoint["channel_versions"] = {"topic": saver.get_next_version(None, None)}
            config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            stored = saver.put(config, checkpoint, {"step": 1}, checkpoint["channel_versions"])
            saver.put_writes(stored, [("topic", "dogs")], "task-1")
            found = saver.get_tuple(config)
            assert found is not None
            assert found.checkpoint["channel_values"] == {"topic": "cats"}
            assert found.pending_writes == [("task-1", "topic", "dogs")]
            assert [t.metadata["step"] for t in saver.list(None, filter={"step": 1})] == [1]
            saver.delete_thread("t")
            assert saver.get_tuple(config) is None

    await asyncio.to_thread(use)
