"""StoreService calls for `cairn.langgraph.CairnStore`: blocking ones for its
sync `batch`, asyncio ones for `abatch`, both failing over among the
addresses of one service as `Client` and `CairnSaver` do. Every StoreService
call is safe to repeat (puts replace, deletes of nothing succeed), so each
is retried on UNAVAILABLE."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from google.protobuf.message import Message

from cairn._addresses import RECONNECT_OPTIONS, Attempts, Failover
from cairn._credentials import ConnectionSettings
from cairn._errors import from_rpc_error
from cairn.v1 import store_service_pb2_grpc

_Stub = store_service_pb2_grpc.StoreServiceStub


def _unavailable(error: grpc.RpcError) -> bool:
    # A failed blocking call is a grpc.Call; a failed asyncio one an AioRpcError.
    call = error if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None
    return call is not None and call.code() is grpc.StatusCode.UNAVAILABLE


def _reason(error: grpc.RpcError) -> str:
    assert isinstance(error, grpc.Call | grpc.aio.AioRpcError)
    return str(error.details() or error.code().name)


class StoreCalls:
    """Blocking and asyncio StoreService stubs over `addresses`, made on
    first use (the asyncio ones again when used from another loop)."""

    def __init__(
        self,
        settings: ConnectionSettings,
        addresses: tuple[str, ...],
        failover_timeout: float,
        log: logging.Logger,
    ) -> None:
        self._settings = settings
        self._addresses = addresses
        self._failover = Failover(addresses, failover_timeout, log, hint=settings.unreachable_hint)
        self._channels: list[grpc.Channel] = []
        self._stubs: list[_Stub] = []
        self._aio_channels: list[grpc.aio.Channel] = []
        self._aio_stubs: list[_Stub] = []
        self._aio_loop: asyncio.AbstractEventLoop | None = None

    def _sync(self) -> list[_Stub]:
        if not self._stubs:
            self._channels = [
                self._settings.sync_channel(a, RECONNECT_OPTIONS) for a in self._addresses
            ]
            self._stubs = [_Stub(channel) for channel in self._channels]
        return self._stubs

    def _async(self) -> list[_Stub]:
        loop = asyncio.get_running_loop()
        if not self._aio_stubs or self._aio_loop is not loop:
            self._aio_channels = [
                self._settings.aio_channel(a, RECONNECT_OPTIONS) for a in self._addresses
            ]
            self._aio_stubs = [_Stub(channel) for channel in self._aio_channels]
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

    def call(self, rpc: str, request: Message) -> Any:
        """A blocking call, failing over; a failure raised as a CairnError."""
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            try:
                response = getattr(self._sync()[index], rpc)(request)
            except grpc.RpcError as error:
                attempts, pause = self._failed(attempts, error, index)
                time.sleep(pause)
            else:
                if attempts is not None:
                    self._failover.reached()
                return response

    async def acall(self, rpc: str, request: Message) -> Any:
        """An asyncio call, failing over; a failure raised as a CairnError."""
        attempts: Attempts | None = None
        while True:
            index = self._failover.current
            try:
                response = await getattr(self._async()[index], rpc)(request)
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
