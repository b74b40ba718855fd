"""A deterministic fake embedding for semantic search tests: one axis per
word of a small vocabulary, counting the word's occurrences, plus a constant
axis so that no vector is zero. Texts that share more words are nearer."""

from __future__ import annotations

import re
from collections.abc import Sequence

VOCABULARY = ("otter", "river", "fish", "cat", "mouse", "rocket", "moon", "space")
DIMS = len(VOCABULARY) + 1


def embed_text(text: str) -> list[float]:
    words = re.findall(r"[a-z]+", text.lower())
    counts = [float(sum(1 for w in words if w.rstrip("s") == v)) for v in VOCABULARY]
    return [*counts, 0.5]


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Sync: a list of texts to their vectors."""
    return [embed_text(text) for text in texts]


async def aembed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Async: the same vectors."""
    return embed_texts(texts)


class Calls:
    """An embedding function that records the texts it was given."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return embed_texts(texts)
