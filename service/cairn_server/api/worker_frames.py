"""What goes down a worker's Connect stream, message by message, within the
stream's size limit.

Ready messages go as one ConnectResponseBatch when the worker reads batches,
as long as the batch stays within the page budget. An assignment whose
journal does not fit the budget goes as its head (the first entries that
fit, maybe none; `journal_continues`) and JournalPage messages, built one
at a time as the stream takes them: a journal of any size never sits in
memory as protobufs all at once. A message that cannot be sent at all (too large for the
stream, or a journal too large for a worker that reads no pages) becomes an
`Undeliverable`, which the servicer turns into a failure of that task only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cairn.v1 import worker_service_pb2
from cairn_server.api.message_sizes import FIELD_OVERHEAD, MIB
from cairn_server.api.values import to_value
from cairn_server.dispatch.messages import Assignment
from cairn_server.engine.decisions import JournalEntry

pb = worker_service_pb2


def page_budget(max_payload_bytes: int) -> int:
    """How many bytes of journal one message carries (plus one entry)."""
    return min(max_payload_bytes, MIB)


@dataclass(slots=True, frozen=True)
class Undeliverable:
    """`item` cannot be sent: its message (or the assignment's head, or one
    of its pages) is `size` bytes and the stream carries at most `limit`.
    `started` says whether part of it (an assignment's head and pages) was
    sent already."""

    item: Any
    size: int
    limit: int
    started: bool = False
    why: str = ""


@dataclass(slots=True, frozen=True)
class Shipped:
    """An assignment was sent in `pages` messages of `size` bytes in all."""

    task_id: str
    size: int
    pages: int


Frame = pb.ConnectResponse | Undeliverable | Shipped


class Framer:
    """Turns ready outbox items into the messages of one worker's stream."""

    def __init__(
        self,
        *,
        max_message: int,
        budget: int,
        batches: bool,
        pages: bool,
        to_pb: Any,
    ) -> None:
        self.max_message = max_message
        self.budget = budget
        self.batches = batches
        self.pages = pages
        self._to_pb = to_pb  # item -> ConnectResponse (the journal left out of assignments)

    def frames(self, items: list[Any]) -> Iterator[Frame]:
        """The messages for `items`, in order; a batch never holds pages."""
        batch: list[pb.ConnectResponse] = []
        batch_size = 0
        for item in items:
            if isinstance(item, Assignment) and item.journal:
                yield from self._flush(batch)
                batch, batch_size = [], 0
                yield from self._assignment(item)
                continue
            message = self._to_pb(item)
            size = message.ByteSize()
            if size > self.max_message:
                yield Undeliverable(item, size, self.max_message)
                continue
            if batch and (not self.batches or batch_size + size > self.budget):
                yield from self._flush(batch)
                batch, batch_size = [], 0
            batch.append(message)
            batch_size += size + FIELD_OVERHEAD
        yield from self._flush(batch)

    @staticmethod
    def _flush(batch: list[pb.ConnectResponse]) -> Iterator[pb.ConnectResponse]:
        if len(batch) == 1:
            yield batch[0]
        elif batch:
            yield pb.ConnectResponse(batch=pb.ConnectResponseBatch(responses=batch))

    def _assignment(self, item: Assignment) -> Iterator[Frame]:
        response = self._to_pb(item)
        head = response.assignment
        size = response.ByteSize()
        if size > self.max_message:
            yield Undeliverable(item, size, self.max_message, why="its input and resume values")
            return
        entries = _entries(item.journal)
        budget = self.budget if self.pages else self.max_message
        for entry, entry_size in entries:
            if size + entry_size > budget and head.journal:
                break
            if size + entry_size > self.max_message:
                if self.pages:  # large input and resume values: the entry goes in a page
                    break
                yield Undeliverable(item, size + entry_size, self.max_message, why="its journal")
                return
            head.journal.append(entry)
            size += entry_size
        else:
            yield response
            yield Shipped(item.task_id, size, 1)
            return
        if not self.pages:
            whole = size + sum(s for _, s in entries) + entry_size
            yield Undeliverable(
                item,
                whole,
                self.max_message,
                why="its journal (this worker reads no journal pages: accepts_journal_pages)",
            )
            return
        head.journal_continues = True
        yield response
        del response, head
        total = size
        sent = 1
        pending: tuple[pb.JournalEntry, int] | None = (entry, entry_size)
        while pending is not None:
            page = pb.JournalPage(task_id=item.task_id)
            page_size = page.ByteSize() + 8  # the ConnectResponse around it and `last`
            while pending is not None:
                entry, entry_size = pending
                if page.entries and page_size + entry_size > self.budget:
                    break
                if page_size + entry_size > self.max_message:
                    yield Undeliverable(
                        item, page_size + entry_size, self.max_message, True, "a journal entry"
                    )
                    return
                page.entries.append(entry)
                page_size += entry_size
                pending = next(entries, None)
            page.last = pending is None
            yield pb.ConnectResponse(journal_page=page)
            total += page_size
            sent += 1
        yield Shipped(item.task_id, total, sent)


def _entries(journal: tuple[JournalEntry, ...]) -> Iterator[tuple[pb.JournalEntry, int]]:
    """Each journal entry as protobuf with its size in a repeated field, made
    as it is needed."""
    for e in journal:
        entry = pb.JournalEntry(index=e.index, name=e.name, task_id=e.task_id)
        to_value(e.result, entry.result)
        yield entry, entry.ByteSize() + FIELD_OVERHEAD
