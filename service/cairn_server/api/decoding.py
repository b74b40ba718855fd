"""Requests the server cannot decode are INVALID_ARGUMENT (MALFORMED_REQUEST);
requests with an id, name or path over its length limit are INVALID_ARGUMENT
(ID_TOO_LONG, see api/limits.py), before any servicer sees them.

grpc decodes each request message with the method's deserializer before any
servicer sees it; when that fails (bytes that are not protobuf, a string
field that is not UTF-8, messages nested past protobuf's recursion limit of
100) grpc itself answers UNKNOWN with Python internals in the message. The
interceptor here wraps every method's deserializer so that a message that
does not decode, or is over a length limit, becomes a marker holding the
error, and every method's behaviour so that the marker is answered with that
error as a status with an ErrorInfo: for a unary request at once, for a
request stream when the servicer reads the bad message (the messages before
it were handled as usual).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from cairn_server.api import handlers
from cairn_server.api.errors import abort
from cairn_server.api.limits import check_lengths
from cairn_server.errors import ServiceError, error_for


class _Refused:
    """What the wrapped deserializer returns for a message it refuses."""

    __slots__ = ("error",)

    def __init__(self, error: ServiceError) -> None:
        self.error = error


def malformed_error(method: str) -> ServiceError:
    return error_for(
        "MALFORMED_REQUEST",
        f"a request message of {method} cannot be decoded: it is not valid protobuf for"
        " the method's request type, holds a string that is not UTF-8, or nests messages"
        " more than 100 levels deep",
        method=method,
    )


def _deserializer(
    decode: Callable[[bytes], Any] | None, method: str
) -> Callable[[bytes], Any] | None:
    if decode is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            request = decode(data)
        except Exception:  # whatever the protobuf runtime raises, the bytes are bad
            return _Refused(malformed_error(method))
        if method.startswith("cairn."):
            error = check_lengths(request)
            if error is not None:
                return _Refused(error)
        return request

    return deserialize


def _checked_requests(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any], method: str
) -> AsyncIterator[Any]:
    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Refused):
                await abort(context, request.error)
            yield request

    return checked()


Behaviour = handlers.Behaviour


def _checked_behaviour(behaviour: Behaviour, method: str, *, request_stream: bool) -> Behaviour:
    """`behaviour` with malformed requests answered: the same kind of callable
    (coroutine or async generator function), as grpc tells them apart. A
    plain function (only the generated UNIMPLEMENTED stubs, such as
    Health.List, are) is called on the loop."""

    async def first(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request_stream:
            return _checked_requests(request, context, method)
        if isinstance(request, _Refused):
            await abort(context, request.error)
        return request

    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async for response in behaviour(await first(request, context), context):
                yield response

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        result = behaviour(await first(request, context), context)
        return await result if inspect.isawaitable(result) else result

    return call


def _checked_handler(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    wrap, behaviour = handlers.parts(handler)
    if behaviour is None or inspect.isgeneratorfunction(behaviour):
        return handler  # a blocking stream: left as grpc serves it (none of ours)
    checked: grpc.RpcMethodHandler = wrap(
        _checked_behaviour(behaviour, method, request_stream=handler.request_streaming),
        request_deserializer=_deserializer(handler.request_deserializer, method),
        response_serializer=handler.response_serializer,
    )
    return checked


class DecodingInterceptor(handlers.RewrappingInterceptor):
    """Answers requests that do not decode with INVALID_ARGUMENT, for every
    method of every service of the server (health and reflection too), and
    requests of Cairn's services over a length limit."""

    def rewrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return _checked_handler(handler, method)
