"""What every Store backend promises, checked through the Store interface.

Each test runs once per backend of conftest.BACKENDS. Raw checks (blob rows,
the migrations table) go through the backend's helper, never through the store.
The last section covers what only the SQLite backend has: in-memory stores and
its URL forms.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cairn_server import namespaces
from cairn_server.domain import (
    CheckpointRecord,
    Durability,
    ErrorRecord,
    EventRecord,
    InterruptRecord,
    Json,
    PendingWrite,
    RunRecord,
    RunState,
    StreamMode,
    ThreadRecord,
    ThreadStatus,
    WaitReason,
    WaitRecord,
)
from cairn_server.ids import new_id
from cairn_server.store import (
    Store,
    StoreError,
    ThreadAlreadyExists,
    ThreadStatusChange,
    WriteBatch,
    WriteSet,
    open_store,
)
from cairn_server.store.base import LgCheckpoint

if TYPE_CHECKING:
    from conftest import Backend

# --- builders -----------------------------------------------------------------


def make_thread(
    thread_id: str | None = None,
    *,
    created_at: float = 1.0,
    metadata: dict[str, Json] | None = None,
    status: ThreadStatus = ThreadStatus.IDLE,
) -> ThreadRecord:
    return ThreadRecord(
        thread_id=thread_id or new_id(),
        created_at=created_at,
        updated_at=created_at,
        metadata=metadata or {},
        status=status,
    )


def make_run(
    thread_id: str,
    run_id: str | None = None,
    *,
    state: RunState = RunState.PENDING,
    created_at: float = 1.0,
    request_id: str = "",
    **fields: Json,
) -> RunRecord:
    return RunRecord(
        run_id=run_id or new_id(),
        thread_id=thread_id,
        target="agent",
        state=state,
        durability=Durability.ASYNC,
        created_at=created_at,
        updated_at=created_at,
        checkpoint_id="",
        request_id=request_id,
        **fields,
    )


def make_checkpoint(
    thread_id: str,
    checkpoint_id: str,
    *,
    values: dict[str, Json] | None = None,
    versions: dict[str, str] | None = None,
    metadata: dict[str, Json] | None = None,
    parent: str | None = None,
    ns: str = "",
) -> CheckpointRecord:
    values = values or {}
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent,
        channel_values=values,
        channel_versions=versions if versions is not None else dict.fromkeys(values, "1"),
        metadata=metadata or {},
        created_at=1.0,
    )


def make_event(run_id: str, event_id: int, data: Json = None) -> EventRecord:
    return EventRecord(
        run_id=run_id,
        event_id=event_id,
        created_at=float(event_id),
        kind="chunk",
        payload={"mode": "custom", "data": data, "namespace": []},
    )


async def all_threads(store: Store, limit: int, **filters: Json) -> list[list[ThreadRecord]]:
    """Every page of list_threads, following the tokens to the end."""
    pages: list[list[ThreadRecord]] = []
    token = ""
    while True:
        page, token = await store.list_threads(limit=limit, page_token=token, **filters)
        pages.append(page)
        if not token:
            return pages
        assert len(pages) < 100, "page tokens do not end"


# --- threads ------------------------------------------------------------------


async def test_create_and_get_thread(store: Store) -> None:
    thread = make_thread(metadata={"user": "ada", "tags": ["a", "b"], "n": 3}, created_at=5.5)
    await store.create_thread(thread)

    assert await store.get_thread(thread.thread_id) == thread
    assert await store.get_thread("missing") is None


async def test_create_thread_twice_raises_and_keeps_the_first(store: Store) -> None:
    first = make_thread("t", metadata={"v": 1})
    await store.create_thread(first)

    with pytest.raises(ThreadAlreadyExists) as raised:
        await store.create_thread(make_thread("t", metadata={"v": 2}))

    assert raised.value.thread_id == "t"
    assert await store.get_thread("t") == first


async def test_commit_upserts_threads_and_changes_status(store: Store) -> None:
    await store.commit(WriteBatch(threads=[make_thread("t", metadata={"v": 1})]))
    await store.commit(WriteBatch(threads=[make_thread("t", metadata={"v": 2})]))
    await store.commit(
        WriteBatch(thread_statuses=[ThreadStatusChange("t", ThreadStatus.BUSY, 9.0)])
    )

    thread = await store.get_thread("t")
    assert thread is not None
    assert (thread.metadata, thread.status, thread.updated_at) == ({"v": 2}, "busy", 9.0)
    assert isinstance(thread.status, ThreadStatus)


async def fill_thread(store: Store, thread_id: str) -> tuple[str, str]:
    """A thread with a run, two checkpoints, writes and events; (run_id, checkpoint_id)."""
    run = make_run(thread_id)
    cp1, cp2 = new_id(), new_id()
    await store.create_thread(make_thread(thread_id))
    await store.commit(
        WriteBatch(
            runs=[run],
            checkpoints=[
                make_checkpoint(thread_id, cp1, values={"a": 1, "b": 1}),
                make_checkpoint(thread_id, cp2, values={"a": 2}, versions={"a": "2", "b": "1"}),
            ],
            writes=[WriteSet(thread_id, "", cp2, [PendingWrite("task", 0, "a", 3)])],
            events=[make_event(run.run_id, 1), make_event(run.run_id, 2)],
        )
    )
    return run.run_id, cp2


async def test_delete_thread_removes_its_runs_checkpoints_writes_and_events(
    store: Store, store_url: str, backend: Backend
) -> None:
    run_id, cp_id = await fill_thread(store, "doomed")
    kept_run, kept_cp = await fill_thread(store, "kept")

    assert await store.delete_thread("doomed") is True

    assert await store.get_thread("doomed") is None
    assert await store.get_run(run_id) is None
    assert await store.list_runs("doomed", limit=10) == ([], "")
    assert await store.get_checkpoint("doomed") is None
    assert await store.list_checkpoints("doomed") == []
    assert await store.get_writes("doomed", "", cp_id) == []
    assert await store.read_events(run_id) == []
    assert await store.last_event_id(run_id) == 0
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert backend.count_rows(store_url, table, thread_id="doomed") == 0
    # The other thread is untouched.
    assert await store.get_run(kept_run) is not None
    kept = await store.get_checkpoint("kept")
    assert kept is not None and kept.channel_values == {"a": 2, "b": 1}
    assert len(await store.get_writes("kept", "", kept_cp)) == 1
    assert await store.last_event_id(kept_run) == 2

    assert await store.delete_thread("doomed") is False


async def test_list_threads_pages_newest_first_each_thread_once(store: Store) -> None:
    # Pairs share a created_at, so the id has to break ties for paging to work.
    threads = [make_thread(new_id(), created_at=float(i // 2)) for i in range(11)]
    for thread in threads:
        await store.create_thread(thread)
    expected = sorted(threads, key=lambda t: (t.created_at, t.thread_id), reverse=True)

    pages = await all_threads(store, limit=3)

    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert [t for page in pages for t in page] == expected
    assert await all_threads(store, limit=11) == [expected]


async def test_list_threads_of_an_empty_store(store: Store) -> None:
    assert await store.list_threads(limit=5) == ([], "")


async def test_list_threads_filters_on_metadata_and_status(store: Store) -> None:
    specs: list[tuple[dict[str, Json], ThreadStatus]] = [
        ({"user": "ada", "n": 1, "vip": True, "org": {"id": 7}}, ThreadStatus.IDLE),
        ({"user": "ada", "n": 2, "vip": False}, ThreadStatus.BUSY),
        ({"user": "bob", "n": 1, "vip": True, "org": {"id": 8}}, ThreadStatus.IDLE),
        ({"user": "ada", "n": "1", "note": None}, ThreadStatus.ERROR),
        ({}, ThreadStatus.IDLE),
    ]
    ids = []
    for i, (metadata, status) in enumerate(specs):
        thread = make_thread(f"t{i}", created_at=float(i), metadata=metadata, status=status)
        await store.create_thread(thread)
        ids.append(thread.thread_id)

    async def matching(**filters: Json) -> list[str]:
        pages = await all_threads(store, limit=2, **filters)
        return sorted(t.thread_id for page in pages for t in page)

    assert await matching(metadata={"user": "ada"}) == ["t0", "t1", "t3"]
    assert await matching(metadata={"user": "ada", "n": 1}) == ["t0"]  # "1" is not 1
    assert await matching(metadata={"n": 1.0}) == ["t0", "t2"]  # Struct numbers are floats
    assert await matching(metadata={"vip": True}) == ["t0", "t2"]
    assert await matching(metadata={"vip": False}) == ["t1"]
    assert await matching(metadata={"org": {"id": 8}}) == ["t2"]
    assert await matching(metadata={"note": None}) == ["t3"]  # present and null
    assert await matching(metadata={"user": "eve"}) == []
    assert await matching(metadata={}) == ids
    assert await matching(status=ThreadStatus.IDLE) == ["t0", "t2", "t4"]
    assert await matching(status=ThreadStatus.IDLE, metadata={"user": "ada"}) == ["t0"]
    assert await matching(status=ThreadStatus.INTERRUPTED) == []


async def test_list_threads_rejects_a_foreign_page_token(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.list_threads(limit=5, page_token="not a token")


# --- runs ---------------------------------------------------------------------


async def test_run_round_trips_every_field_and_upserts(store: Store) -> None:
    run = make_run(
        "t",
        state=RunState.INTERRUPTED,
        metadata={"source": "api", "nested": {"k": [1, 2.5, None]}},
        stream_modes=[StreamMode.VALUES, StreamMode.CUSTOM],
        request_id="req-1",
        has_output=True,
        output=None,  # a run may return None: has_output tells it apart from no output
        interrupts=[InterruptRecord("i1", {"ask": "ok?"}, "task-1", "approve", 0)],
        error=ErrorRecord("ValueError", "bad", retryable=True, traceback="tb", details={"x": 1}),
        waiting=[
            WaitRecord(WaitReason.NO_WORKER, "task-2", "fetch", 1.5, None, ("sub:task-1",)),
            WaitRecord(WaitReason.RETRY_BACKOFF, "task-3", "save", 2.0, 4.5),
        ],
    )
    await store.commit(WriteBatch(runs=[run]))

    stored = await store.get_run(run.run_id)
    assert stored == run
    assert stored is not None
    assert isinstance(stored.state, RunState) and isinstance(stored.durability, Durability)
    assert all(isinstance(mode, StreamMode) for mode in stored.stream_modes)

    run.state, run.has_output, run.output, run.error = RunState.SUCCEEDED, True, {"a": 1}, None
    run.interrupts, run.waiting = [], []
    await store.commit(WriteBatch(runs=[run]))
    assert await store.get_run(run.run_id) == run
    assert await store.get_run("missing") is None


async def test_find_run_by_request_id(store: Store) -> None:
    run = make_run("t1", request_id="req-1")
    await store.commit(WriteBatch(runs=[run, make_run("t1"), make_run("t2", request_id="req-2")]))

    assert await store.find_run_by_request_id("t1", "req-1") == run
    assert await store.find_run_by_request_id("t2", "req-1") is None
    assert await store.find_run_by_request_id("t1", "req-2") is None
    assert await store.find_run_by_request_id("t1", "") is None


async def test_the_same_request_id_serves_each_thread_once(store: Store) -> None:
    await store.commit(
        WriteBatch(runs=[make_run("t1", request_id="r"), make_run("t2", request_id="r")])
    )
    thread = make_thread("t1")

    with pytest.raises(StoreError):
        await store.commit(WriteBatch(threads=[thread], runs=[make_run("t1", request_id="r")]))

    assert await store.get_thread("t1") is None  # the failed batch left nothing behind
    assert len((await store.list_runs("t1", limit=10))[0]) == 1


async def test_list_runs_pages_newest_first_with_state_filter(store: Store) -> None:
    runs = [make_run("t", state=RunState.SUCCEEDED if i % 3 else RunState.FAILED) for i in range(8)]
    await store.commit(WriteBatch(runs=[*runs, make_run("other")]))
    newest_first = runs[::-1]

    seen: list[RunRecord] = []
    token = ""
    sizes = []
    while True:
        page, token = await store.list_runs("t", limit=3, page_token=token)
        seen.extend(page)
        sizes.append(len(page))
        if not token:
            break
    assert sizes == [3, 3, 2]
    assert seen == newest_first

    failed, token = await store.list_runs("t", limit=10, state=RunState.FAILED)
    assert failed == [r for r in newest_first if r.state == RunState.FAILED]
    assert token == ""


async def test_list_active_runs_oldest_first(store: Store) -> None:
    states = [RunState.RUNNING, RunState.SUCCEEDED, RunState.PENDING, RunState.INTERRUPTED]
    states += [RunState.RUNNING, RunState.CANCELLED, RunState.FAILED]
    runs = [
        make_run(f"t{i % 2}", state=state, created_at=float(10 - i))
        for i, state in enumerate(states)
    ]
    await store.commit(WriteBatch(runs=runs))

    active = await store.list_active_runs()

    assert active == sorted((r for r in runs if r.state.active), key=lambda r: r.created_at)
    assert [r.created_at for r in active] == [6.0, 8.0, 10.0]


# --- checkpoints --------------------------------------------------------------


async def test_latest_checkpoint_is_the_highest_id(store: Store) -> None:
    ids = [new_id() for _ in range(3)]
    # Committed out of order: "latest" means the highest id, not the last insert.
    for version, cp_id in enumerate((ids[2], ids[0], ids[1]), start=1):
        cp = make_checkpoint("t", cp_id, values={"x": cp_id}, versions={"x": str(version)})
        await store.commit(WriteBatch(checkpoints=[cp]))
    await store.commit(
        WriteBatch(checkpoints=[make_checkpoint("t", new_id(), ns="child", values={"x": 0})])
    )

    latest = await store.get_checkpoint("t")
    assert latest is not None and latest.checkpoint_id == ids[2]
    first = await store.get_checkpoint("t", "", ids[0])
    assert first is not None and first.channel_values == {"x": ids[0]}
    assert await store.get_checkpoint("t", "", "missing") is None
    assert await store.get_checkpoint("other") is None
    child = await store.get_checkpoint("t", "child")
    assert child is not None and child.channel_values == {"x": 0}


async def test_checkpoint_is_inserted_once(store: Store) -> None:
    first = make_checkpoint("t", "c1", values={"x": 1}, metadata={"step": 0})
    await store.commit(WriteBatch(checkpoints=[first]))
    again = make_checkpoint("t", "c1", values={"x": 2}, metadata={"step": 9})
    await store.commit(WriteBatch(checkpoints=[again]))

    assert await store.get_checkpoint("t", "", "c1") == first


async def test_list_checkpoints_newest_first_with_before_limit_and_metadata(store: Store) -> None:
    ids = [new_id() for _ in range(6)]
    checkpoints = [
        make_checkpoint(
            "t",
            cp_id,
            values={"step": i},
            versions={"step": str(i + 1)},
            metadata={"step": i, "source": "loop" if i % 2 else "input"},
            parent=ids[i - 1] if i else None,
        )
        for i, cp_id in enumerate(ids)
    ]
    await store.commit(WriteBatch(checkpoints=checkpoints))
    newest_first = checkpoints[::-1]

    assert await store.list_checkpoints("t") == newest_first
    assert await store.list_checkpoints("t", before=ids[3]) == newest_first[3:]
    assert await store.list_checkpoints("t", limit=2) == newest_first[:2]
    assert await store.list_checkpoints("t", before=ids[5], limit=2) == newest_first[1:3]
    by_source = await store.list_checkpoints("t", metadata={"source": "loop"})
    assert [c.checkpoint_id for c in by_source] == [ids[5], ids[3], ids[1]]
    by_both = await store.list_checkpoints("t", metadata={"source": "loop", "step": 3})
    assert [c.checkpoint_id for c in by_both] == [ids[3]]
    assert await store.list_checkpoints("t", "other-ns") == []


async def test_unchanged_channel_is_read_from_an_earlier_blob(
    store: Store, store_url: str, backend: Backend
) -> None:
    big = {"messages": [{"role": "user", "content": "é" * 1000}]}
    c1, c2, c3 = new_id(), new_id(), new_id()
    await store.commit(
        WriteBatch(checkpoints=[make_checkpoint("t", c1, values={"history": big, "count": 1})])
    )
    # c2 and c3 change only "count"; "history" keeps version 1 and is not re-sent.
    await store.commit(
        WriteBatch(
            checkpoints=[
                make_checkpoint(
                    "t", c2, values={"count": 2}, versions={"history": "1", "count": "2"}
                ),
                make_checkpoint(
                    "t", c3, values={"count": 3}, versions={"history": "1", "count": "3"}
                ),
            ]
        )
    )

    for cp_id, count in ((c1, 1), (c2, 2), (c3, 3)):
        cp = await store.get_checkpoint("t", "", cp_id)
        assert cp is not None
        assert cp.channel_values == {"history": big, "count": count}
    assert [c.channel_values["count"] for c in await store.list_checkpoints("t")] == [3, 2, 1]
    assert backend.count_rows(store_url, "checkpoint_blobs", thread_id="t", channel="history") == 1
    assert backend.count_rows(store_url, "checkpoint_blobs", thread_id="t", channel="count") == 3


async def test_checkpoint_without_a_stored_value_is_refused(store: Store) -> None:
    orphan = make_checkpoint("t", "c1", values={"a": 1}, versions={"a": "1", "never_sent": "4"})

    with pytest.raises(StoreError, match="never_sent"):
        await store.commit(WriteBatch(threads=[make_thread("t")], checkpoints=[orphan]))

    assert await store.get_checkpoint("t") is None
    assert await store.get_thread("t") is None


async def test_empty_checkpoint_round_trips(store: Store) -> None:
    empty = make_checkpoint("t", "c1", values={}, versions={})
    await store.commit(WriteBatch(checkpoints=[empty]))

    assert await store.get_checkpoint("t") == empty
    assert await store.list_checkpoints("t") == [empty]


# --- pending writes -----------------------------------------------------------


async def test_writes_first_result_wins_special_channels_last_wins(store: Store) -> None:
    def writes(value: str) -> WriteSet:
        return WriteSet(
            "t",
            "",
            "c1",
            [
                PendingWrite("task-b", 1, "out", f"b1-{value}", task_path="~1"),
                PendingWrite("task-b", 0, "out", f"b0-{value}", task_path="~1"),
                PendingWrite("task-a", 0, "out", f"a0-{value}", task_path="~1"),
                PendingWrite("task-z", 0, "out", f"z0-{value}", task_path="~0"),
                PendingWrite("task-a", -1, "__error__", {"v": value}, task_path="~1"),
            ],
        )

    await store.commit(WriteBatch(writes=[writes("first")]))
    await store.commit(WriteBatch(writes=[writes("second")]))

    stored = await store.get_writes("t", "", "c1")
    assert [(w.task_path, w.task_id, w.idx) for w in stored] == [
        ("~0", "task-z", 0),
        ("~1", "task-a", -1),
        ("~1", "task-a", 0),
        ("~1", "task-b", 0),
        ("~1", "task-b", 1),
    ]
    assert [w.value for w in stored] == [
        "z0-first",
        {"v": "second"},  # idx < 0: upserted
        "a0-first",  # idx >= 0: the first recorded result wins
        "b0-first",
        "b1-first",
    ]
    assert await store.get_writes("t", "", "c2") == []


# --- events -------------------------------------------------------------------


async def test_events_read_after_limit_last_id_and_duplicates(store: Store) -> None:
    run_id = new_id()
    await store.commit(WriteBatch(events=[make_event(run_id, i, f"v{i}") for i in (1, 2, 3)]))
    await store.commit(
        WriteBatch(events=[make_event(run_id, 3, "again"), make_event(run_id, 4, "v4")])
    )
    await store.commit(WriteBatch(events=[make_event("other-run", 9)]))

    events = await store.read_events(run_id)
    assert [(e.event_id, e.payload["data"]) for e in events] == [
        (1, "v1"),
        (2, "v2"),
        (3, "v3"),  # the duplicate id was ignored
        (4, "v4"),
    ]
    assert events[0] == make_event(run_id, 1, "v1")
    assert [e.event_id for e in await store.read_events(run_id, after_event_id=2)] == [3, 4]
    assert [e.event_id for e in await store.read_events(run_id, 1, limit=2)] == [2, 3]
    assert await store.read_events(run_id, after_event_id=4) == []
    assert await store.last_event_id(run_id) == 4
    assert await store.last_event_id("no-such-run") == 0


# --- group commit and failures --------------------------------------------------


async def test_concurrent_commits_all_land_in_submission_order(store: Store) -> None:
    run = make_run("t", state=RunState.RUNNING)

    def step(i: int) -> WriteBatch:
        run_now = make_run("t", run.run_id, state=RunState.RUNNING, created_at=1.0)
        run_now.updated_at = float(i)
        return WriteBatch(
            runs=[run_now],
            events=[make_event(run.run_id, i)],
            thread_statuses=[ThreadStatusChange("t", ThreadStatus.BUSY, float(i))],
        )

    await store.create_thread(make_thread("t"))
    await asyncio.gather(*(store.commit(step(i)) for i in range(1, 201)))

    events = await store.read_events(run.run_id)
    assert [e.event_id for e in events] == list(range(1, 201))
    # Every batch upserts the same run: the last one submitted is the one left.
    stored = await store.get_run(run.run_id)
    assert stored is not None and stored.updated_at == 200.0
    thread = await store.get_thread("t")
    assert thread is not None and thread.updated_at == 200.0


async def test_creating_and_deleting_threads_keep_their_place_among_batches(store: Store) -> None:
    run = make_run("t")
    results = await asyncio.gather(
        store.create_thread(make_thread("t")),
        store.commit(WriteBatch(runs=[run], events=[make_event(run.run_id, 1)])),
        store.delete_thread("t"),
        store.commit(WriteBatch(events=[make_event(run.run_id, 2)])),
        store.create_thread(make_thread("t", metadata={"round": 2})),
    )

    assert results[2] is True
    assert await store.get_run(run.run_id) is None
    assert [e.event_id for e in await store.read_events(run.run_id)] == [2]
    thread = await store.get_thread("t")
    assert thread is not None and thread.metadata == {"round": 2}


async def test_failed_batch_is_not_applied_and_spares_its_neighbours(store: Store) -> None:
    await store.commit(WriteBatch(runs=[make_run("t", request_id="taken")]))
    good_before = WriteBatch(threads=[make_thread("before")])
    bad = WriteBatch(
        threads=[make_thread("bad")],
        events=[make_event("bad-run", 1)],
        runs=[make_run("t", request_id="taken")],  # violates (thread_id, request_id)
    )
    good_after = WriteBatch(threads=[make_thread("after")])

    results = await asyncio.gather(
        store.commit(good_before),
        store.commit(bad),
        store.commit(good_after),
        return_exceptions=True,
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError)
    assert await store.get_thread("bad") is None
    assert await store.read_events("bad-run") == []
    assert await store.get_thread("before") is not None
    assert await store.get_thread("after") is not None
    await store.commit(WriteBatch(threads=[make_thread("later")]))
    assert await store.get_thread("later") is not None


@pytest.mark.parametrize(
    ("value", "error"), [({1, 2}, TypeError), (math.nan, ValueError), (object(), TypeError)]
)
async def test_batch_with_a_value_that_is_not_json_raises_and_writes_nothing(
    store: Store, value: object, error: type[Exception]
) -> None:
    run = make_run("t")
    bad = WriteBatch(
        threads=[make_thread("t")],
        runs=[run],
        events=[make_event(run.run_id, 1, data=value)],
    )

    with pytest.raises(error):
        await store.commit(bad)

    assert await store.get_thread("t") is None
    assert await store.get_run(run.run_id) is None
    await store.commit(WriteBatch(threads=[make_thread("t")]))
    assert await store.get_thread("t") is not None


async def test_close_applies_every_submitted_commit(store_url: str) -> None:
    store = open_store(store_url)
    await store.open()
    run_id = new_id()
    commits = [store.commit(WriteBatch(events=[make_event(run_id, i)])) for i in range(1, 51)]
    # gather starts the commits in order before close() runs.
    await asyncio.gather(*commits, store.close())

    with pytest.raises(StoreError):
        await store.commit(WriteBatch(targets=["late"]))
    reopened = open_store(store_url)
    await reopened.open()
    try:
        assert await reopened.last_event_id(run_id) == 50
    finally:
        await reopened.close()


# --- lifecycle ----------------------------------------------------------------


async def test_data_survives_close_and_reopen(store_url: str) -> None:
    first = open_store(store_url)
    await first.open()
    run_id, cp_id = await fill_thread(first, "t")
    await first.commit(WriteBatch(targets=["agent"]))
    await first.close()

    second = open_store(store_url)
    await second.open()
    try:
        assert await second.get_thread("t") is not None
        assert await second.get_run(run_id) is not None
        cp = await second.get_checkpoint("t")
        assert cp is not None and cp.checkpoint_id == cp_id
        assert cp.channel_values == {"a": 2, "b": 1}
        assert len(await second.get_writes("t", "", cp_id)) == 1
        assert await second.last_event_id(run_id) == 2
        assert await second.known_targets() == {"agent"}
    finally:
        await second.close()


async def test_reopening_applies_no_migration_twice(store_url: str, backend: Backend) -> None:
    async def open_and_close() -> None:
        store = open_store(store_url)
        await store.open()
        await store.close()

    await open_and_close()
    applied = backend.migrations(store_url)
    await open_and_close()
    await open_and_close()

    assert backend.migrations(store_url) == applied  # same rows, same applied_at
    versions = [version for version, _name, _at in applied]
    assert versions == list(range(1, len(versions) + 1))
    assert applied[0][1].startswith("0001_")


async def test_concurrent_openers_apply_each_migration_exactly_once(
    store_url: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Several servers starting at once on one database: one applies the
    migrations, the others wait for it and find them applied."""
    caplog.set_level(logging.INFO, logger="cairn_server.store")
    stores = [open_store(store_url) for _ in range(4)]

    results = await asyncio.gather(*(store.open() for store in stores), return_exceptions=True)
    try:
        assert results == [None] * len(stores)
        applied = backend.migrations(store_url)
        versions = [version for version, _name, _at in applied]
        assert versions == list(range(1, len(versions) + 1))
        applying = [r.getMessage() for r in caplog.records if "migration" in r.getMessage()]
        assert len(applying) == len(applied), applying
        # Every opener works on the one schema.
        await stores[0].commit(WriteBatch(targets=["agent"]))
        assert [await store.known_targets() for store in stores] == [{"agent"}] * len(stores)
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_targets_round_trip(store: Store) -> None:
    assert await store.known_targets() == set()
    await store.commit(WriteBatch(targets=["checkout", "refund"]))
    await store.commit(WriteBatch(targets=["checkout"]))

    assert await store.known_targets() == {"checkout", "refund"}


async def test_graph_specs_round_trip_and_latest_registration_wins(store: Store) -> None:
    assert await store.known_graphs() == {}
    first = {"name": "agent", "nodes": [{"name": "a"}]}
    second = {"name": "agent", "nodes": [{"name": "a"}, {"name": "b"}]}
    await store.commit(WriteBatch(graphs=[("agent", first)]))
    await store.commit(WriteBatch(graphs=[("agent", second), ("other", first)]))

    assert await store.known_graphs() == {"agent": second, "other": first}


async def test_empty_commit_is_accepted(store: Store) -> None:
    await store.commit(WriteBatch())
    assert await store.list_threads(limit=1) == ([], "")


# --- sqlite only -----------------------------------------------------------------


async def test_sqlite_memory_store_sees_its_own_writes() -> None:
    stores = [open_store("sqlite://:memory:"), open_store("sqlite://:memory:")]
    for store in stores:
        await store.open()
    try:
        memory, other = stores
        run_id = new_id()
        await memory.create_thread(make_thread("t"))
        await asyncio.gather(
            *(memory.commit(WriteBatch(events=[make_event(run_id, i)])) for i in range(1, 101)),
            *(memory.get_thread("t") for _ in range(20)),
        )

        assert await memory.get_thread("t") is not None
        assert await memory.last_event_id(run_id) == 100
        assert await other.get_thread("t") is None  # each memory store is its own database
    finally:
        for store in stores:
            await store.close()


async def test_sqlite_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/cairn.db")
    await store.open()
    try:
        await store.commit(WriteBatch(targets=["agent"]))
    finally:
        await store.close()

    assert (tmp_path / "data" / "cairn.db").is_file()


@pytest.mark.parametrize("url", ["sqlite:", "sqlite://", "sqlite://relative.db", "sqlite:///"])
def test_sqlite_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


# -- Namespaces (cairn_server/namespaces.py): scoped keys, one listing each.


async def test_threads_of_each_namespace_are_listed_apart(store: Store) -> None:
    def made(namespace: str, count: int) -> list[ThreadRecord]:
        return [
            make_thread(namespaces.scoped(namespace, f"t{i}"), created_at=float(i))
            for i in range(count)
        ]

    mine, theirs = made("team-a", 3), made("team-b", 2)
    plain = make_thread("t0")
    for thread in (*mine, *theirs, plain):
        await store.create_thread(thread)

    pages = await all_threads(store, limit=2, namespace="team-a")

    assert [t.thread_id for page in pages for t in page] == [t.thread_id for t in reversed(mine)]
    assert (await store.list_threads(limit=10, namespace="team-b"))[0] == list(reversed(theirs))
    assert (await store.list_threads(limit=10))[0] == [plain]  # `default`
    assert await store.get_thread(namespaces.scoped("team-a", "t0")) == mine[0]


def lg_checkpoint(thread_id: str, checkpoint_id: str, run_id: str) -> LgCheckpoint:
    return LgCheckpoint(
        thread_id=thread_id,
        checkpoint_ns="",
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=None,
        type="msgpack",
        data=b"\x80",
        metadata="{}",
        channel_versions={},
        run_id=run_id,
    )


async def test_langgraph_checkpoints_are_listed_and_deleted_per_namespace(store: Store) -> None:
    a, b = namespaces.scoped("team-a", "t"), namespaces.scoped("team-b", "t")
    await store.lg_put(lg_checkpoint(a, "c1", "run-1"))
    await store.lg_put(lg_checkpoint(b, "c1", "run-1"))

    def listed(namespace: str) -> list[str]:
        return [c.thread_id for c in found[namespace]]

    found = {
        ns: await store.lg_list(
            thread_id=None,
            checkpoint_ns=None,
            checkpoint_id=None,
            metadata=None,
            before=None,
            limit=10,
            namespace=ns,
        )
        for ns in ("team-a", "team-b", "default")
    }
    assert (listed("team-a"), listed("team-b"), listed("default")) == ([a], [b], [])

    await store.lg_delete_for_runs(["run-1"], namespace="team-a")

    assert await store.lg_get(a, "", None) is None
    remaining = await store.lg_get(b, "", None)
    assert remaining is not None and remaining.checkpoint_id == "c1"


# -- ListRuns without a thread: the runs of every thread of one namespace.


async def all_runs(
    store: Store,
    thread_id: str | None,
    limit: int,
    *,
    namespace: str = namespaces.DEFAULT,
    state: RunState | None = None,
    waiting: bool = False,
) -> list[list[RunRecord]]:
    """Every page of list_runs, following the tokens to the end."""
    pages: list[list[RunRecord]] = []
    token = ""
    while True:
        page, token = await store.list_runs(
            thread_id,
            limit=limit,
            page_token=token,
            state=state,
            waiting=waiting,
            namespace=namespace,
        )
        pages.append(page)
        if not token:
            return pages
        assert len(pages) < 100, "page tokens do not end"


def waits_on(name: str) -> list[WaitRecord]:
    return [WaitRecord(WaitReason.NO_WORKER, f"task-{name}", name, 1.0, None)]


async def test_a_namespaces_runs_are_listed_newest_first_across_its_threads(
    store: Store,
) -> None:
    # The same thread ids in two namespaces and in `default`, runs made in
    # turns so that each namespace's are interleaved with the others'.
    made: dict[str, list[RunRecord]] = {"team-a": [], "team-b": [], "default": []}
    for i in range(4):
        for namespace, runs in made.items():
            runs.append(make_run(namespaces.scoped(namespace, f"t{i % 2}")))
    # A `default` thread whose id reads like the start of a scoped key.
    made["default"].append(make_run("team-a"))
    await store.commit(WriteBatch(runs=[r for runs in made.values() for r in runs]))

    pages = await all_runs(store, None, 3, namespace="team-a")

    assert [len(page) for page in pages] == [3, 1]
    assert [r for page in pages for r in page] == made["team-a"][::-1]
    for namespace in ("team-b", "default"):
        runs, token = await store.list_runs(None, limit=10, namespace=namespace)
        assert (runs, token) == (made[namespace][::-1], "")
    assert (await store.list_runs(None, limit=10))[0] == made["default"][::-1]
    assert await store.list_runs(None, limit=10, namespace="team-c") == ([], "")
    # A thread's listing ignores `namespace`: the thread key holds it.
    t0 = namespaces.scoped("team-a", "t0")
    assert (await store.list_runs(t0, limit=10, namespace="team-b"))[0] == [
        r for r in made["team-a"][::-1] if r.thread_id == t0
    ]


async def test_run_listings_keep_only_the_runs_in_a_state_or_that_wait(store: Store) -> None:
    a0, a1 = namespaces.scoped("team-a", "t0"), namespaces.scoped("team-a", "t1")
    b0 = namespaces.scoped("team-b", "t0")
    running, pending = RunState.RUNNING, RunState.PENDING
    runs = [
        make_run(a0, state=running, waiting=waits_on("fetch")),
        make_run(a1, state=RunState.SUCCEEDED),
        make_run(b0, state=running, waiting=waits_on("fetch")),
        make_run(a1, state=running),
        make_run(a0, state=pending, waiting=waits_on("greet")),
        make_run(a1, state=pending, waiting=waits_on("save")),
        make_run("t0", state=running, waiting=waits_on("fetch")),
        make_run(a0, state=RunState.FAILED),
    ]
    await store.commit(WriteBatch(runs=runs))
    newest_first = runs[::-1]

    def expected(thread_ids: set[str], state: RunState | None, waiting: bool) -> list[RunRecord]:
        return [
            r
            for r in newest_first
            if r.thread_id in thread_ids
            and (state is None or r.state is state)
            and (r.waiting or not waiting)
        ]

    for thread_id, thread_ids in ((None, {a0, a1}), (a0, {a0}), (a1, {a1})):
        for state in (None, running, pending):
            for waiting in (False, True):
                pages = await all_runs(
                    store, thread_id, 1, namespace="team-a", state=state, waiting=waiting
                )
                found = [r for page in pages for r in page]
                assert found == expected(thread_ids, state, waiting), (thread_id, state, waiting)
    assert [r.run_id for r in (await store.list_runs(None, limit=10, waiting=True))[0]] == [
        runs[6].run_id
    ]


async def test_a_run_that_no_longer_waits_leaves_the_waiting_listing(store: Store) -> None:
    thread_id = namespaces.scoped("team-a", "t")
    run = make_run(thread_id, state=RunState.RUNNING, waiting=waits_on("fetch"))
    await store.commit(WriteBatch(runs=[run]))
    assert (await store.list_runs(None, limit=10, waiting=True, namespace="team-a"))[0] == [run]

    run.waiting = []
    await store.commit(WriteBatch(runs=[run]))

    assert await store.list_runs(None, limit=10, waiting=True, namespace="team-a") == ([], "")
    assert (await store.list_runs(None, limit=10, namespace="team-a"))[0] == [run]
