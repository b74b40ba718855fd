"""grafana/cairn-dashboard.json queries only metrics and labels that a real
server exports."""

from __future__ import annotations

import json
import pathlib
import re

from cairn import Client, Command
from tests.metrics.conftest import Scrape
from tests.metrics.test_metrics import flaky, reviewed

DASHBOARD = pathlib.Path(__file__).parents[2] / "grafana" / "cairn-dashboard.json"
METRIC = re.compile(r"\bcairn_[a-z_]+\b")
SELECTOR = re.compile(r"(cairn_[a-z_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SUFFIXES = ("_bucket", "_sum", "_count")
ADDED_BY_PROMETHEUS = {"instance", "job"}


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    return exprs


async def test_the_dashboard_names_only_exported_metrics_and_labels(
    client: Client, start_worker, scrape: Scrape
) -> None:
    await start_worker([flaky, reviewed], local_calls=False)
    await client.invoke(reviewed, "ants", thread_id="dash")
    await client.invoke(reviewed, Command(resume="yes"), thread_id="dash")
    scraped = await scrape()
    labels_of: dict[str, set[str]] = {}
    for name, labels in scraped.samples:
        labels_of.setdefault(name, set()).update(k for k, _ in labels)
    for family in scraped.types:  # families without samples yet
        labels_of.setdefault(family, set())

    for expr in expressions():
        names = set(METRIC.findall(expr))
        assert names, expr
        for name in names:
            assert name in labels_of, f"{name} (in {expr!r}) is not exported"
        used: dict[str, set[str]] = {}
        for name, matchers in SELECTOR.findall(expr):
            used.setdefault(name, set()).update(MATCHER.findall(matchers))
        grouped = {g.strip() for group in GROUPING.findall(expr) for g in group.split(",")}
        for name in names:
            allowed = labels_of[name] | ADDED_BY_PROMETHEUS
            if name.endswith("_bucket"):
                allowed |= {"le"}
            base = _base(name)
            if base != name:  # a histogram's series share the labels of its buckets
                allowed |= labels_of.get(f"{base}_bucket", set()) - {"le"}
            missing = used.get(name, set()) - allowed
            assert not missing, f"{expr!r} matches {missing} that {name} does not have"
        every = set().union(*(labels_of[n] for n in names)) | ADDED_BY_PROMETHEUS | {"le"}
        grouped.discard("")
        assert grouped <= every, f"{expr!r} groups by {grouped - every}"


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
