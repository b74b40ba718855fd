"""Cairn server: durable execution for agent workflows."""

# Before any module of the server imports grpc: only the C core's errors are
# printed (cairn/_grpc_logs.py says why), unless GRPC_VERBOSITY is set.
from cairn import _grpc_logs  # noqa: F401
