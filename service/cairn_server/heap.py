"""Giving freed memory back to the system.

Building the messages of a large journal takes many small allocations that
are all freed once the messages are sent; glibc's allocator keeps such
memory in its arenas, so without a trim the server's resident size stays
where the largest journal took it. `release_later` asks glibc to return it
(malloc_trim) once the event loop is next idle; elsewhere (musl, macOS) it
does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()
_pending: set[asyncio.AbstractEventLoop] = set()


def release() -> None:
    """Return the free memory at the top and inside the heap to the system."""
    if _TRIM is not None:
        _TRIM(0)


def release_later() -> None:
    """`release()` once the running loop has handled what is ready now; a
    burst of calls trims once."""
    loop = asyncio.get_running_loop()
    if loop in _pending:
        return
    _pending.add(loop)

    def trim() -> None:
        _pending.discard(loop)
        release()

    loop.call_soon(trim)
