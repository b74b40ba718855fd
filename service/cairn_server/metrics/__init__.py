"""Prometheus metrics (DESIGN.md 8.4): `Metrics` defines every metric once,
`MetricsServer` serves /metrics (`cairn serve --metrics-address`), and
`cairn_server.metrics.interceptor.MetricsInterceptor` counts and times RPCs.

This package imports nothing of the server's layers (but the interceptor,
which is imported from its module), so that every layer may take a
`Metrics` as its keyword `metrics=`.
"""

from __future__ import annotations

from cairn_server.metrics.http import MetricsServer
from cairn_server.metrics.registry import (
    RUN_OUTCOMES,
    STORE_ERROR_KINDS,
    TASK_OUTCOMES,
    WAIT_REASONS,
    Metrics,
    RunSample,
    WorkerSample,
)

__all__ = [
    "RUN_OUTCOMES",
    "STORE_ERROR_KINDS",
    "TASK_OUTCOMES",
    "WAIT_REASONS",
    "Metrics",
    "MetricsServer",
    "RunSample",
    "WorkerSample",
]
