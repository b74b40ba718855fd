"""Run leases and fencing, on every backend (store/leases.py).

Replicas are simulated by ids: the store does not care which process asks.
Times are passed in, so expiry needs no waiting.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from cairn_server.domain import EventRecord, RunState, ThreadStatus
from cairn_server.store import (
    Lease,
    LeaseLost,
    Store,
    ThreadBusy,
    ThreadChanged,
    ThreadStatusChange,
    WriteBatch,
)
from tests.store.test_conformance import make_run, make_thread

if TYPE_CHECKING:
    from conftest import Backend


async def start_run(store: Store, owner: str, *, now: float = 100.0) -> Lease:
    """A running run on a new busy thread, as a replica starts one."""
    thread = make_thread(status=ThreadStatus.BUSY)
    run = make_run(thread.thread_id, state=RunState.RUNNING)
    lease = Lease(run.run_id, owner, 1)
    await store.commit(WriteBatch(threads=[thread], runs=[run], lease=lease))
    await store.renew_replica(owner, address="a", now=now, expires_at=now + 5)
    return lease


def event(lease: Lease, event_id: int) -> EventRecord:
    return EventRecord(lease.run_id, event_id, 1.0, "chunk", {"n": event_id})


async def test_a_started_run_belongs_to_its_replica(store: Store) -> None:
    lease = await start_run(store, "r1")
    assert await store.owned_runs("r1") == {lease.run_id: 1}
    assert await store.owned_runs("r2") == {}


async def test_a_live_replica_keeps_its_runs(store: Store) -> None:
    await start_run(store, "r1", now=100.0)
    await store.renew_replica("r2", address="b", now=101.0, expires_at=106.0)
    assert await store.claim_runs("r2", now=104.9, own=False) == []


async def test_an_expired_replica_loses_its_runs_with_a_new_token(store: Store) -> None:
    lease = await start_run(store, "r1", now=100.0)
    await store.renew_replica("r2", address="b", now=105.0, expires_at=110.0)
    claimed = await store.claim_runs("r2", now=105.5, own=False)
    assert [(run.run_id, new) for run, new in claimed] == [
        (lease.run_id, Lease(lease.run_id, "r2", 2))
    ]
    assert claimed[0][0].state is RunState.RUNNING
    assert await store.owned_runs("r1") == {}
    assert await store.owned_runs("r2") == {lease.run_id: 2}
    # A second claimer finds nothing left: r2 is alive.
    assert await store.claim_runs("r3", now=105.5, own=False) == []


async def test_a_replica_whose_own_row_lapsed_does_not_claim_its_own_runs(store: Store) -> None:
    # Cut off from the database past its lease, r1 is back: its runs are
    # still in its hands, and r2's (expired too) are the only ones it takes.
    mine = await start_run(store, "r1", now=100.0)
    theirs = await start_run(store, "r2", now=100.0)
    claimed = await store.claim_runs("r1", now=200.0, own=False)
    assert [(run.run_id, lease) for run, lease in claimed] == [
        (theirs.run_id, Lease(theirs.run_id, "r1", 2))
    ]
    assert await store.owned_runs("r1") == {mine.run_id: 1, theirs.run_id: 2}


async def test_the_old_owner_cannot_write_after_a_takeover(store: Store, backend: Backend) -> None:
    old = await start_run(store, "r1")
    await store.commit(WriteBatch(events=[event(old, 1)], lease=old))
    [(_, new)] = await store.claim_runs("r2", now=200.0, own=False)
    with pytest.raises(LeaseLost) as lost:
        await store.commit(WriteBatch(events=[event(old, 2)], lease=old))
    assert lost.value.lease == old
    # Operators see the refused write (cairn_fencing_rejections_total).
    registry = store.metrics.registry
    assert registry.get_sample_value("cairn_fencing_rejections_total") == 1
    assert registry.get_sample_value("cairn_store_errors_total", {"kind": "error"}) in (None, 0)
    await store.commit(WriteBatch(events=[event(new, 2)], lease=new))
    events = await store.read_events(old.run_id)
    assert [(e.event_id, e.payload) for e in events] == [(1, {"n": 1}), (2, {"n": 2})]


async def test_a_refused_batch_does_not_fail_the_others_committed_with_it(store: Store) -> None:
    old = await start_run(store, "r1")
    other = await start_run(store, "r3")
    await store.renew_replica("r3", address="c", now=150.0, expires_at=300.0)
    await store.claim_runs("r2", now=200.0, own=False)
    refused = store.submit(WriteBatch(events=[event(old, 1)], lease=old))
    kept = store.submit(WriteBatch(events=[event(other, 1)], lease=other))
    results = await asyncio.gather(refused, kept, return_exceptions=True)
    assert isinstance(results[0], LeaseLost)
    assert results[1] is None
    assert [e.event_id for e in await store.read_events(other.run_id)] == [1]
    assert await store.read_events(old.run_id) == []


async def test_a_restarted_replica_takes_back_its_own_runs_at_once(store: Store) -> None:
    lease = await start_run(store, "r1", now=100.0)
    # Its row is still live, so others may not take the run, but it may.
    assert await store.claim_runs("r2", now=101.0, own=False) == []
    claimed = await store.claim_runs("r1", now=101.0, own=True)
    assert [new for _, new in claimed] == [Lease(lease.run_id, "r1", 2)]


async def test_released_runs_are_claimed_at_once(store: Store) -> None:
    lease = await start_run(store, "r1", now=100.0)
    assert await store.release_runs("r1") == [lease.run_id]
    await store.remove_replica("r1")
    with pytest.raises(LeaseLost):
        await store.commit(WriteBatch(events=[event(lease, 1)], lease=lease))
    claimed = await store.claim_runs("r2", now=100.5, own=False)
    assert [new for _, new in claimed] == [Lease(lease.run_id, "r2", 3)]


async def test_finished_runs_are_never_claimed(store: Store) -> None:
    lease = await start_run(store, "r1", now=100.0)
    run = make_run("t", run_id=lease.run_id, state=RunState.SUCCEEDED)
    run.thread_id = (await store.get_run(lease.run_id)).thread_id  # type: ignore[union-attr]
    await store.commit(WriteBatch(runs=[run], lease=lease))
    assert await store.claim_runs("r2", now=500.0, own=False) == []
    assert await store.owned_runs("r1") == {}


async def test_a_stop_request_reaches_the_owner(store: Store) -> None:
    lease = await start_run(store, "r1")
    assert await store.stop_requests("r1") == []
    assert await store.request_stop(lease.run_id, "cancel")
    assert await store.stop_requests("r1") == [(lease.run_id, "cancel")]
    # Asking about a run that is not active does nothing.
    assert not await store.request_stop("no-such-run", "cancel")


async def test_a_busy_thread_refuses_a_second_run(store: Store) -> None:
    thread = make_thread(status=ThreadStatus.IDLE)
    await store.commit(WriteBatch(threads=[thread]))

    def start(owner: str) -> WriteBatch:
        run = make_run(thread.thread_id, state=RunState.RUNNING)
        return WriteBatch(
            runs=[run],
            thread_statuses=[ThreadStatusChange(thread.thread_id, ThreadStatus.BUSY, 2.0)],
            lease=Lease(run.run_id, owner, 1),
            claim_thread=thread.thread_id,
        )

    first, second = start("r1"), start("r2")
    results = await asyncio.gather(
        store.submit(first), store.submit(second), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], ThreadBusy)
    assert await store.get_run(second.runs[0].run_id) is None
    assert (await store.get_thread(thread.thread_id)).status is ThreadStatus.BUSY  # type: ignore[union-attr]


# --- sleeping runs (durable sleep: WriteBatch.timers) ----------------------------


async def sleep_run(store: Store, lease: Lease, wake_at: float) -> None:
    await store.commit(WriteBatch(timers=[(lease.run_id, wake_at)], lease=lease))


async def test_a_sleeping_run_has_no_owner_and_its_old_lease_is_void(store: Store) -> None:
    lease = await start_run(store, "r1")
    await sleep_run(store, lease, 3600.0)
    assert await store.owned_runs("r1") == {}
    assert await store.next_wake_time() == 3600.0
    with pytest.raises(LeaseLost):
        await store.commit(WriteBatch(events=[event(lease, 1)], lease=lease))
    run = await store.get_run(lease.run_id)
    assert run is not None and run.state is RunState.RUNNING


async def test_a_sleeping_run_is_claimed_once_due_by_one_replica(store: Store) -> None:
    early = await start_run(store, "r1")
    late = await start_run(store, "r1")
    await sleep_run(store, late, 7200.0)
    await sleep_run(store, early, 3600.0)
    # Takeovers of dead replicas leave sleeping runs alone, due or not.
    assert await store.claim_runs("r2", now=9000.0, own=False) == []
    assert await store.claim_due_runs("r2", now=3599.9, limit=10) == []
    claimed = await store.claim_due_runs("r2", now=3600.0, limit=10)
    assert [(run.run_id, new) for run, new in claimed] == [
        (early.run_id, Lease(early.run_id, "r2", 3))
    ]
    assert await store.claim_due_runs("r3", now=3600.0, limit=10) == []
    assert await store.owned_runs("r2") == {early.run_id: 3}
    assert await store.next_wake_time() == 7200.0
    # The new owner writes; the claimed run is an ordinary run again.
    await store.commit(WriteBatch(events=[event(claimed[0][1], 1)], lease=claimed[0][1]))


async def test_due_runs_are_claimed_a_limited_number_at_a_time(store: Store) -> None:
    leases = [await start_run(store, "r1") for _ in range(3)]
    for n, lease in enumerate(leases):
        await sleep_run(store, lease, 100.0 + n)
    first = await store.claim_due_runs("r2", now=500.0, limit=2)
    second = await store.claim_due_runs("r3", now=500.0, limit=2)
    assert len(first) == 2 and len(second) == 1
    claimed = {run.run_id for run, _ in first + second}
    assert claimed == {lease.run_id for lease in leases}
    assert await store.next_wake_time() is None


async def test_concurrent_claims_take_each_due_run_once(store: Store) -> None:
    leases = [await start_run(store, "r1") for _ in range(20)]
    for lease in leases:
        await sleep_run(store, lease, 100.0)
    batches = await asyncio.gather(
        *(store.claim_due_runs(f"r{n}", now=200.0, limit=20) for n in range(2, 6))
    )
    claimed = [run.run_id for batch in batches for run, _ in batch]
    assert sorted(claimed) == sorted(lease.run_id for lease in leases)


async def test_a_sleeping_run_is_claimed_before_it_is_due_to_cancel_it(store: Store) -> None:
    lease = await start_run(store, "r1")
    assert await store.claim_sleeping_run(lease.run_id, "r2") is None  # it does not sleep
    await sleep_run(store, lease, 3600.0)
    taken = await store.claim_sleeping_run(lease.run_id, "r2")
    assert taken == Lease(lease.run_id, "r2", 3)
    assert await store.claim_sleeping_run(lease.run_id, "r3") is None
    assert await store.claim_due_runs("r3", now=9999.0, limit=5) == []
    assert await store.next_wake_time() is None


# --- interrupt timers (interrupts that time out) ---------------------------------


async def interrupted_run(store: Store, wake_at: float) -> tuple[str, str]:
    """A run that stopped at interrupts which time out at `wake_at`, as a
    run's end stores it: (thread_id, run_id)."""
    lease = await start_run(store, "r1")
    run = await store.get_run(lease.run_id)
    assert run is not None
    run.state = RunState.INTERRUPTED
    change = ThreadStatusChange(run.thread_id, ThreadStatus.INTERRUPTED, 2.0)
    batch = WriteBatch(
        runs=[run], thread_statuses=[change], timers=[(run.run_id, wake_at)], lease=lease
    )
    await store.commit(batch)
    return run.thread_id, run.run_id


async def test_a_due_interrupt_timer_is_taken_by_one_replica_until_its_retry_time(
    store: Store,
) -> None:
    _, run_id = await interrupted_run(store, 100.0)
    assert await store.next_wake_time() == 100.0
    assert await store.claim_due_interrupts(now=99.0, retry_at=129.0, limit=10) == []
    # Sleeping runs are not interrupted runs, and the other way round.
    assert await store.claim_due_runs("r2", now=500.0, limit=10) == []
    batches = await asyncio.gather(
        *(store.claim_due_interrupts(now=100.0, retry_at=130.0, limit=10) for _ in range(4))
    )
    assert [run.run_id for batch in batches for run in batch] == [run_id]
    assert await store.next_wake_time() == 130.0  # taken, not answered: it comes back
    [again] = await store.claim_due_interrupts(now=130.0, retry_at=160.0, limit=10)
    assert again.run_id == run_id and again.state is RunState.INTERRUPTED
    await store.clear_timer(run_id)
    assert await store.next_wake_time() is None


async def test_a_run_started_on_the_thread_ends_its_interrupt_timers(store: Store) -> None:
    thread_id, _ = await interrupted_run(store, 100.0)
    resumed = make_run(thread_id, state=RunState.RUNNING)
    thread = await store.get_thread(thread_id)
    assert thread is not None
    await store.commit(
        WriteBatch(
            runs=[resumed],
            thread_statuses=[ThreadStatusChange(thread_id, ThreadStatus.BUSY, 3.0)],
            claim_thread=thread_id,
            claim_thread_at=thread.updated_at,
            clear_interrupt_timers=thread_id,
            lease=Lease(resumed.run_id, "r2", 1),
        )
    )
    assert await store.next_wake_time() is None
    assert await store.claim_due_interrupts(now=500.0, retry_at=530.0, limit=10) == []


async def test_a_start_that_read_the_thread_before_it_changed_is_refused(store: Store) -> None:
    thread_id, _ = await interrupted_run(store, 100.0)
    thread = await store.get_thread(thread_id)
    assert thread is not None
    # Another start (and the end of its run) happened since the read.
    await store.commit(
        WriteBatch(thread_statuses=[ThreadStatusChange(thread_id, ThreadStatus.IDLE, 9.0)])
    )
    late = make_run(thread_id, state=RunState.RUNNING)
    with pytest.raises(ThreadChanged):
        await store.commit(
            WriteBatch(
                runs=[late],
                claim_thread=thread_id,
                claim_thread_at=thread.updated_at,
                lease=Lease(late.run_id, "r2", 1),
            )
        )
    assert await store.get_run(late.run_id) is None
