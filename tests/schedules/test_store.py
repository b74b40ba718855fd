"""The schedule store's conformance suite, on every backend (sqlite,
postgres): schedules stay in their namespace, a due time is claimed once,
open firings are taken once, and a schedule keeps its latest firings."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from cairn_server.schedules import (
    CatchupPolicy,
    FiringRecord,
    FiringState,
    OverlapPolicy,
    ScheduleRecord,
    ScheduleStore,
    Spec,
    ThreadPolicy,
)
from cairn_server.schedules.base import RECENT_FIRINGS

NOW = 1_800_000_000.0


def schedule(
    schedule_id: str = "nightly", namespace: str = "default", **fields: object
) -> ScheduleRecord:
    values: dict[str, object] = {
        "spec": Spec.parse(interval=60, anchor=NOW),
        "target": "report",
        "input": {"topic": "cats", "n": [1, 2.5, None]},
        "metadata": {"team": "a"},
        "next_fire_at": NOW + 60,
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return ScheduleRecord(namespace, schedule_id, **values)  # type: ignore[arg-type]


def firing(
    firing_id: str, at: float, schedule_id: str = "nightly", **fields: object
) -> FiringRecord:
    return FiringRecord("default", schedule_id, firing_id, at, at, **fields)  # type: ignore[arg-type]


async def test_create_get_and_a_taken_id(schedules: ScheduleStore) -> None:
    record = schedule(
        spec=Spec.parse(cron="0 9 * * *", time_zone="Europe/Paris"),
        thread_policy=ThreadPolicy.ONE_THREAD,
        thread_id="t-1",
        overlap_policy=OverlapPolicy.CANCEL_PREVIOUS,
        catchup_policy=CatchupPolicy.SKIP,
        request_id="r-1",
    )
    assert await schedules.create(record) == (True, record)

    assert await schedules.get("default", "nightly") == record
    assert await schedules.get("other", "nightly") is None
    created, existing = await schedules.create(schedule(target="else"))
    assert (created, existing) == (False, record)


async def test_namespaces_do_not_meet(schedules: ScheduleStore) -> None:
    await schedules.create(schedule("s", "team-a"))
    await schedules.create(schedule("s", "team-b", target="b"))

    page, _ = await schedules.list_page("team-a", limit=10)
    assert [(s.namespace, s.target) for s in page] == [("team-a", "report")]
    assert await schedules.delete("team-b", "s")
    assert not await schedules.delete("team-b", "s")
    assert await schedules.get("team-a", "s") is not None


async def test_list_pages_by_id_with_recent_firings(schedules: ScheduleStore) -> None:
    for name in ("c", "a", "b", "d"):
        await schedules.create(schedule(name))
    await schedules.add_firing(firing("f1", NOW, "b"))
    await schedules.add_firing(firing("f2", NOW + 1, "b"))

    first, token = await schedules.list_page("default", limit=2)
    second, last = await schedules.list_page("default", limit=2, after=token)

    assert [s.schedule_id for s in first + second] == ["a", "b", "c", "d"]
    assert last == ""
    assert [f.firing_id for f in first[1].recent_firings] == ["f2", "f1"]
    assert first[0].recent_firings == ()


async def test_pause_and_resume_move_the_due_time(schedules: ScheduleStore) -> None:
    await schedules.create(schedule())
    assert await schedules.set_paused(
        "default", "nightly", paused=True, next_fire_at=NOW + 60, now=NOW + 1
    )
    assert await schedules.due(NOW + 600, limit=10) == []
    assert await schedules.next_due() is None

    assert await schedules.set_paused(
        "default", "nightly", paused=False, next_fire_at=NOW + 660, now=NOW + 601
    )
    resumed = await schedules.get("default", "nightly")
    assert resumed is not None and not resumed.paused
    assert (resumed.next_fire_at, resumed.updated_at) == (NOW + 660, NOW + 601)
    assert await schedules.next_due() == NOW + 660
    assert not await schedules.set_paused("default", "gone", paused=True, next_fire_at=0, now=0)


async def test_due_lists_every_namespace_soonest_first(schedules: ScheduleStore) -> None:
    await schedules.create(schedule("late", "team-a", next_fire_at=NOW + 120))
    await schedules.create(schedule("soon", "team-b", next_fire_at=NOW + 60))
    await schedules.create(schedule("later", next_fire_at=NOW + 900))

    due = await schedules.due(NOW + 120, limit=10)

    assert [(s.namespace, s.schedule_id) for s in due] == [("team-b", "soon"), ("team-a", "late")]


async def test_a_due_time_is_claimed_once(schedules: ScheduleStore) -> None:
    await schedules.create(schedule())
    [due] = await schedules.due(NOW + 60, limit=10)

    claims = await asyncio.gather(
        *(
            schedules.advance(due, NOW + 120, firing("t60", NOW + 60, claimed_by=f"r{i}"))
            for i in range(5)
        )
    )

    assert sorted(claims) == [False, False, False, False, True]
    stored = await schedules.get("default", "nightly")
    assert stored is not None and stored.next_fire_at == NOW + 120
    assert [f.firing_id for f in stored.recent_firings] == ["t60"]
    # A replica that read the schedule before the claim finds it moved.
    assert not await schedules.advance(due, NOW + 120, None)


async def test_a_paused_or_deleted_schedule_is_not_claimed(schedules: ScheduleStore) -> None:
    await schedules.create(schedule())
    [due] = await schedules.due(NOW + 60, limit=10)
    await schedules.set_paused("default", "nightly", paused=True, next_fire_at=NOW + 60, now=NOW)

    assert not await schedules.advance(due, NOW + 120, firing("t60", NOW + 60))
    await schedules.delete("default", "nightly")
    assert not await schedules.advance(due, NOW + 120, firing("t60", NOW + 60))
    assert await schedules.get_firing("default", "nightly", "t60") is None


async def test_open_firings_are_taken_once_and_settled_by_their_holder(
    schedules: ScheduleStore,
) -> None:
    await schedules.create(schedule())
    await schedules.add_firing(firing("f", NOW, claimed_by="dead", claim_until=100.0))
    await schedules.add_firing(firing("held", NOW, claimed_by="alive", claim_until=500.0))

    [open_one] = await schedules.open_firings(200.0, limit=10)
    assert open_one.firing_id == "f"
    taken = await asyncio.gather(
        *(schedules.take(open_one, by=f"r{i}", until=230.0) for i in range(4))
    )
    [winner] = [t for t in taken if t is not None]

    assert not await schedules.settle(replace(winner, state=FiringState.STARTED), claimed_by="dead")
    started = replace(
        winner, state=FiringState.STARTED, run_id="run-1", thread_id="t", claim_until=0.0
    )
    assert await schedules.settle(started, claimed_by=winner.claimed_by)
    assert await schedules.get_firing("default", "nightly", "f") == started
    assert await schedules.last_started("default", "nightly") == started
    assert [f.firing_id for f in await schedules.open_firings(600.0, limit=10)] == ["held"]


async def test_a_firing_id_is_added_once(schedules: ScheduleStore) -> None:
    await schedules.create(schedule())
    first = firing("trigger-r1", NOW, triggered=True)

    assert await schedules.add_firing(first) == (True, first)
    assert await schedules.add_firing(replace(first, fired_at=NOW + 5)) == (False, first)


async def test_the_latest_firings_are_kept_and_the_latest_started_one_too(
    schedules: ScheduleStore,
) -> None:
    await schedules.create(schedule())
    await schedules.add_firing(firing("started", NOW, state=FiringState.STARTED, run_id="run-0"))
    await schedules.add_firing(firing("waiting", NOW + 1, state=FiringState.WAITING))
    for i in range(RECENT_FIRINGS + 5):
        await schedules.add_firing(firing(f"skip-{i:02}", NOW + 2 + i, state=FiringState.SKIPPED))

    stored = await schedules.get("default", "nightly")
    assert stored is not None
    assert len(stored.recent_firings) == RECENT_FIRINGS
    assert stored.recent_firings[0].firing_id == f"skip-{RECENT_FIRINGS + 4:02}"
    last = await schedules.last_started("default", "nightly")
    assert last is not None and last.run_id == "run-0"
    waiting = await schedules.first_waiting("default", "nightly")
    assert waiting is not None and waiting.firing_id == "waiting"


async def test_delete_takes_the_firings_along(schedules: ScheduleStore) -> None:
    await schedules.create(schedule())
    await schedules.add_firing(firing("f", NOW, state=FiringState.WAITING))

    assert await schedules.delete("default", "nightly")
    assert await schedules.open_firings(NOW, limit=10) == []
    await schedules.create(schedule())
    assert (await schedules.get("default", "nightly")).recent_firings == ()  # type: ignore[union-attr]
