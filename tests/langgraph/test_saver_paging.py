"""CairnSaver.list / alist fetch ListCheckpoints page by page, lazily, with
`limit` as a cap over all pages, against the real servicer.

A server that honours page_size answers in pages chained by next_page_token;
one that does not returns everything in one response without a token. Either
way the saver yields the same checkpoints; the recorded exchanges show which
server it talked to and that the saver followed the tokens."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import pytest

pytest.importorskip("langgraph.checkpoint.base")

from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint

from cairn._failover_calls import FailoverCalls
from cairn.langgraph import CairnSaver
from cairn.v1 import checkpoint_service_pb2 as pb
from cairn.v1.checkpoint_service_pb2_grpc import CheckpointServiceStub

PAGE = 4
CHECKPOINTS = 10
Exchange = tuple[pb.ListCheckpointsRequest, pb.ListCheckpointsResponse]


class _Recorder:
    """A CheckpointService stub that records each ListCheckpoints exchange,
    over a blocking or an asyncio channel."""

    def __init__(self, stub: Any, exchanges: list[Exchange]) -> None:
        self._stub = stub
        self._exchanges = exchanges

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def _record(self, request: pb.ListCheckpointsRequest, response: Any) -> None:
        copy = pb.ListCheckpointsRequest()
        copy.CopyFrom(request)  # the saver reuses its request for the next page
        self._exchanges.append((copy, response))

    def ListCheckpoints(self, request: pb.ListCheckpointsRequest) -> Any:
        response = self._stub.ListCheckpoints(request)
        if isinstance(response, pb.ListCheckpointsResponse):
            self._record(request, response)
            return response

        async def call() -> pb.ListCheckpointsResponse:
            answered: pb.ListCheckpointsResponse = await response
            self._record(request, answered)
            return answered

        return call()


class RecordingSaver(CairnSaver):
    def __init__(self, address: str, **options: Any) -> None:
        super().__init__(address, **options)
        self.exchanges: list[Exchange] = []
        self._calls = FailoverCalls(
            lambda channel: _Recorder(CheckpointServiceStub(channel), self.exchanges),
            self._settings,
            self.addresses,
            self.failover_timeout,
            logging.getLogger(__name__),
        )


def config(thread_id: str, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def fill(saver: CairnSaver, thread_id: str) -> list[str]:
    """CHECKPOINTS checkpoints on one thread, even steps from the loop and odd
    ones from an update; their ids newest first."""
    ids = []
    parent = config(thread_id)
    for step in range(CHECKPOINTS):
        checkpoint = empty_checkpoint()
        metadata: Any = {"step": step, "source": "loop" if step % 2 == 0 else "update"}
        parent = await saver.aput(parent, checkpoint, metadata, {})
        ids.append(checkpoint["id"])
    return ids[::-1]


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


def assert_followed_pages(exchanges: list[Exchange], returned: int) -> None:
    """The saver asked for PAGE per page, passed on each token unchanged with
    the same other fields, and stopped at the last page (or at its limit)."""
    first, _ = exchanges[0]
    assert first.page_size == PAGE and first.page_token == ""
    for (_, response), (request, _) in itertools.pairwise(exchanges):
        assert response.next_page_token
        assert request.page_token == response.next_page_token
        assert request.limit == first.limit and request.filter_json == first.filter_json
    paged = len(exchanges[0][1].checkpoints) <= PAGE and bool(exchanges[0][1].next_page_token)
    if paged:  # the server honours page_size
        assert all(len(r.checkpoints) <= PAGE for _, r in exchanges)
        assert len(exchanges) == -(-returned // PAGE)
    else:  # one page without a token, as a server that predates paging answers
        assert len(exchanges) == 1


ListAll = Callable[..., Awaitable[list[CheckpointTuple]]]


@pytest.fixture(params=["sync", "async"])
def list_all(request: pytest.FixtureRequest) -> ListAll:
    """saver.list (run in a thread, off the loop that serves) or saver.alist."""

    async def use(saver: CairnSaver, *args: Any, **kwargs: Any) -> list[CheckpointTuple]:
        if request.param == "sync":
            return await asyncio.to_thread(lambda: list(saver.list(*args, **kwargs)))
        return [t async for t in saver.alist(*args, **kwargs)]

    return use


async def test_every_checkpoint_over_several_pages(address: str, list_all: ListAll) -> None:
    async with RecordingSaver(address, page_size=PAGE) as saver:
        newest_first = await fill(saver, "t")
        found = await list_all(saver, config("t"))
        assert ids(found) == newest_first
        assert [t.metadata["step"] for t in found] == list(range(CHECKPOINTS))[::-1]
        assert_followed_pages(saver.exchanges, CHECKPOINTS)


async def test_limit_caps_the_total_over_pages(address: str, list_all: ListAll) -> None:
    async with RecordingSaver(address, page_size=PAGE) as saver:
        newest_first = await fill(saver, "t")
        for limit in (1, PAGE, PAGE + 1, CHECKPOINTS - 1, CHECKPOINTS, CHECKPOINTS + 5):
            saver.exchanges.clear()
            found = await list_all(saver, config("t"), limit=limit)
            assert ids(found) == newest_first[:limit], limit
            assert_followed_pages(saver.exchanges, min(limit, CHECKPOINTS))
            assert all(request.limit == limit for request, _ in saver.exchanges)


async def test_zero_limit_lists_nothing_as_langgraphs_savers(
    address: str, list_all: ListAll
) -> None:
    async with RecordingSaver(address, page_size=PAGE) as saver:
        await fill(saver, "t")
        assert await list_all(saver, config("t"), limit=0) == []
        assert saver.exchanges == []


async def test_filter_and_before_over_pages(address: str, list_all: ListAll) -> None:
    async with RecordingSaver(address, page_size=PAGE) as saver:
        newest_first = await fill(saver, "t")
        await fill(saver, "later")  # every id above t's: none is before t's second newest
        before = config("t", newest_first[1])
        found = await list_all(saver, None, filter={"source": "loop"}, before=before)
        assert [t.metadata["step"] for t in found] == [6, 4, 2, 0]
        assert {t.config["configurable"]["thread_id"] for t in found} == {"t"}
        assert_followed_pages(saver.exchanges, len(found))


async def test_list_fetches_the_next_page_only_when_needed(address: str) -> None:
    def use() -> None:
        with RecordingSaver(address, page_size=PAGE) as saver:
            parent = config("t")
            for step in range(CHECKPOINTS):
                parent = saver.put(parent, empty_checkpoint(), {"step": step}, {})
            first = next(iter(saver.list(config("t"))))
            assert first.metadata["step"] == CHECKPOINTS - 1
            assert len(saver.exchanges) == 1
            taken = list(itertools.islice(saver.list(config("t")), PAGE))
            assert len(taken) == PAGE and len(saver.exchanges) == 2

    await asyncio.to_thread(use)


async def test_alist_fetches_the_next_page_only_when_needed(address: str) -> None:
    async with RecordingSaver(address, page_size=PAGE) as saver:
        await fill(saver, "t")
        pages = cast(AsyncGenerator[CheckpointTuple], saver.alist(config("t")))
        first = await anext(pages)
        assert first.metadata["step"] == CHECKPOINTS - 1
        assert len(saver.exchanges) == 1
        await pages.aclose()


def test_page_size_is_checked() -> None:
    with pytest.raises(ValueError, match="page_size"):
        CairnSaver(page_size=1001)
    with pytest.raises(ValueError, match="page_size"):
        CairnSaver(page_size=-1)
