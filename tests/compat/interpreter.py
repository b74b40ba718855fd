"""Builds a compat scenario's functions with the Python SDK's own `task` and
`entrypoint` (see compat/README.md for the step language)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from cairn import (
    RetryPolicy,
    TaskFailedError,
    entrypoint,
    get_previous_state,
    get_stream_writer,
    interrupt,
    sleep,
    task,
)

Function = Any  # a cairn Task or entrypoint


def evaluate(expr: Any, env: dict[str, Any]) -> Any:
    """An EXPR: JSON where "$name" reads a variable, {"$concat": [...]} joins
    strings and {"$add": [...]} adds numbers (null counts as 0)."""
    if isinstance(expr, str) and expr.startswith("$"):
        return env[expr[1:]]
    if isinstance(expr, list):
        return [evaluate(item, env) for item in expr]
    if isinstance(expr, dict):
        if set(expr) == {"$concat"}:
            return "".join(str(evaluate(item, env)) for item in expr["$concat"])
        if set(expr) == {"$add"}:
            return sum(evaluate(item, env) or 0 for item in expr["$add"])
        return {key: evaluate(item, env) for key, item in expr.items()}
    return expr


def retry_policy(spec: dict[str, Any] | None) -> RetryPolicy | None:
    if spec is None:
        return None
    return RetryPolicy(
        max_attempts=spec.get("max_attempts", 3),
        initial_interval=spec.get("initial_interval", 0.5),
        backoff_factor=spec.get("backoff_factor", 2.0),
        jitter=spec.get("jitter", True),
    )


class Scenario:
    """A scenario's functions, built with the SDK, and what they did."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.executions: collections.Counter[str] = collections.Counter()
        self.stalled = asyncio.Event()
        self.functions: dict[str, Function] = {
            name: self._build(name, function) for name, function in spec["functions"].items()
        }

    def _build(self, name: str, spec: dict[str, Any]) -> Function:
        body = self._body(name, spec["steps"])
        if spec["kind"] == "entrypoint":
            return entrypoint(name=name, retry_policy=retry_policy(spec.get("retry_policy")))(body)
        return task(name=name, retry_policy=retry_policy(spec.get("retry_policy")))(body)

    def _call(self, name: str, input: Any) -> Awaitable[Any]:
        function = self.functions[name]
        if isinstance(function, entrypoint):
            return function.ainvoke(input)
        return function(input)  # type: ignore[no-any-return]

    def _body(self, name: str, steps: list[dict[str, Any]]) -> Callable[[Any], Awaitable[Any]]:
        async def body(input: Any) -> Any:
            self.executions[name] += 1
            replay = self.executions[name] > 1
            env: dict[str, Any] = {"input": input}
            if self.spec["functions"][name]["kind"] == "entrypoint":
                env["previous"] = get_previous_state()
            for step in steps:
                if "call" in step:
                    target = step["on_replay"] if replay and "on_replay" in step else step["call"]
                    try:
                        env[step.get("as", "_")] = await self._call(
                            target, evaluate(step["input"], env)
                        )
                    except TaskFailedError as error:
                        if not step.get("catch"):
                            raise
                        env[step.get("as", "_")] = {"error": {"message": error.message}}
                elif "parallel" in step:
                    calls = [
                        self._call(c["call"], evaluate(c["input"], env)) for c in step["parallel"]
                    ]
                    env[step["as"]] = list(await asyncio.gather(*calls))
                elif "interrupt" in step:
                    env[step["as"]] = interrupt(evaluate(step["interrupt"], env))
                elif "sleep" in step:
                    await sleep(evaluate(step["sleep"], env))
                elif "write" in step:
                    get_stream_writer()(evaluate(step["write"], env))
                elif "fail" in step:
                    below = step.get("while_executions_below")
                    if below is None or self.executions[name] < below:
                        failure = step["fail"]
                        # Python's default retry_on retries ConnectionError, not ValueError.
                        kind = ConnectionError if failure["retryable"] else ValueError
                        raise kind(failure["message"])
                elif "stall_once" in step:
                    if self.executions[name] == 1:
                        self.stalled.set()
                        await asyncio.Event().wait()  # until the worker is dropped
                elif "return" in step:
                    return evaluate(step["return"], env)
                elif "final" in step:
                    final = step["final"]
                    return entrypoint.final(
                        value=evaluate(final["value"], env), save=evaluate(final["save"], env)
                    )
                else:
                    raise AssertionError(f"unknown step {step}")
            return None

        body.__name__ = name
        return body
