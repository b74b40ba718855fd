"""SyncClient: the Client's methods for scripts without an event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

from cairn import _tracing
from cairn._addresses import Addresses
from cairn._client import Client
from cairn._credentials import TlsConfig
from cairn._schedules import SyncSchedules
from cairn._store import Store


class SyncClient:
    """Blocking wrapper around `Client`: every method of Client, without
    `await`; `stream`, `join` and session iteration return plain iterators.

        client = SyncClient("127.0.0.1:50051")
        run = client.invoke("workflow", {"topic": "cats"}, thread_id="t1")

    It takes the addresses and options of `Client` and fails over the same
    way: `SyncClient(["10.0.0.1:50051", "10.0.0.2:50051"])`; credentials,
    namespace and TLS too (or the CAIRN_* environment variables):

        client = SyncClient("cairn.internal:50051", api_key=key, namespace="team-a", tls=True)

    `client.store` is the long-term memory store (`cairn.Store`); call its
    sync methods (`put`, `get`, `search`, ...):

        client.store.put(("users", "u-42"), "profile", {"name": "Ada"})
    """

    def __init__(
        self,
        address: Addresses = "127.0.0.1:50051",
        *,
        timeout: float | None = None,
        failover_timeout: float = 30.0,
        token: str | None = None,
        api_key: str | None = None,
        namespace: str | None = None,
        tls: bool | TlsConfig | None = None,
        store_index: Mapping[str, Any] | None = None,
        store_ttl: Mapping[str, Any] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def make() -> Client:
            # The channels must be created on the loop that will use them.
            return Client(
                address,
                timeout=timeout,
                failover_timeout=failover_timeout,
                token=token,
                api_key=api_key,
                namespace=namespace,
                tls=tls,
                store_index=store_index,
                store_ttl=store_ttl,
            )

        try:
            self._client: Client = self._run(make())
        except BaseException:
            self._stop_loop()  # a bad argument leaves no thread behind
            raise
        self.store: Store = self._client.store._run_with(self._run)
        """The namespace's long-term memory store (see `cairn.Store`)."""
        self.schedules = SyncSchedules(self._client.schedules, self._run)
        """The namespace's schedules (see `cairn.Schedules`), without `await`."""

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        # The caller's current span, on the loop's thread too: the client's
        # spans continue it.
        carried = _tracing.within(_tracing.current(), coroutine)
        return asyncio.run_coroutine_threadsafe(carried, self._loop).result()

    def _iterate(self, iterator: Any) -> Iterator[Any]:
        while True:
            try:
                yield self._run(iterator.__anext__())
            except StopAsyncIteration:
                return

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        if inspect.iscoroutinefunction(method):
            return lambda *args, **kwargs: self._run(method(*args, **kwargs))
        if inspect.isasyncgenfunction(method):
            return lambda *args, **kwargs: self._iterate(method(*args, **kwargs))
        raise AttributeError(name)

    def close(self) -> None:
        self._run(self._client.close())
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
