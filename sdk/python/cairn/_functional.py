"""LangGraph's functional API: `@task` and `@entrypoint`.

    from cairn import entrypoint, task, interrupt

    @task
    def write_essay(topic: str) -> str:
        return f"An essay about {topic}"

    @entrypoint()
    def workflow(topic: str) -> dict:
        essay = write_essay(topic).result()
        approved = interrupt({"essay": essay, "action": "approve?"})
        return {"essay": essay, "approved": approved}

Register both with a `cairn.Worker`; run the workflow with
`cairn.Client.invoke("workflow", "cats", thread_id="1")`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from cairn._context import Execution, TaskFuture, current
from cairn._types import RetryPolicy, TaskTimeouts

T = TypeVar("T")
_INJECTED = ("previous", "writer", "store")
NODE_INJECTED = ("writer", "store")
"""The parameters a graph node or router may declare to be given, as in LangGraph."""


def injected(
    params: Collection[str], execution: Execution, names: Collection[str] = _INJECTED
) -> dict[str, Any]:
    """The keyword arguments LangGraph gives a function for the parameters it
    declares among `names`: `previous` (the value the thread's last run
    saved), `writer` (the custom stream writer, as `get_stream_writer()`)
    and `store` (the memory store, as `get_store()`)."""
    values: dict[str, Callable[[], Any]] = {
        "previous": lambda: execution.previous,
        "writer": lambda: execution.write,
        "store": lambda: execution.store,
    }
    return {name: values[name]() for name in names if name in params}


def _single_input(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> bool:
    """Whether `fn` takes exactly one argument (passed as the call's input
    as is) rather than several (passed as {"args": [...], "kwargs": {...}})."""
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.name not in skip and p.kind not in (p.VAR_KEYWORD,)
    ]
    return len(params) == 1 and params[0].kind is not inspect.Parameter.VAR_POSITIONAL


class Task:
    """A function whose calls are scheduled through Cairn and whose results
    are recorded, so that a replay returns them without running it again."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeouts: TaskTimeouts | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.retry_policy = retry_policy
        self.timeouts = timeouts
        self._single = _single_input(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> TaskFuture:
        """Schedule the task; returns a future (await it, or `.result()`)."""
        return current().call(self.name, self._pack(args, kwargs), self.retry_policy, self.timeouts)

    def _pack(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._single and len(args) + len(kwargs) == 1:
            return args[0] if args else next(iter(kwargs.values()))
        return {"args": list(args), "kwargs": kwargs}

    def _unpack(self, input: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self._single:
            return (input,), {}
        return tuple(input.get("args", ())), dict(input.get("kwargs", {}))

    def __repr__(self) -> str:
        return f"<task {self.name}>"


@overload
def task(fn: Callable[..., Any], /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    retry_policy: RetryPolicy | None = None,
    timeouts: TaskTimeouts | None = None,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry_policy: RetryPolicy | None = None,
    timeouts: TaskTimeouts | None = None,
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Declare a task, bare (`@task`) or with options
    (`@task(name="fetch", retry_policy=RetryPolicy(max_attempts=3),
    timeouts=TaskTimeouts(start_to_close=30))`)."""
    if fn is not None:
        return Task(fn)

    def decorate(fn: Callable[..., Any]) -> Task:
        return Task(fn, name=name, retry_policy=retry_policy, timeouts=timeouts)

    return decorate


def remote_task(
    name: str, *, retry_policy: RetryPolicy | None = None, timeouts: TaskTimeouts | None = None
) -> Callable[[Any], TaskFuture]:
    """A task served by another worker (any language), called by name with one
    input from inside a task or an entrypoint:

        shout = remote_task("shout")  # served by a TypeScript worker
        title = shout(topic).result()
    """

    def call(input: Any) -> TaskFuture:
        return current().call(name, input, retry_policy, timeouts)

    return call


@dataclass(frozen=True, slots=True)
class Final(Generic[T]):
    """Return `entrypoint.final(value=..., save=...)` to return `value` to the
    caller while saving `save` as the next run's previous state."""

    value: Any
    save: Any


class entrypoint:
    """Declare a workflow, as LangGraph's `@entrypoint()`.

    The function takes one input; it may also take `previous` (the value saved
    by the thread's last run), `writer` (a custom stream writer) and `store`
    (the long-term memory store, `cairn.Store`) as keyword parameters. Use it
    bare (`@entrypoint`) or with options
    (`@entrypoint(name="review", retry_policy=...)`); `timeouts` takes only
    `TaskTimeouts(schedule_to_start=...)`, which fails a run that no worker
    takes in time. Inside another
    entrypoint, `other.invoke(x)` (sync) or `await other.ainvoke(x)` runs it as
    a nested workflow.
    """

    final = Final

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeouts: TaskTimeouts | None = None,
    ) -> None:
        if timeouts is not None and timeouts._holds_worker:
            raise ValueError("an entrypoint takes only a schedule_to_start timeout")
        self.fn: Callable[..., Any] | None = None
        self.name = name or ""
        self.retry_policy = retry_policy
        self.timeouts = timeouts
        if fn is not None:
            self._bind(fn)

    def _bind(self, fn: Callable[..., Any]) -> None:
        if not _single_input(fn, skip=_INJECTED):
            raise TypeError(f"entrypoint {fn.__name__} must take exactly one input argument")
        self.fn = fn
        self.name = self.name or fn.__name__
        self.__doc__ = fn.__doc__
        self._params = set(inspect.signature(fn).parameters)

    def __call__(self, fn: Callable[..., Any]) -> entrypoint:
        if self.fn is not None:
            raise TypeError(
                f"entrypoint {self.name!r} runs on a worker: start it with Client.invoke, or "
                "call .invoke()/.ainvoke() from inside another entrypoint"
            )
        self._bind(fn)
        return self

    def invoke(self, input: Any) -> Any:
        """Run as a nested workflow of the current entrypoint (sync code)."""
        return current().call(self.name, input, self.retry_policy, self.timeouts).result()

    async def ainvoke(self, input: Any) -> Any:
        """Run as a nested workflow of the current entrypoint (async code)."""
        return await current().call(self.name, input, self.retry_policy, self.timeouts)

    def _kwargs(self, previous: Any) -> dict[str, Any]:
        kwargs = injected(self._params, current())
        if "previous" in kwargs:
            kwargs["previous"] = previous
        return kwargs

    def __repr__(self) -> str:
        return f"<entrypoint {self.name}>"
