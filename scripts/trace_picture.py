"""Draw one real trace as docs/trace.svg, the picture in README's "Observe it".

    .venv/bin/python scripts/trace_picture.py [--out docs/trace.svg]

Starts a server (SQLite in a temporary directory, 127.0.0.1:0) and a Python
worker in this process with an in-memory span exporter, invokes an
entrypoint that calls a task twice and then interrupts, resumes it, and
draws the spans of the trace as a waterfall: one row per span, indented by
its depth, its bar placed by its start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import pathlib
import tempfile

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cairn import Client, Command, Worker, entrypoint, interrupt, task
from cairn_server.server import ServerConfig, create_server

ROOT = pathlib.Path(__file__).resolve().parent.parent


@task
def research(topic: str) -> str:
    return f"notes on {topic}"


@task
def write(notes: str) -> str:
    return f"an essay from {notes}"


@entrypoint()
def essay(topic: str) -> dict[str, object]:
    draft = write(research(topic).result()).result()
    approved = interrupt({"draft": draft})
    return {"draft": draft, "approved": approved}


async def record() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with tempfile.TemporaryDirectory() as folder:
        config = ServerConfig(address="127.0.0.1:0", store_url=f"sqlite:///{folder}/t.db")
        server, port = await create_server(config)
        address = f"127.0.0.1:{port}"
        worker = Worker(address, functions=[research, write, essay], local_calls=False)
        running = asyncio.create_task(worker.run())
        try:
            async with Client(address) as client:
                with trace.get_tracer("app").start_as_current_span("app: write an essay"):
                    await client.invoke(essay, "cats", thread_id="t1", durability="sync")
                with trace.get_tracer("app").start_as_current_span("app: approve it"):
                    await client.invoke(essay, Command(resume=True), thread_id="t1")
        finally:
            await worker.stop()
            await running
            await server.stop(grace=0.5)
    first = next(s for s in exporter.get_finished_spans() if s.name == "app: write an essay")
    trace_id = first.context.trace_id
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def ordered(spans: list[ReadableSpan]) -> list[tuple[int, ReadableSpan]]:
    """(depth, span) in tree order, children by start time."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)
    rows: list[tuple[int, ReadableSpan]] = []

    def visit(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            rows.append((depth, span))
            visit(span.context.span_id, depth + 1)

    visit(None, 0)
    return rows


def draw(spans: list[ReadableSpan]) -> str:
    rows = ordered(spans)
    start = min(s.start_time or 0 for s in spans)
    end = max(s.end_time or 0 for s in spans)
    label_width, bar_width, row_height = 330, 560, 22
    width, height = label_width + bar_width + 90, row_height * len(rows) + 40
    scale = bar_width / max(end - start, 1)
    colors = {"app": "#8a8a8a", "cairn.invoke": "#4e79a7", "cairn.run": "#f28e2b"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="18" font-weight="bold">One trace: invoke, interrupt, resume'
        f" ({(end - start) / 1e6:.1f} ms)</text>",
    ]
    for row, (depth, span) in enumerate(rows):
        y = 30 + row * row_height
        kind = span.name.split(" ")[0].split(":")[0]
        color = colors.get(kind, "#59a14f" if kind == "cairn.task" else "#b07aa1")
        x = label_width + ((span.start_time or 0) - start) * scale
        duration = (span.end_time or 0) - (span.start_time or 0)
        bar = max(duration * scale, 1.5)
        name = html.escape(span.name)
        parts += [
            f'<text x="{8 + depth * 14}" y="{y + 14}">{name}</text>',
            f'<rect x="{x:.1f}" y="{y + 4}" width="{bar:.1f}" height="13" rx="2" fill="{color}"/>',
            f'<text x="{x + bar + 4:.1f}" y="{y + 14}" fill="#555">{duration / 1e6:.2f} ms</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "trace.svg")
    args = parser.parse_args()
    spans = asyncio.run(record())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(draw(spans))
    print(f"{len(spans)} spans drawn to {args.out}")


if __name__ == "__main__":
    main()
