"""The memory store on every backend of the store conformance suite
(tests/store/conftest.py): each test gets a fresh store and its memory."""

from __future__ import annotations

import pytest

from cairn_server.memory import MemoryStore, open_memory
from cairn_server.store import Store
from tests.store.conftest import backend, store, store_url

__all__ = ["backend", "memory", "store", "store_url"]


@pytest.fixture
def memory(store: Store) -> MemoryStore:
    return open_memory(store)
