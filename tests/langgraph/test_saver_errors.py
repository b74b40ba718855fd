"""CairnSaver raises the SDK's typed errors, with the service's ErrorInfo
reason and metadata, from its sync and async methods alike."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

pytest.importorskip("langgraph.checkpoint.base")

from langgraph.checkpoint.base import empty_checkpoint

from cairn import CairnError, InvalidArgumentError, UnavailableError
from cairn.langgraph import CairnSaver
from tests.e2e.processes import free_port


def config(thread_id: str, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def assert_empty_thread_id(error: pytest.ExceptionInfo[InvalidArgumentError]) -> None:
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.reason == "INVALID_ARGUMENT"
    assert error.value.metadata == {"field": "thread_id"}
    assert "thread_id is required" in str(error.value)
    assert error.value.__cause__ is None  # not chained to grpc's own error


async def test_empty_thread_id_is_a_typed_invalid_argument_error(address: str) -> None:
    def sync_calls() -> None:
        with CairnSaver(address) as saver:
            with pytest.raises(InvalidArgumentError) as error:
                saver.get_tuple(config(""))
            assert_empty_thread_id(error)
            checkpoint = empty_checkpoint()
            with pytest.raises(InvalidArgumentError) as error:
                saver.put(config(""), checkpoint, {"step": -1}, {})
            assert_empty_thread_id(error)
            with pytest.raises(InvalidArgumentError) as error:
                saver.put_writes(config("", checkpoint["id"]), [("a", 1)], "task-1")
            assert_empty_thread_id(error)

    await asyncio.to_thread(sync_calls)

    async with CairnSaver(address) as saver:
        with pytest.raises(InvalidArgumentError) as error:
            await saver.aget_tuple(config(""))
        assert_empty_thread_id(error)
        with pytest.raises(InvalidArgumentError) as error:
            await saver.aput(config(""), empty_checkpoint(), {"step": -1}, {})
        assert_empty_thread_id(error)


async def test_missing_checkpoint_id_in_put_writes_then_the_saver_keeps_working(
    address: str,
) -> None:
    async with CairnSaver(address) as saver:
        with pytest.raises(InvalidArgumentError) as error:
            await saver.aput_writes(config("t", checkpoint_id=""), [("a", 1)], "task-1")
        assert error.value.reason == "INVALID_ARGUMENT"
        assert error.value.metadata == {"field": "checkpoint_id"}
        assert isinstance(error.value, CairnError)
        stored = await saver.aput(config("t"), empty_checkpoint(), {"step": -1}, {})
        await saver.aput_writes(stored, [("a", 1)], "task-1")
        found = await saver.aget_tuple(stored)
        assert found is not None
        assert found.pending_writes == [("task-1", "a", 1)]


def test_server_down_is_a_typed_unavailable_error() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with CairnSaver(address, failover_timeout=0.3) as saver:
        with pytest.raises(UnavailableError) as error:
            saver.get_tuple(config("t"))
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(UnavailableError):
            list(saver.list(config("t")))


async def test_server_down_is_a_typed_unavailable_error_async() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with CairnSaver(address, failover_timeout=0.3) as saver:
        with pytest.raises(UnavailableError) as error:
            await saver.aput(config("t"), empty_checkpoint(), {"step": -1}, {})
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(UnavailableError):
            [t async for t in saver.alist(None)]
