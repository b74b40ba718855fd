"""What the server's interceptors share (auth, decoding, metrics): each
replaces the behaviour of a method's handler once and keeps the result, and
a streaming behaviour may produce its responses in three ways."""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Behaviour = Callable[..., Any]
Factory = Callable[..., grpc.RpcMethodHandler]


def parts(handler: grpc.RpcMethodHandler) -> tuple[Factory, Behaviour | None]:
    """(the grpc factory of `handler`'s kind, its behaviour)."""
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler, handler.stream_stream
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler, handler.stream_unary
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler, handler.unary_stream
    return grpc.unary_unary_rpc_method_handler, handler.unary_unary


async def responses(produced: Any) -> AsyncIterator[Any]:
    """The responses of a streaming behaviour's call: an async generator's,
    a plain iterator's, or none when it wrote them with context.write()."""
    if inspect.isawaitable(produced):
        await produced
    elif hasattr(produced, "__aiter__"):
        async for response in produced:
            yield response
    else:
        for response in produced:
            yield response


async def result_of(produced: Any) -> Any:
    """The response of a unary behaviour's call, awaited when it is a coroutine."""
    return await produced if inspect.isawaitable(produced) else produced


class RewrappingInterceptor(grpc.aio.ServerInterceptor, abc.ABC):  # type: ignore[misc]
    """Replaces each implemented method's handler with `rewrap`'s, once per
    method (grpc asks for every call)."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        path: str = handler_call_details.method
        known = self._handlers.get(path)
        if known is not None:
            return known
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # not implemented: names from clients are not kept
        rewrapped = self.rewrap(handler, path.lstrip("/"))
        self._handlers[path] = rewrapped
        return rewrapped

    @abc.abstractmethod
    def rewrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The handler to serve `method` (`package.Service/Method`) with."""
