"""The journal-page protocol as a worker in another language sees it
(WorkerHello.accepts_journal_pages, TaskAssignment.journal_continues,
JournalPage), driven over a raw Connect stream against a server whose
payload limit is 64 KiB, so that a journal of 40 results of 60 KB (2.4 MB)
exceeds a message (1.06 MiB + 64 KiB * 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cairn._values import to_json, to_value
from cairn.v1 import run_pb2
from cairn.v1 import run_service_pb2 as rpb
from cairn.v1 import worker_service_pb2 as wpb
from cairn_server.api.message_sizes import max_message_bytes
from cairn_server.api.worker_frames import Framer, Shipped, Undeliverable, page_budget
from cairn_server.dispatch.messages import Assignment
from cairn_server.engine.decisions import JournalEntry
from tests.api import raw_journal
from tests.api.conftest import LIMIT, Api

WAIT = 10.0
CALLS = 40


def chunk(i: int) -> str:
    return f"{i:03d}" + "c" * 60_000


read = raw_journal.read


async def connect(api: Api, *, pages: bool) -> Any:
    call = api.workers.Connect()
    hello = wpb.WorkerHello(
        registrations=[
            wpb.Registration(name="raw_journal", kind=wpb.TASK_KIND_ENTRYPOINT),
            wpb.Registration(name="raw_chunk", kind=wpb.TASK_KIND_TASK),
        ],
        sdk_language="raw",
        accepts_journal_pages=pages,
    )
    await call.write(wpb.ConnectRequest(hello=hello))
    welcome = await read(call)
    assert welcome.welcome.sends_journal_pages is pages
    return call


def invoke(thread_id: str, **fields: Any) -> rpb.InvokeRequest:
    return rpb.InvokeRequest(
        thread_id=thread_id, target="raw_journal", create_thread=True, **fields
    )


async def record_calls_then_interrupt(api: Api, call: Any, thread_id: str) -> None:
    """Run raw_journal to an interrupt after CALLS recorded calls of
    raw_chunk, this stream running both."""
    request = invoke(thread_id, input=to_value(0))
    await raw_journal.record_calls_then_interrupt(api.runs, call, request, calls=CALLS, chunk=chunk)


async def test_a_journal_over_a_message_comes_in_pages(api: Api) -> None:
    call = await connect(api, pages=True)
    try:
        await record_calls_then_interrupt(api, call, "paged")
        resumed = asyncio.ensure_future(
            api.runs.Invoke(invoke("paged", command=run_pb2.Command(resume=to_value("go"))))
        )
        first = await read(call)
        head = first.assignment
        assert head.journal_continues
        assert 0 < len(head.journal) < CALLS
        assert first.ByteSize() <= page_budget(LIMIT) + 70_000
        entries = list(head.journal)
        pages = 0
        while True:
            message = await read(call)
            assert message.WhichOneof("kind") == "journal_page", message
            page = message.journal_page
            assert page.task_id == head.task_id and page.entries
            assert message.ByteSize() <= page_budget(LIMIT) + 70_000
            entries.extend(page.entries)
            pages += 1
            if page.last:
                break
        assert pages >= 2
        assert [e.index for e in entries] == list(range(CALLS))
        assert all(e.name == "raw_chunk" for e in entries)
        assert [to_json(e.result) for e in entries] == [chunk(i) for i in range(CALLS)]
        whole = sum(e.ByteSize() for e in entries)
        assert whole > max_message_bytes(LIMIT)  # one message could not have held it

        done = wpb.TaskCompleted(task_id=head.task_id, result=to_value(len(entries)))
        await call.write(wpb.ConnectRequest(completed=done))
        response = await asyncio.wait_for(resumed, WAIT)
        assert response.run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert to_json(response.run.output) == CALLS
    finally:
        call.cancel()


async def test_a_worker_that_reads_no_pages_fails_the_run_not_the_stream(api: Api) -> None:
    call = await connect(api, pages=False)
    try:
        await record_calls_then_interrupt(api, call, "unpaged")
        response = await asyncio.wait_for(
            api.runs.Invoke(invoke("unpaged", command=run_pb2.Command(resume=to_value("go")))),
            WAIT,
        )
        assert response.run.state == run_pb2.RUN_STATE_FAILED
        error = response.run.error
        assert error.type == "MessageTooLargeError" and not error.retryable
        assert "accepts_journal_pages" in error.message
        assert f"at most {max_message_bytes(LIMIT)} bytes" in error.message

        # The stream stays open and serves the next run.
        other = asyncio.ensure_future(api.runs.Invoke(invoke("next", input=to_value(1))))
        entry = (await read(call)).assignment
        assert entry.name == "raw_journal" and entry.thread_id == "next"
        done = wpb.TaskCompleted(task_id=entry.task_id, result=to_value("ok"))
        await call.write(wpb.ConnectRequest(completed=done))
        finished = await asyncio.wait_for(other, WAIT)
        assert finished.run.state == run_pb2.RUN_STATE_SUCCEEDED
    finally:
        call.cancel()


@pytest.mark.parametrize("pages", [True, False])
def test_resume_values_too_large_for_a_message_are_undeliverable(pages: bool) -> None:
    """A run's input is checked against the payload limit, so only a
    resume carrying many values can outgrow a message; the same rule holds
    for it: the run fails, the stream stays (checked with a forged one)."""
    framer = Framer(
        max_message=max_message_bytes(LIMIT),
        budget=page_budget(LIMIT),
        batches=True,
        pages=pages,
        to_pb=lambda item: wpb.ConnectResponse(
            assignment=wpb.TaskAssignment(
                task_id=item.task_id, resume=[to_value(v) for v in item.resume]
            )
        ),
    )
    resume = tuple("r" * 60_000 for _ in range(30))  # 1.8 MB of resume values
    assignment = Assignment(
        task_id="t",
        name="raw_journal",
        run_id="r",
        thread_id="default\x1fthread",
        checkpoint_id="c",
        attempt=1,
        input=None,
        journal=(),
        resume=resume,
        path=(),
        is_root=True,
    )
    frames = list(framer.frames([assignment]))
    assert len(frames) == 1 and isinstance(frames[0], Undeliverable)
    assert frames[0].size > frames[0].limit == max_message_bytes(LIMIT)


def test_large_resume_values_leave_the_journal_to_pages() -> None:
    """An assignment whose input and resume values nearly fill a message
    goes with no entries in its head when the worker reads pages: the
    journal follows in pages (before, its first entry had to fit the head,
    and the task failed)."""
    framer = Framer(
        max_message=max_message_bytes(LIMIT),
        budget=page_budget(LIMIT),
        batches=True,
        pages=True,
        to_pb=lambda item: wpb.ConnectResponse(
            assignment=wpb.TaskAssignment(
                task_id=item.task_id, resume=[to_value(v) for v in item.resume]
            )
        ),
    )
    resume = tuple("r" * 60_000 for _ in range(19))  # 1.14 MB, a 60 KB entry more is too much
    journal = tuple(JournalEntry(i, "raw_chunk", f"c{i}", chunk(i)) for i in range(3))
    assignment = Assignment(
        task_id="t",
        name="raw_journal",
        run_id="r",
        thread_id="default\x1fthread",
        checkpoint_id="c",
        attempt=1,
        input=None,
        journal=journal,
        resume=resume,
        path=(),
        is_root=True,
    )
    frames = list(framer.frames([assignment]))
    assert not [f for f in frames if isinstance(f, Undeliverable)], frames
    head, *pages, shipped = frames
    assert isinstance(head, wpb.ConnectResponse) and isinstance(shipped, Shipped)
    assert head.assignment.journal_continues and not head.assignment.journal
    assert len(head.assignment.resume) == len(resume)
    entries = [e for page in pages for e in page.journal_page.entries]
    assert [to_json(e.result) for e in entries] == [chunk(i) for i in range(3)]
    assert pages[-1].journal_page.last
    sizes = [head.ByteSize(), *(page.ByteSize() for page in pages)]
    assert max(sizes) <= max_message_bytes(LIMIT)
    assert shipped.pages == len(sizes)
