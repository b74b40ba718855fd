"""What the server logs of strings its clients chose (worker ids, identities,
thread ids, names): at most a short prefix, so that no request can turn into
a huge log line."""

from __future__ import annotations

MAX_LOGGED_CHARS = 100


def clip(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` if it is short, else its start and its full length:
    `clip("x" * 300)` is `"xxx…(300 chars)"` with `limit` x's."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"
