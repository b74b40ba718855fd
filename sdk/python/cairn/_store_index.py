"""Semantic search on the caller's side: the index configuration of a store
(LangGraph's `index={"embed": ..., "dims": ..., "fields": [...]}`) and the
embedding of item texts and queries. The service never embeds: it stores the
vectors computed here and ranks by them.

    index = StoreIndex({"embed": embed_texts, "dims": 1536, "fields": ["text"]})

`embed` is a function from a list of texts to a list of vectors (sync or
async), a LangChain `Embeddings` object (anything with `embed_documents` and
`embed_query`), or a provider string such as "openai:text-embedding-3-small"
(which needs langchain and langgraph installed, as in LangGraph).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from cairn._store_paths import WHOLE, texts_at_path

Vector = list[float]
EmbedFunction = Callable[[Sequence[str]], list[Vector] | Awaitable[list[Vector]]]


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # an object with an async __call__
    )


def _from_provider(spec: str) -> Any:
    """A LangChain Embeddings object for "provider:model", as LangGraph
    makes one."""
    try:
        from langgraph.store.base.embed import ensure_embeddings
    except ImportError:
        raise ValueError(
            f"embed={spec!r} names a model: that needs langgraph and langchain installed; "
            "or pass an embedding function or a LangChain Embeddings object"
        ) from None
    return ensure_embeddings(spec)


class StoreIndex:
    """How a store embeds: the embedder, the vector length (`dims`, checked
    on every vector when given) and the default fields ("$": the whole
    value)."""

    __slots__ = ("_async_fn", "_embeddings", "_sync_fn", "dims", "fields")

    def __init__(self, config: Mapping[str, Any]) -> None:
        unknown = set(config) - {"embed", "dims", "fields"}
        if unknown:
            raise ValueError(f"unknown index settings {sorted(unknown)}; use embed, dims, fields")
        embed = config.get("embed")
        if embed is None:
            raise ValueError('index needs "embed": an embedding function or Embeddings object')
        dims = config.get("dims")
        if dims is not None and (not isinstance(dims, int) or dims < 1):
            raise ValueError(f'index "dims" must be a positive int, not {dims!r}')
        self.dims: int | None = dims
        fields = config.get("fields") or [WHOLE]
        if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
            raise ValueError(f'index "fields" must be a list of paths, not {fields!r}')
        self.fields: tuple[str, ...] = tuple(fields)
        if isinstance(embed, str):
            embed = _from_provider(embed)
        self._embeddings: Any = None
        self._sync_fn: Callable[[list[str]], Any] | None = None
        self._async_fn: Callable[[list[str]], Awaitable[Any]] | None = None
        if hasattr(embed, "embed_documents") and hasattr(embed, "embed_query"):
            self._embeddings = embed
        elif _is_async(embed):
            self._async_fn = embed
        elif callable(embed):
            self._sync_fn = embed
        else:
            raise ValueError(f'index "embed" must be callable, not {type(embed).__name__}')

    # --- which texts an item embeds -------------------------------------------------------

    def texts(
        self, value: Mapping[str, Any], fields: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        """(path, text) pairs to embed for an item: its `fields` (the
        index's when None). A path that yields several texts names each
        `path.i`, as LangGraph's stores do; one that yields none is
        skipped."""
        pairs: list[tuple[str, str]] = []
        for path in self.fields if fields is None else fields:
            found = texts_at_path(dict(value), path)
            if len(found) == 1:
                pairs.append((path, found[0]))
            else:
                pairs.extend((f"{path}.{i}", text) for i, text in enumerate(found))
        return pairs

    # --- embedding ------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[Vector]:
        """Embed in the calling thread (sync code)."""
        if not texts:
            return []
        if self._embeddings is not None:
            return self._checked(self._embeddings.embed_documents(texts), len(texts))
        if self._sync_fn is None:
            raise ValueError(
                "the index's embed function is async: use the store's async methods "
                "(aput, asearch, abatch)"
            )
        return self._checked(self._sync_fn(texts), len(texts))

    async def aembed(self, texts: list[str]) -> list[Vector]:
        """Embed without blocking the event loop: a sync function runs in a
        thread."""
        if not texts:
            return []
        if self._embeddings is not None:
            vectors = await self._embeddings.aembed_documents(texts)
        elif self._async_fn is not None:
            vectors = await self._async_fn(texts)
        else:
            assert self._sync_fn is not None
            vectors = await asyncio.to_thread(self._sync_fn, texts)
        return self._checked(vectors, len(texts))

    def embed_query(self, text: str) -> Vector:
        """The vector of a search query (sync code); LangChain Embeddings
        may embed queries differently from documents."""
        if self._embeddings is not None:
            return self._checked([self._embeddings.embed_query(text)], 1)[0]
        return self.embed([text])[0]

    async def aembed_query(self, text: str) -> Vector:
        """The vector of a search query, without blocking the event loop."""
        if self._embeddings is not None:
            return self._checked([await self._embeddings.aembed_query(text)], 1)[0]
        return (await self.aembed([text]))[0]

    def _checked(self, vectors: Any, count: int) -> list[Vector]:
        if not isinstance(vectors, Sequence) or len(vectors) != count:
            got = len(vectors) if isinstance(vectors, Sequence) else type(vectors).__name__
            raise ValueError(f"the embed function returned {got} vectors for {count} texts")
        out: list[Vector] = []
        for vector in vectors:
            numbers = [float(x) for x in vector]
            if self.dims is not None and len(numbers) != self.dims:
                raise ValueError(
                    f"the embed function returned a vector of {len(numbers)} numbers; "
                    f'the index says "dims": {self.dims}'
                )
            if not numbers or not all(math.isfinite(x) for x in numbers):
                raise ValueError("the embed function returned an empty or non-finite vector")
            out.append(numbers)
        return out
