"""Unary calls to one service over the addresses of a Cairn deployment,
blocking and asyncio, failing over as `Client` does: a call that gets
UNAVAILABLE is sent again to the next address until the failover budget is
spent. For the LangGraph adapters (`CairnSaver`, `CairnStore`), whose calls
are all safe to send twice. At most `_in_flight.MAX_IN_FLIGHT` asyncio calls
are open at once; the others wait for a slot.

    calls = FailoverCalls(StoreServiceStub, settings, addresses, 30.0, log)
    response = calls.call(lambda stub: stub.GetItem(request))
    response = await calls.acall(lambda stub: stub.GetItem(request))
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import grpc

from cairn._addresses import RECONNECT_OPTIONS, Attempts, Failover
from cairn._credentials import ConnectionSettings
from cairn._errors import from_rpc_error
from cairn._in_flight import InFlight

Stub = TypeVar("Stub")
Response = TypeVar("Response")


def _unavailable(error: grpc.RpcError) -> bool:
    # A failed blocking call is a grpc.Call; a failed asyncio one an AioRpcError.
    call = error if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None
    return call is not None and call.code() is grpc.StatusCode.UNAVAILABLE


def _reason(error: grpc.RpcError) -> str:
    assert isinstance(error, grpc.Call | grpc.aio.AioRpcError)
    return str(error.details() or error.code().name)


class FailoverCalls(Generic[Stub]):
    """Blocking and asyncio stubs over `addresses`, made on first use (the
    asyncio ones again when used from another event loop)."""

    def __init__(
        self,
        stub: Callable[[grpc.Channel], Stub],
        settings: ConnectionSettings,
        addresses: tuple[str, ...],
        failover_timeout: float,
        log: logging.Logger,
    ) -> None:
        self._stub = stub
        self._settings = settings
        self._addresses = addresses
        self._failover = Failover(addresses, failover_timeout, log, hint=settings.unreachable_hint)
        self._channels: list[grpc.Channel] = []
        self._stubs: list[Stub] = []
        self._aio_channels: list[grpc.aio.Channel] = []
        self._aio_stubs: list[Stub] = []
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = InFlight()

    def _sync(self) -> list[Stub]:
        if not self._stubs:
            self._channels = [
                self._settings.sync_channel(a, RECONNECT_OPTIONS) for a in self._addresses
            ]
            self._stubs = [self._stub(channel) for channel in self._channels]
        return self._stubs

    def _async(self) -> list[Stub]:
        loop = asyncio.get_running_loop()
        if not self._aio_stubs or self._aio_loop is not loop:
            self._aio_channels = [
                self._settings.aio_channel(a, RECONNECT_OPTIONS) for a in self._addresses
            ]
            self._aio_stubs = [self._stub(channel) for channel in self._aio_channels]
            self._aio_loop = loop
        return self._aio_stubs

    def _failed(
        self, attempts: Attempts | None, error: grpc.RpcError, index: int
    ) -> tuple[Attempts, float]:
        """Move on after `error`: the call's attempts and how long to wait
        before the next one. Raises it typed when it is not UNAVAILABLE or
        time is up."""
        attempts = attempts or self._failover.attempts()
        if not _unavailable(error):
            raise from_rpc_error(error) from None
        pause = attempts.failed(index, _reason(error))
        if pause is None:
            raise self._failover.gave_up(from_rpc_error(error)) from None
        return attempts, pause

    def call(self, rpc: Callable[[Stub], Response]) -> Response:
        """A blocking call, failing over; a failure raised as a CairnError."""
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            try:
                response = rpc(self._sync()[index])
            except grpc.RpcError as error:
                attempts, pause = self._failed(attempts, error, index)
                time.sleep(pause)
            else:
                if attempts is not None:
                    self._failover.reached()
                return response

    async def acall(self, rpc: Callable[[Stub], Awaitable[Response]]) -> Response:
        """An asyncio call, failing over; a failure raised as a CairnError."""
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            try:
                async with self._in_flight.slot():
                    response = await rpc(self._async()[index])
            except grpc.RpcError as error:
                attempts, pause = self._failed(attempts, error, index)
                await asyncio.sleep(pause)
            else:
                if attempts is not None:
                    self._failover.reached()
                return response

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels, self._stubs = [], []

    async def aclose(self) -> None:
        for channel in self._aio_channels:
            await channel.close()
        self._aio_channels, self._aio_stubs, self._aio_loop = [], [], None
        self.close()


class ClosesCalls:
    """`close()` / `aclose()` and the sync and async context manager of an
    object whose calls are its `_calls`."""

    _calls: FailoverCalls[Any]

    def close(self) -> None:
        self._calls.close()

    async def aclose(self) -> None:
        await self._calls.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
