"""A real server with /metrics on an ephemeral port, and a scraper."""

from __future__ import annotations

import asyncio
import pathlib
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cairn_server.server import CairnServer, ServerConfig, create_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = Callable[[], Awaitable["Scraped"]]


class Scraped:
    """One scrape: its families (name -> label names seen, type) and samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: Samples = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, metric: str, /, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist."""
        return self.samples.get((metric, frozenset(labels.items())), 0.0)

    def total(self, metric: str, /, **labels: str) -> float:
        """The sum over the series of `metric` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == metric and wanted <= ls)

    def label_names(self, name: str) -> set[str]:
        return {k for (n, ls) in self.samples if n == name for k, _ in ls}


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[tuple[CairnServer, str]]:
    config = ServerConfig(
        address="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path / 'cairn.db'}",
        metrics_address="127.0.0.1:0",
    )
    instance, port = await create_server(config)
    try:
        yield instance, f"127.0.0.1:{port}"
    finally:
        await instance.stop(grace=0.5)


@pytest.fixture
def scrape(server: tuple[CairnServer, str]) -> Scrape:
    url = f"http://127.0.0.1:{server[0].metrics_port}/metrics"

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    async def scrape() -> Scraped:
        return Scraped(await asyncio.to_thread(fetch))

    return scrape
