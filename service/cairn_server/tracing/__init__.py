"""OpenTelemetry traces of runs (DESIGN.md 8.4), optional.

The caller's W3C trace context comes in as `traceparent`/`tracestate` gRPC
metadata on Invoke, Stream and Session (`caller_context`). Each run this
replica drives gets a span, `cairn.run <target>`, child of that context, and
each task dispatched to a worker a `cairn.task.queued <name>` span from its
dispatch until a worker takes it (`RunTrace`). The run span's own context is
stored with the run (RunRecord.trace_context) and sent with every task
assignment, so that workers continue the trace, a run resumed from an
interrupt or taken over after a restart continues it too, and a replica that
relays a task passes it on.

Without `opentelemetry-api` installed (`pip install 'cairn[otel]'`) no span
is made: the caller's context is passed through as it came, so a worker's
spans still join the caller's trace. With the API but no SDK configured, the
spans are OpenTelemetry's non-recording ones. `cairn serve` exports to the
collector the standard OTEL_* variables name (`exporting`, in setup.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn_server import namespaces
from cairn_server.domain import RunRecord, RunState
from cairn_server.tracing.setup import exporting

__all__ = [
    "NO_TRACE",
    "Carrier",
    "RunTrace",
    "caller_context",
    "enabled",
    "exporting",
    "start_run",
]

Carrier = dict[str, str]
"""A W3C trace context as text headers: `traceparent` and maybe `tracestate`."""

_HEADERS = ("traceparent", "tracestate")

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # tracing is optional: `pip install 'cairn[otel]'`
    _otel = False
else:
    _otel = True
    _W3C = TraceContextTextMapPropagator()
    _tracer = trace.get_tracer("cairn_server")


def enabled() -> bool:
    """Whether this process can make spans (opentelemetry-api is installed)."""
    return _otel


def caller_context(context: Any) -> Carrier:
    """The W3C trace context in the gRPC metadata of a call (its servicer
    context), or {} when the caller sent none."""
    read = getattr(context, "invocation_metadata", None)
    metadata: Iterable[tuple[str, Any]] = (read() if read is not None else None) or ()
    found: Carrier = {}
    for key, value in metadata:
        if key in _HEADERS and isinstance(value, str):
            found[key] = value
    return found if "traceparent" in found else {}


class RunTrace:
    """The spans of one run on this replica. This base makes none: it passes
    the context it was given on (`carrier`) to the run's tasks."""

    def __init__(self, carrier: Carrier | None = None) -> None:
        self.carrier: Carrier = dict(carrier or {})
        """The context assignments carry and the run stores."""

    def queued(self, task_id: str, name: str) -> None:
        """Task `task_id` was sent to the dispatcher."""

    def taken(self, task_id: str) -> None:
        """A worker took task `task_id`."""

    def end(self, run: RunRecord) -> None:
        """The run ended, stopped at an interrupt, or stopped being driven here."""


NO_TRACE = RunTrace()


def start_run(
    run: RunRecord, *, parent: Carrier, link: Carrier | None = None, resumed: bool = False
) -> RunTrace:
    """The trace of `run`, whose span starts now as a child of `parent` (the
    caller's context, or the context stored with the run it continues) and
    links to `link` (a resuming caller's span). Sets `run.trace_context`."""
    spans = _RunSpans(run, parent, link, resumed) if _otel else RunTrace(parent or link)
    run.trace_context = spans.carrier
    return spans


class _RunSpans(RunTrace):
    def __init__(
        self, run: RunRecord, parent: Carrier, link: Carrier | None, resumed: bool
    ) -> None:
        links = []
        if link and link != parent:
            linked = trace.get_current_span(_W3C.extract(link, Context())).get_span_context()
            if linked.is_valid:
                links.append(trace.Link(linked))
        if not parent and link:
            parent, links = link, []
        namespace = namespaces.namespace_of(run.thread_id)
        attributes: dict[str, str | bool] = {
            "cairn.run_id": run.run_id,
            "cairn.thread_id": namespaces.unscoped(run.thread_id),
            "cairn.namespace": namespace,
            "cairn.target": run.target,
            "cairn.durability": run.durability.value,
        }
        if resumed:
            attributes["cairn.resumed"] = True
        self._span = _tracer.start_span(
            f"cairn.run {run.target}",
            context=_W3C.extract(parent, Context()) if parent else Context(),
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
            links=links,
        )
        self._context = trace.set_span_in_context(self._span)
        self._recording = self._span.is_recording()
        self._queued: dict[str, Any] = {}
        carrier: Carrier = {}
        _W3C.inject(carrier, self._context)
        super().__init__(carrier or parent)
        self._ended = False

    def queued(self, task_id: str, name: str) -> None:
        if not self._recording or self._ended:
            return
        earlier = self._queued.pop(task_id, None)
        if earlier is not None:
            earlier.end()
        self._queued[task_id] = _tracer.start_span(
            f"cairn.task.queued {name}",
            context=self._context,
            kind=trace.SpanKind.PRODUCER,
            attributes={"cairn.task_id": task_id, "cairn.task_name": name},
        )

    def taken(self, task_id: str) -> None:
        span = self._queued.pop(task_id, None)
        if span is not None:
            span.end()

    def end(self, run: RunRecord) -> None:
        if self._ended:
            return
        self._ended = True
        for span in self._queued.values():
            span.set_attribute("cairn.task.taken", False)
            span.end()
        self._queued.clear()
        span = self._span
        if not self._recording:
            return
        span.set_attribute("cairn.state", run.state.value)
        if run.state is RunState.FAILED:
            message = run.error.message if run.error is not None else ""
            if run.error is not None:
                span.set_attribute("cairn.error.type", run.error.type)
            span.set_status(trace.Status(trace.StatusCode.ERROR, message))
        elif run.state is RunState.INTERRUPTED:
            span.set_attribute("cairn.interrupts", len(run.interrupts))
        elif run.state in (RunState.RUNNING, RunState.PENDING):
            # Stopped being driven here (shutdown, takeover): it goes on
            # elsewhere, in a span that continues this one.
            span.set_attribute("cairn.handed_over", True)
        span.end()
