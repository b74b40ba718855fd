"""cairn_rpc_requests_total and cairn_rpc_duration_seconds for every call.

The interceptor goes first, so it sees every call as the client does: one
that the auth interceptor refuses ends with that refusal's code. A call's
code is the status it ended with: the code of an abort (context.abort sets
it on the context before raising AbortError), one a servicer set with
set_code, CANCELLED when the client went away, UNKNOWN for an exception
grpc reports as such, OK otherwise. A stream is measured from its start to
its end. Methods no service implements are not counted (their names come
from clients and are unbounded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from cairn_server.api import handlers
from cairn_server.metrics.registry import Metrics


class MetricsInterceptor(handlers.RewrappingInterceptor):
    """Counts and times every call of every implemented method.

    server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics), ...])
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def rewrap(self, handler: grpc.RpcMethodHandler, path: str) -> grpc.RpcMethodHandler:
        service, _, method = path.rpartition("/")
        wrap, behaviour = handlers.parts(handler)
        assert behaviour is not None  # grpc sets the behaviour of the handler's kind
        timed = self._timed_stream if handler.response_streaming else self._timed_call
        measured: grpc.RpcMethodHandler = wrap(
            timed(behaviour, service, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return measured

    def _timed_call(
        self, behaviour: Callable[..., Any], service: str, method: str
    ) -> Callable[..., Any]:
        requests = self._metrics.rpc_requests
        duration = self._metrics.rpc_duration.labels(service=service, method=method)

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            start = time.perf_counter()
            code = "UNKNOWN"
            try:
                result = await handlers.result_of(behaviour(request, context))
                code = _code(context, "OK")
                return result
            except grpc.aio.AbortError:
                code = _code(context, "UNKNOWN")
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            finally:
                duration.observe(time.perf_counter() - start)
                requests.labels(service=service, method=method, code=code).inc()

        return call

    def _timed_stream(
        self, behaviour: Callable[..., Any], service: str, method: str
    ) -> Callable[..., Any]:
        requests = self._metrics.rpc_requests
        duration = self._metrics.rpc_duration.labels(service=service, method=method)

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            start = time.perf_counter()
            code = "UNKNOWN"
            try:
                async for response in handlers.responses(behaviour(request, context)):
                    yield response
                code = _code(context, "OK")
            except grpc.aio.AbortError:
                code = _code(context, "UNKNOWN")
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"  # the client went away
                raise
            finally:
                duration.observe(time.perf_counter() - start)
                requests.labels(service=service, method=method, code=code).inc()

        return stream


def _code(context: grpc.aio.ServicerContext[Any, Any], default: str) -> str:
    """The name of the status code set on `context`, else `default`."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):  # some grpc versions keep the raw number
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return str(status.name)
    return default
