"""The schedule store on every backend of the store conformance suite
(tests/store/conftest.py): each test gets a fresh store and its schedules."""

from __future__ import annotations

import pytest

from cairn_server.schedules import ScheduleStore, open_schedules
from cairn_server.store import Store
from tests.store.conftest import backend, store, store_url

__all__ = ["backend", "schedules", "store", "store_url"]


@pytest.fixture
def schedules(store: Store) -> ScheduleStore:
    return open_schedules(store)
