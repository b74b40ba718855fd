"""Maps ServiceError to a gRPC status with a google.rpc.ErrorInfo detail.

Servicer methods are wrapped with `unary` or `streaming`; a store that
cannot take writes now is UNAVAILABLE (STORE_UNAVAILABLE); anything else that
escapes is logged and reported as INTERNAL without crashing the server.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from cairn_server.errors import ServiceError, error_for
from cairn_server.store import StoreUnavailable

log = logging.getLogger(__name__)

DOMAIN = "cairn.dev"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"

INTERNAL = ServiceError("INTERNAL", "internal error; the server log has the details")
STORE_UNAVAILABLE = error_for(
    "STORE_UNAVAILABLE", "the store cannot take writes now; nothing was changed, try again"
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")


_SCOPED = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(?:\x1f|\\x1f)")
"""The namespace part of a scoped key (namespaces.py), also as repr() shows
it: a caller knows its ids without it."""


def _caller_view(text: str) -> str:
    return _SCOPED.sub("", text)


def status_of(error: ServiceError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.INTERNAL)
    metadata = {k: _caller_view(str(v)) for k, v in error.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    message = _caller_view(error.message)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return code, status


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: ServiceError) -> NoReturn:
    code, status = status_of(error)
    await context.abort(
        code, status.message, trailing_metadata=((_STATUS_DETAILS_KEY, status.SerializeToString()),)
    )
    raise AssertionError("unreachable")  # context.abort raises


def unary(
    method: Callable[[Any, Req, Any], Awaitable[Resp]],
) -> Callable[[Any, Req, Any], Awaitable[Resp]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Any) -> Resp:
        try:
            return await method(self, request, context)
        except ServiceError as error:
            await abort(context, error)
        except grpc.aio.AbortError:
            raise
        except StoreUnavailable as error:
            log.warning("%s: the store is unavailable: %s", method.__qualname__, error)
            await abort(context, STORE_UNAVAILABLE)
        except Exception:
            log.exception("%s failed", method.__qualname__)
            await abort(context, INTERNAL)

    return wrapper


def streaming(
    method: Callable[[Any, Req, Any], AsyncIterator[Resp]],
) -> Callable[[Any, Req, Any], AsyncIterator[Resp]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Any) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except ServiceError as error:
            await abort(context, error)
        except grpc.aio.AbortError:
            raise
        except StoreUnavailable as error:
            log.warning("%s: the store is unavailable: %s", method.__qualname__, error)
            await abort(context, STORE_UNAVAILABLE)
        except Exception:
            log.exception("%s failed", method.__qualname__)
            await abort(context, INTERNAL)

    return wrapper
