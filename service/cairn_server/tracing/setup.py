"""`cairn serve`'s span exporter, configured by the standard OTEL_* variables.

With opentelemetry-sdk installed (`pip install 'cairn[otel]'`) and
OTEL_TRACES_EXPORTER or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, the server installs a
TracerProvider that batches its spans to that exporter:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 cairn serve
    OTEL_TRACES_EXPORTER=console cairn serve      # spans on stdout

OTEL_TRACES_EXPORTER is `otlp` (the default), `console` or `none`, or a
comma-separated list of them; OTEL_EXPORTER_OTLP_PROTOCOL (or
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) picks `grpc` (the default) or
`http/protobuf`. The service name is OTEL_SERVICE_NAME (default `cairn`),
resource attributes OTEL_RESOURCE_ATTRIBUTES, sampling OTEL_TRACES_SAMPLER;
the exporters read their own variables (headers, timeouts, certificates).
An application that set a TracerProvider itself keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)


def wanted(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; [] when it asks for none."""
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names and not (
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return []
    found = [name.strip().lower() for name in (names or "otlp").split(",") if name.strip()]
    return [name for name in found if name != "none"]


@contextlib.contextmanager
def exporting(environ: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Export spans as the OTEL_* variables say while the block runs, then
    flush them; yields the TracerProvider, or None when nothing is exported."""
    environ = os.environ if environ is None else environ
    names = wanted(environ)
    if not names:
        yield None
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* variables ask for traces, but opentelemetry-sdk is not installed;"
            " install cairn[otel] to export them"
        )
        yield None
        return
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "") or "cairn"})
    provider = TracerProvider(resource=resource)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    trace.set_tracer_provider(provider)
    log.info("exporting traces to %s", ", ".join(names))
    try:
        yield provider
    finally:
        provider.shutdown()


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter()
