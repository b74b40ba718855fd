"""What the server's interceptors share: a method handler's behaviour, and
the factory that builds a handler of the same kind around another one."""

from __future__ import annotations

from collections.abc import Callable
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
