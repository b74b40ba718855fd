"""Namespaces against the real server (DESIGN.md 8.2, 8.3): two teams use the
same thread ids and serve the same entrypoint, task and graph names with
workers of their own, and neither sees, changes or serves the other's. Also
the attack of the issue (a worker registering a name others call, to
receive their inputs), now refused, and the per-namespace limits.

The workers are the Python SDK's, in the test's event loop; each records
what it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import grpc
import pytest
from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph as LgStateGraph

from cairn import (
    END,
    START,
    Client,
    Command,
    FailedPreconditionError,
    ResourceExhaustedError,
    RunNotFoundError,
    RunState,
    StateGraph,
    ThreadNotFoundError,
    entrypoint,
    interrupt,
    task,
)
from cairn._values import to_value
from cairn.langgraph import CairnSaver
from cairn.v1 import run_service_pb2, thread_service_pb2, worker_service_pb2
from tests.api.conftest import Api
from tests.api.secured import (
    ADMIN,
    WAIT,
    Metadata,
    Secured,
    Workers,
    as_caller,
    connected,
    hello,
    refused,
    secured_server,
    snapshot,
    stubs,
    token,
)

rpb = run_service_pb2
tpb = thread_service_pb2
wpb = worker_service_pb2

A, B = "team-a", "team-b"
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


@dataclass
class Team:
    """One namespace's worker functions and what its worker ran."""

    namespace: str
    tag: str
    ran: list[tuple[str, Any]] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def functions(self, *only: str) -> list[Any]:
        """echo (calling the task shout), ask (an interrupt), hold (a task
        waiting for `release`) and the graph flow (its node step), the same
        names in every team, each answering with the team's tag."""
        tag, ran = self.tag, self.ran

        @task(name="shout")
        def shout(text: str) -> str:
            ran.append(("shout", text))
            return f"{tag}:{text}"

        @entrypoint(name="echo")
        def echo(text: str) -> str:
            return str(shout(text).result())

        @entrypoint(name="ask")
        def ask(question: str) -> str:
            answer = interrupt(question)
            ran.append(("answered", answer))
            return f"{tag}:{answer}"

        @task(name="wait")
        async def wait(text: str) -> str:
            ran.append(("wait", text))
            self.entered.set()
            await self.release.wait()
            return f"{tag}:{text}"

        @entrypoint(name="hold")
        async def hold(text: str) -> str:
            return str(await wait(text))

        def step(state: Log) -> dict[str, Any]:
            ran.append(("step", list(state["log"])))
            return {"log": [tag]}

        flow = (
            StateGraph(Log)
            .add_node("step", step)
            .add_edge(START, "step")
            .add_edge("step", END)
            .compile(name="flow")
        )
        served: list[Any] = [shout, echo, ask, wait, hold, flow]
        return [f for f in served if not only or f.name in only]


@dataclass
class Teams:
    served: Secured
    api: Api
    a: Team
    b: Team
    clients: dict[str, Client]
    """Each namespace's writer, by namespace."""

    def client(self, team: Team) -> Client:
        return self.clients[team.namespace]


@contextlib.asynccontextmanager
async def clients(
    address: str, credentials: dict[str, tuple[str, str]]
) -> AsyncIterator[dict[str, Client]]:
    """SDK clients by name, each with its (token, namespace)."""
    opened = {
        name: Client(address, token=credential, namespace=namespace)
        for name, (credential, namespace) in credentials.items()
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.close()


@contextlib.asynccontextmanager
async def two_teams(tmp_path: pathlib.Path, **limits: Any) -> AsyncIterator[Teams]:
    """A server with a worker in team-a and one in team-b, both serving the
    same names, and a writer client in each."""
    a, b = Team(A, "a"), Team(B, "b")
    async with (
        secured_server(tmp_path, **limits) as served,
        stubs(served.address) as api,
        clients(
            served.address,
            {
                t.namespace: (token(f"{t.tag}-app", f"{t.namespace}:writer"), t.namespace)
                for t in (a, b)
            },
        ) as writers,
    ):
        workers = Workers(served.address)
        try:
            for team in (a, b):
                await workers.start(
                    team.functions(),
                    token=token(f"{team.tag}-worker", f"{team.namespace}:worker"),
                    namespace=team.namespace,
                    worker_id=f"worker-{team.tag}",
                )
            yield Teams(served, api, a, b, writers)
        finally:
            a.release.set()
            b.release.set()
            await workers.stop_all()


@pytest.fixture
async def teams(tmp_path: pathlib.Path) -> AsyncIterator[Teams]:
    async with two_teams(tmp_path) as made:
        yield made


async def drain(call: Any) -> list[Any]:
    return [response async for response in call]


async def start_hold(teams: Teams, team: Team, thread_id: str) -> tuple[asyncio.Task[Any], str]:
    """Start `hold` in `team`'s namespace; its invocation and run id once
    its task runs on the team's worker."""
    client = teams.client(team)
    invocation = asyncio.ensure_future(client.invoke("hold", "h", thread_id=thread_id))
    await asyncio.wait_for(team.entered.wait(), WAIT)
    (run,) = await client.list_runs(thread_id)
    return invocation, run.run_id


# --- runs, threads and state ----------------------------------------------------------------


async def test_each_namespaces_runs_go_to_its_own_worker(teams: Teams) -> None:
    inputs = {
        (team.tag, i): f"{team.tag}-input-{i}" for team in (teams.a, teams.b) for i in range(10)
    }
    team_of = {"a": teams.a, "b": teams.b}
    started = {
        key: teams.client(team_of[key[0]]).invoke("echo", text, thread_id=f"t-{key[1]}")
        for key, text in inputs.items()
    }
    runs = dict(
        zip(started, await asyncio.wait_for(asyncio.gather(*started.values()), WAIT), strict=True)
    )

    for (tag, i), run in runs.items():
        assert (run.state, run.thread_id, run.output) == (
            RunState.SUCCEEDED,
            f"t-{i}",
            f"{tag}:{inputs[tag, i]}",
        )
    for team in (teams.a, teams.b):
        expected = sorted(("shout", text) for (tag, _), text in inputs.items() if tag == team.tag)
        assert sorted(team.ran) == expected


async def test_threads_runs_and_state_are_per_namespace(teams: Teams) -> None:
    a, b = teams.client(teams.a), teams.client(teams.b)
    run_a = await a.invoke("echo", "same", thread_id="shared")
    run_b = await b.invoke("echo", "same", thread_id="shared")
    await a.invoke("echo", "more", thread_id="a-only")

    assert {t.thread_id for t in await a.list_threads()} == {"shared", "a-only"}
    assert {t.thread_id for t in await b.list_threads()} == {"shared"}
    assert [r.run_id for r in await a.list_runs("shared")] == [run_a.run_id]
    assert [r.run_id for r in await b.list_runs("shared")] == [run_b.run_id]
    for client, run, tag in ((a, run_a, "a"), (b, run_b, "b")):
        assert run.output == f"{tag}:same"
        state = await client.get_state("shared")
        assert state.values == f"{tag}:same"
        assert state.config["configurable"]["thread_id"] == "shared"
        assert state.metadata["run_id"] == run.run_id
        history = await client.get_state_history("shared")
        assert history and {s.metadata["run_id"] for s in history} == {run.run_id}
        assert (await client.get_run(run.run_id)).output == run.output
    with pytest.raises(RunNotFoundError):
        await a.get_run(run_b.run_id)
    with pytest.raises(ThreadNotFoundError):
        await b.get_thread("a-only")


async def test_the_other_namespaces_threads_and_runs_are_not_found_and_unchanged(
    teams: Teams,
) -> None:
    api = teams.api
    a = teams.client(teams.a)
    graph_run = await a.invoke("flow", {"log": []}, thread_id="a-only")
    assert graph_run.output == {"log": ["a"]}
    held, held_run = await start_hold(teams, teams.a, "a-held")
    before = await snapshot(api, A)
    # Team b's own admin: every role in team-b, no grant in team-a.
    md = as_caller(token("bob", f"{B}:admin"), B)

    thread_calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "GetThread": lambda: api.threads.GetThread(
            tpb.GetThreadRequest(thread_id="a-only"), metadata=md
        ),
        "GetState": lambda: api.threads.GetState(
            tpb.GetStateRequest(thread_id="a-only"), metadata=md
        ),
        "GetStateHistory": lambda: api.threads.GetStateHistory(
            tpb.GetStateHistoryRequest(thread_id="a-only"), metadata=md
        ),
        "ListRuns": lambda: api.runs.ListRuns(rpb.ListRunsRequest(thread_id="a-only"), metadata=md),
        "DeleteThread": lambda: api.threads.DeleteThread(
            tpb.DeleteThreadRequest(thread_id="a-only"), metadata=md
        ),
        "UpdateState": lambda: api.threads.UpdateState(
            tpb.UpdateStateRequest(
                thread_id="a-only", values=to_value({"log": ["b was here"]}), as_node="step"
            ),
            metadata=md,
        ),
    }
    for name, call in thread_calls.items():
        info = await refused(call(), NOT_FOUND, "THREAD_NOT_FOUND")
        assert info.metadata["thread_id"] == "a-only", name
    run_calls: dict[str, tuple[str, Callable[[], Awaitable[Any]]]] = {
        "GetRun": (
            graph_run.run_id,
            lambda: api.runs.GetRun(rpb.GetRunRequest(run_id=graph_run.run_id), metadata=md),
        ),
        "GetRun(active)": (
            held_run,
            lambda: api.runs.GetRun(rpb.GetRunRequest(run_id=held_run), metadata=md),
        ),
        "JoinRun": (
            held_run,
            lambda: drain(api.runs.JoinRun(rpb.JoinRunRequest(run_id=held_run), metadata=md)),
        ),
        "CancelRun": (
            held_run,
            lambda: api.runs.CancelRun(rpb.CancelRunRequest(run_id=held_run), metadata=md),
        ),
    }
    for name, (run_id, call) in run_calls.items():
        info = await refused(call(), NOT_FOUND, "RUN_NOT_FOUND")
        assert info.metadata["run_id"] == run_id, name
    pruned = await api.threads.PruneThreads(
        tpb.PruneThreadsRequest(
            thread_ids=["a-only", "a-held"], strategy=tpb.PRUNE_STRATEGY_DELETE
        ),
        metadata=md,
    )
    assert list(pruned.thread_ids) == []

    assert await snapshot(api, A) == before
    assert (await a.get_run(held_run)).state is RunState.RUNNING
    teams.a.release.set()
    finished = await asyncio.wait_for(held, WAIT)
    assert (finished.run_id, finished.output) == (held_run, "a:h")
    assert teams.b.ran == []


async def test_an_interrupt_is_resumed_only_in_its_own_namespace(teams: Teams) -> None:
    a, b = teams.client(teams.a), teams.client(teams.b)
    asked = await a.invoke("ask", "ship it?", thread_id="q")
    assert asked.state is RunState.INTERRUPTED
    before = await snapshot(teams.api, A)

    # Team b answers thread q: its own q, which has no run to resume.
    with pytest.raises(FailedPreconditionError) as unanswerable:
        await b.invoke("ask", Command(resume="b says yes"), thread_id="q")
    assert unanswerable.value.reason == "NO_PENDING_INTERRUPT"
    # Team b's own q, interrupted and resumed in team b.
    assert (await b.invoke("ask", "really?", thread_id="q")).state is RunState.INTERRUPTED
    resumed_b = await b.invoke("ask", Command(resume="b says no"), thread_id="q")

    assert resumed_b.output == "b:b says no"
    assert await snapshot(teams.api, A) == before
    assert teams.a.ran == []
    resumed_a = await a.invoke("ask", Command(resume="a says yes"), thread_id="q")
    assert resumed_a.output == "a:a says yes"
    assert teams.a.ran == [("answered", "a says yes")]
    assert teams.b.ran == [("answered", "b says no")]


async def test_list_workers_shows_the_namespaces_workers_with_their_names(teams: Teams) -> None:
    for team in (teams.a, teams.b):
        (worker,) = await teams.client(team).list_workers()
        assert worker.worker_id == f"worker-{team.tag}"
        assert set(worker.entrypoints) == {"echo", "ask", "hold"}
        assert set(worker.tasks) == {"shout", "wait", "flow:step"}
    async with clients(teams.served.address, {"default": (ADMIN, "default")}) as root:
        assert await root["default"].list_workers() == []


# --- LangGraph checkpoints --------------------------------------------------------------------


def lg_graph(tag: str, saver: CairnSaver) -> Any:
    builder = LgStateGraph(Log)
    builder.add_node("say", lambda state: {"log": [tag]})
    builder.add_edge(LG_START, "say")
    builder.add_edge("say", LG_END)
    return builder.compile(checkpointer=saver)


def lg_config(thread_id: str, run_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}, "metadata": {"run_id": run_id}}


async def listed(saver: CairnSaver) -> dict[str, set[str]]:
    """Checkpoint ids by thread id, of every thread the saver's namespace lists."""
    found: dict[str, set[str]] = {}
    async for item in saver.alist(None):
        configurable = item.config["configurable"]
        found.setdefault(configurable["thread_id"], set()).add(configurable["checkpoint_id"])
    return found


async def test_cairn_savers_of_two_namespaces_keep_their_checkpoints_apart(
    tmp_path: pathlib.Path,
) -> None:
    async with secured_server(tmp_path) as served:
        address = served.address
        savers = {
            team: CairnSaver(address, token=token(f"{team}-app", f"{team}:writer"), namespace=team)
            for team in (A, B)
        }
        async with savers[A] as saver_a, savers[B] as saver_b:
            graph_a, graph_b = lg_graph("a", saver_a), lg_graph("b", saver_b)
            # The same thread id and LangGraph run id in both namespaces.
            shared = lg_config("lg-shared", "same-run")
            await graph_a.ainvoke({"log": []}, shared)
            await graph_a.ainvoke({"log": []}, lg_config("lg-a-only", "a-run"))
            await graph_b.ainvoke({"log": []}, shared)
            await graph_b.ainvoke({"log": []}, lg_config("lg-shared", "b-run"))

            assert (await graph_a.aget_state(shared)).values == {"log": ["a"]}
            assert (await graph_b.aget_state(shared)).values == {"log": ["b", "b"]}
            mine, theirs = await listed(saver_a), await listed(saver_b)
            assert set(mine) == {"lg-shared", "lg-a-only"}
            assert set(theirs) == {"lg-shared"}
            assert (len(mine["lg-shared"]), len(theirs["lg-shared"])) == (3, 6)
            assert not mine["lg-shared"] & theirs["lg-shared"]

            # Team b deletes run same-run's checkpoints: only its own go.
            await saver_b.adelete_for_runs(["same-run"])
            left = await listed(saver_b)
            assert set(left) == {"lg-shared"} and len(left["lg-shared"]) == 3
            assert await listed(saver_a) == mine
            # Team a's other thread is not there for team b to read, delete or copy.
            assert await saver_b.aget_tuple({"configurable": {"thread_id": "lg-a-only"}}) is None
            await saver_b.adelete_thread("lg-a-only")
            await saver_b.acopy_thread("lg-a-only", "lg-b-copy")
            assert await listed(saver_b) == left
            assert await listed(saver_a) == mine
            assert (await graph_a.aget_state(shared)).values == {"log": ["a"]}


# --- an admin of every namespace ---------------------------------------------------------------


async def test_an_admin_of_every_namespace_acts_in_each_by_naming_it(teams: Teams) -> None:
    run_a = await teams.client(teams.a).invoke("echo", "x", thread_id="shared")
    run_b = await teams.client(teams.b).invoke("echo", "y", thread_id="shared")
    roots = {ns: (ADMIN, ns) for ns in (A, B, "default")}
    async with clients(teams.served.address, roots) as root:
        for ns, run in ((A, run_a), (B, run_b)):
            assert [t.thread_id for t in await root[ns].list_threads()] == ["shared"]
            assert [r.run_id for r in await root[ns].list_runs("shared")] == [run.run_id]
        assert await root["default"].list_threads() == []
        assert (await root[A].invoke("echo", "root", thread_id="t2")).output == "a:root"
        assert (await root[B].invoke("echo", "root", thread_id="t2")).output == "b:root"

        assert await root[B].prune_threads(["shared"], keep_latest=1) == ["shared"]
        await root[B].delete_thread("shared")
        with pytest.raises(ThreadNotFoundError):
            await root[B].get_thread("shared")
        assert (await root[A].get_state("shared")).metadata["run_id"] == run_a.run_id
        assert len(await root[A].get_state_history("shared")) > 1


# --- the rogue worker -----------------------------------------------------------------------------


async def connect_hello(api: Api, metadata: Metadata, greeting: wpb.WorkerHello) -> None:
    """Connect with `greeting` and disconnect at once; raises the refusal, if any."""
    async with connected(api, metadata, greeting):
        pass


async def connect(api: Api, metadata: Metadata, names: Sequence[str], *, relay: str = "") -> None:
    """Connect as a worker serving `names` (a relay: team-a's) and disconnect at once."""
    await connect_hello(api, metadata, hello(*names, relay=relay, namespace=A if relay else ""))


async def test_who_may_connect_as_a_worker_for_which_names(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cairn.audit")
    async with secured_server(tmp_path) as served, stubs(served.address) as api:
        # No worker grant: an application's writer, an admin's reader.
        for grant in (f"{A}:writer", f"{A}:reader"):
            await refused(
                connect(api, as_caller(token("app", grant), A), ["echo"]),
                PERMISSION_DENIED,
                "PERMISSION_DENIED",
            )
        # A worker grant in another namespace only.
        await refused(
            connect(api, as_caller(token("rogue", f"{B}:worker"), A), ["echo"]),
            NOT_FOUND,
            "NAMESPACE_NOT_FOUND",
        )
        # A worker grant limited to another name.
        limited = as_caller(token("other", f"{A}:worker:other"), A)
        info = await refused(
            connect(api, limited, ["other", "echo"]), PERMISSION_DENIED, "PERMISSION_DENIED"
        )
        assert (info.metadata["name"], info.metadata["namespace"]) == ("echo", A)
        refusal = [r.getMessage() for r in caplog.records if "jwt:other" in r.getMessage()]
        assert len(refusal) == 1 and refusal[0].startswith("denied ")
        assert "method=cairn.v1.WorkerService/Connect" in refusal[0] and "'echo'" in refusal[0]
        await connect(api, limited, ["other"])
        # A relay hello needs the replica role: a worker's or an admin's grant is not it.
        for grant in (f"{A}:worker", "*:admin"):
            info = await refused(
                connect(api, as_caller(token("fake-replica", grant), A), ["echo"], relay="r-2"),
                PERMISSION_DENIED,
                "PERMISSION_DENIED",
            )
            assert info.metadata["field"] == "hello.relay_replica_id"
        await connect(api, as_caller(token("replica-2", "*:replica"), A), ["echo"], relay="r-2")


async def test_a_relay_serves_only_the_namespaces_its_replica_grant_covers(
    tmp_path: pathlib.Path,
) -> None:
    async with secured_server(tmp_path) as served, stubs(served.address) as api:
        replica = as_caller(token("replica-2", f"{A}:replica"), A)
        await connect(api, replica, ["echo"], relay="r-2")
        # Registering team-b's echo would hand it team-b's inputs whenever no
        # worker of team-b is connected to this replica.
        await refused(
            connect_hello(api, replica, hello("echo", relay="r-2", namespace=B)),
            PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )


async def test_an_id_cannot_name_another_namespaces_key(teams: Teams) -> None:
    """Inside the service team-a's thread `shared` is `team-a<U+001F>shared`,
    and a name `echo` of team-a likewise: ids holding the separator are
    refused, so a caller of `default` (whose keys are the ids themselves)
    cannot reach them."""
    await teams.client(teams.a).invoke("echo", "x", thread_id="shared")
    api, default = teams.api, as_caller(ADMIN, "default")
    for call in (
        lambda: api.threads.GetThread(
            tpb.GetThreadRequest(thread_id=f"{A}\x1fshared"), metadata=default
        ),
        lambda: api.runs.Invoke(
            rpb.InvokeRequest(
                thread_id=f"{A}\x1fshared", target=f"{A}\x1fecho", input=to_value("y")
            ),
            metadata=default,
        ),
        lambda: connect(api, as_caller(token("w", "default:worker"), "default"), [f"{A}\x1fecho"]),
    ):
        await refused(call(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert teams.a.ran == [("shout", "x")]


async def test_a_rogue_worker_receives_none_of_another_namespaces_inputs(
    tmp_path: pathlib.Path,
) -> None:
    legit, rogue = Team(A, "legit"), Team(B, "rogue")
    callers = {f"caller-{i}": (token(f"caller-{i}", f"{A}:writer"), A) for i in range(20)}
    async with (
        secured_server(tmp_path) as served,
        clients(served.address, callers) as by_name,
    ):
        workers = Workers(served.address)
        try:
            await workers.start(
                legit.functions("echo", "shout"),
                token=token("legit", f"{A}:worker:echo,shout"),
                namespace=A,
                worker_id="legit",
            )
            # The rogue registers the very names, with the worker grant it has (team-b's).
            await workers.start(
                rogue.functions(),
                token=token("rogue", f"{B}:worker"),
                namespace=B,
                worker_id="rogue",
            )
            runs = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        client.invoke("echo", f"secret of {name}", thread_id=name)
                        for name, client in by_name.items()
                    )
                ),
                WAIT,
            )
        finally:
            await workers.stop_all()
    assert [run.output for run in runs] == [f"legit:secret of {name}" for name in callers]
    assert rogue.ran == []
    assert sorted(legit.ran) == sorted(("shout", f"secret of {name}") for name in callers)


# --- limits per namespace and per caller ------------------------------------------------------


async def test_a_namespace_at_its_run_limit_is_refused_while_another_starts_runs(
    tmp_path: pathlib.Path,
) -> None:
    async with two_teams(tmp_path, max_runs_per_namespace=1) as teams:
        a, b = teams.client(teams.a), teams.client(teams.b)
        held, _ = await start_hold(teams, teams.a, "busy")

        with pytest.raises(ResourceExhaustedError) as caught:
            await a.invoke("echo", "x", thread_id="t1")
        assert caught.value.reason == "TOO_MANY_RUNS"
        assert caught.value.metadata == {"namespace": A, "limit": "1"}
        md = as_caller(token("a-app", f"{A}:writer"), A)
        start = rpb.StreamRequest(
            thread_id="t2", target="echo", input=to_value("y"), create_thread=True
        )
        await refused(
            drain(teams.api.runs.Stream(start, metadata=md)),
            RESOURCE_EXHAUSTED,
            "TOO_MANY_RUNS",
        )
        await refused(
            drain(teams.api.runs.Session(iter([rpb.SessionRequest(start=start)]), metadata=md)),
            RESOURCE_EXHAUSTED,
            "TOO_MANY_RUNS",
        )
        assert {t.thread_id for t in await a.list_threads()} == {"busy"}

        assert (await b.invoke("echo", "y", thread_id="t1")).output == "b:y"
        teams.a.release.set()
        assert (await asyncio.wait_for(held, WAIT)).output == "a:h"


async def test_a_namespace_at_its_worker_limit_is_refused_while_another_connects(
    tmp_path: pathlib.Path,
) -> None:
    async with (
        secured_server(tmp_path, max_workers_per_namespace=1) as served,
        stubs(served.address) as api,
    ):
        first = as_caller(token("w-1", f"{A}:worker"), A)
        second = as_caller(token("w-2", f"{A}:worker"), A)
        async with connected(api, first, hello("echo")):
            info = await refused(
                connect(api, second, ["echo"]), RESOURCE_EXHAUSTED, "TOO_MANY_WORKERS"
            )
            assert (info.metadata["namespace"], info.metadata["limit"]) == (A, "1")
            await connect(api, as_caller(token("w-3", f"{B}:worker"), B), ["echo"])
            listed = await api.workers.ListWorkers(
                wpb.ListWorkersRequest(), metadata=as_caller(ADMIN, A)
            )
            assert len(listed.workers) == 1


async def test_a_caller_over_its_rate_is_refused_with_how_long_to_wait(
    tmp_path: pathlib.Path,
) -> None:
    # A burst of 2 and one call per 1000 s: the third call cannot be admitted
    # however slow the test runs.
    async with (
        secured_server(tmp_path, rate_limit=0.001, rate_burst=2) as served,
        stubs(served.address) as api,
    ):
        chatty = as_caller(token("chatty", f"{A}:reader", f"{B}:reader"), A)
        listing = tpb.ListThreadsRequest()
        for _ in range(2):
            await api.threads.ListThreads(listing, metadata=chatty, timeout=WAIT)

        info = await refused(
            api.threads.ListThreads(listing, metadata=chatty), RESOURCE_EXHAUSTED, "RATE_LIMITED"
        )
        assert 990_000 <= int(info.metadata["retry_after_ms"]) <= 1_000_000
        # Per caller: in another namespace too, and on streams.
        in_b = as_caller(token("chatty", f"{A}:reader", f"{B}:reader"), B)
        await refused(
            api.threads.ListThreads(listing, metadata=in_b), RESOURCE_EXHAUSTED, "RATE_LIMITED"
        )
        await refused(
            drain(api.runs.JoinRun(rpb.JoinRunRequest(run_id="r"), metadata=chatty)),
            RESOURCE_EXHAUSTED,
            "RATE_LIMITED",
        )
        # Another caller has a bucket of its own.
        quiet = as_caller(token("quiet", f"{A}:reader"), A)
        await api.threads.ListThreads(listing, metadata=quiet, timeout=WAIT)


async def test_a_namespace_over_its_rate_is_refused_whoever_calls(
    tmp_path: pathlib.Path,
) -> None:
    # One call per 1000 s in a namespace, so a burst of one: the second
    # admitted call of the namespace is refused, from any caller.
    async with (
        secured_server(tmp_path, namespace_rate_limit=0.001) as served,
        stubs(served.address) as api,
    ):
        listing = tpb.ListThreadsRequest()
        # A caller without a grant in team-a is refused before it is counted:
        # it cannot spend team-a's calls.
        stranger = as_caller(token("stranger", f"{B}:reader"), A)
        await refused(
            api.threads.ListThreads(listing, metadata=stranger), NOT_FOUND, "NAMESPACE_NOT_FOUND"
        )
        first = as_caller(token("first", f"{A}:reader"), A)
        await api.threads.ListThreads(listing, metadata=first, timeout=WAIT)
        second = as_caller(token("second", f"{A}:reader"), A)
        info = await refused(
            api.threads.ListThreads(listing, metadata=second), RESOURCE_EXHAUSTED, "RATE_LIMITED"
        )
        assert info.metadata["namespace"] == A
        assert 990_000 <= int(info.metadata["retry_after_ms"]) <= 1_000_000
        # Another namespace has its own budget.
        await api.threads.ListThreads(
            listing, metadata=as_caller(token("b", f"{B}:reader"), B), timeout=WAIT
        )
