"""OpenTelemetry spans of the SDK, optional (`pip install 'cairn[otel]'`).

The client's `invoke`, `stream` and `session` each make a client span,
`cairn.invoke <target>` and so on, child of the caller's current span, and
send its W3C context to the service as `traceparent`/`tracestate` metadata;
the service's run span is its child. A worker runs each assignment in a
`cairn.task <name>` span, child of the context the assignment carries (the
run's span), current while the task's code runs on the event loop, so that
spans the code makes nest under it.

Spans go to whatever TracerProvider the application set up (or the
OTEL_*-configured one of its OpenTelemetry distribution). Without
opentelemetry-api installed, every function here does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # tracing is optional
    _otel = False
else:
    _otel = True
    _W3C = TraceContextTextMapPropagator()
    _tracer = trace.get_tracer("cairn")

Metadata = tuple[tuple[str, str], ...]


class ClientCall:
    """The span of one client call: the metadata that carries it, and what
    the call learns (the run) for its attributes."""

    def __init__(self, span: Any = None) -> None:
        self._span = span
        self.metadata: Metadata = ()
        if span is not None:
            carrier: dict[str, str] = {}
            _W3C.inject(carrier, trace.set_span_in_context(span))
            self.metadata = tuple(carrier.items())

    def run(self, run_id: str) -> None:
        if self._span is not None and run_id:
            self._span.set_attribute("cairn.run_id", run_id)

    def fail(self, error: BaseException) -> None:
        if self._span is not None:
            self._span.record_exception(error)
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))

    def end(self) -> None:
        if self._span is not None:
            self._span.end()
            self._span = None


_NO_CALL = ClientCall()


def client_call(method: str, target: str, thread_id: str) -> ClientCall:
    """Start the span of client call `method` (invoke, stream, session), a
    child of the caller's current span; the caller ends it (`end`). It is not
    made current: its context travels as metadata only."""
    if not _otel:
        return _NO_CALL
    span = _tracer.start_span(
        f"cairn.{method} {target}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "rpc.system": "grpc",
            "rpc.service": "cairn.v1.RunService",
            "rpc.method": method.capitalize(),
            "cairn.target": target,
            "cairn.thread_id": thread_id,
        },
    )
    return ClientCall(span)


@contextlib.contextmanager
def client_span(method: str, target: str, thread_id: str) -> Iterator[ClientCall]:
    """`client_call` ended when the block ends, failed if it raises."""
    call = client_call(method, target, thread_id)
    try:
        yield call
    except Exception as error:  # not a closed generator or a cancelled call
        call.fail(error)
        raise
    finally:
        call.end()


def current() -> Any:
    """The caller's OpenTelemetry context (None without OpenTelemetry), to
    carry into a coroutine another thread's event loop runs (SyncClient)."""
    return otel_context.get_current() if _otel else None


async def within(context: Any, awaitable: Any) -> Any:
    """Await `awaitable` with `context` (from `current`) attached."""
    if context is None:
        return await awaitable
    token = otel_context.attach(context)
    try:
        return await awaitable
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def task_span(assignment: Any, *, worker_id: str, kind: str) -> Iterator[dict[str, str] | None]:
    """Run an assignment in its `cairn.task <name>` span, the current span
    for the block, child of the assignment's trace context. Yields the span's
    W3C context for the local calls an entrypoint makes (None for a task, or
    without OpenTelemetry)."""
    if not _otel:
        yield None
        return
    parent = _W3C.extract(dict(assignment.trace_context), otel_context.Context())
    span = _tracer.start_span(
        f"cairn.task {assignment.name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "cairn.task_id": assignment.task_id,
            "cairn.task.name": assignment.name,
            "cairn.task.kind": kind,
            "cairn.run_id": assignment.run_id,
            "cairn.thread_id": assignment.thread_id,
            "cairn.namespace": assignment.namespace,
            "cairn.attempt": assignment.attempt,
            "cairn.worker_id": worker_id,
            "cairn.sdk.language": "python",
        },
    )
    context = trace.set_span_in_context(span, parent)
    carrier: dict[str, str] | None = None
    if kind == "entrypoint":  # only entrypoints make local calls
        carrier = {}
        _W3C.inject(carrier, context)
    token = otel_context.attach(context)
    try:
        yield carrier
    finally:
        otel_context.detach(token)
        span.end()


def task_failed(error: BaseException) -> None:
    """The current task span's task raised `error`."""
    if _otel:
        span = trace.get_current_span()
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def task_outcome(outcome: str) -> None:
    """How the current task span's task ended: completed, failed,
    interrupted, sleeping, suspended, cancelled or abandoned (as the worker's
    cairn_worker_tasks_total counts it)."""
    if _otel:
        trace.get_current_span().set_attribute("cairn.task.outcome", outcome)
