"""One memory operation at a time, at an explicit time, in a scope."""

from __future__ import annotations

from typing import Any

from cairn_server.memory import (
    DeleteItem,
    GetItem,
    ListNamespaces,
    MemoryItem,
    MemoryStore,
    Operation,
    Path,
    PutItem,
    Result,
    ScoredItem,
    SearchItems,
    Vector,
)

NOW = 1_000_000.0
SCOPE = "tenant-a"


async def run(
    memory: MemoryStore, op: Operation, *, now: float = NOW, scope: str = SCOPE
) -> Result:
    (result,) = await memory.batch(scope, [op], now=now)
    return result


async def put(
    memory: MemoryStore,
    namespace: Path,
    key: str,
    value: dict[str, Any],
    *,
    vectors: dict[str, tuple[float, ...]] | None = None,
    ttl: float | None = None,
    now: float = NOW,
    scope: str = SCOPE,
) -> MemoryItem:
    stored = tuple(Vector(path, values) for path, values in (vectors or {}).items())
    result = await run(memory, PutItem(namespace, key, value, stored, ttl), now=now, scope=scope)
    assert isinstance(result, MemoryItem)
    return result


async def get(
    memory: MemoryStore,
    namespace: Path,
    key: str,
    *,
    refresh_ttl: bool = True,
    now: float = NOW,
    scope: str = SCOPE,
) -> MemoryItem | None:
    result = await run(memory, GetItem(namespace, key, refresh_ttl), now=now, scope=scope)
    assert result is None or isinstance(result, MemoryItem)
    return result


async def delete(
    memory: MemoryStore, namespace: Path, key: str, *, now: float = NOW, scope: str = SCOPE
) -> bool:
    result = await run(memory, DeleteItem(namespace, key), now=now, scope=scope)
    assert isinstance(result, bool)
    return result


async def search(
    memory: MemoryStore,
    prefix: Path = (),
    *,
    now: float = NOW,
    scope: str = SCOPE,
    **options: Any,
) -> list[ScoredItem]:
    result = await run(memory, SearchItems(prefix, **options), now=now, scope=scope)
    assert isinstance(result, list)
    return [found for found in result if isinstance(found, ScoredItem)]


async def keys(memory: MemoryStore, prefix: Path = (), **options: Any) -> list[str]:
    """The keys a search returns, in its order."""
    return [found.item.key for found in await search(memory, prefix, **options)]


async def namespaces(
    memory: MemoryStore, *, now: float = NOW, scope: str = SCOPE, **options: Any
) -> list[Path]:
    result = await run(memory, ListNamespaces(**options), now=now, scope=scope)
    assert isinstance(result, list)
    return [path for path in result if isinstance(path, tuple)]
