"""`cairn serve` options that need no running server: the thread TTL and the
store URL as it is logged."""

from __future__ import annotations

import pytest

from cairn_server.cli import main
from cairn_server.server import redact_url


@pytest.mark.parametrize("ttl", ["0", "-5", "soon", "inf", "nan"])
def test_thread_ttl_must_be_a_positive_number_of_seconds(
    ttl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--thread-ttl", ttl])

    assert exited.value.code == 2
    assert "--thread-ttl" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://cairn:s3cret@db:5432/cairn", "postgresql://cairn:***@db:5432/cairn"),
        ("postgresql://cairn@db/cairn?search_path=x", "postgresql://cairn@db/cairn?search_path=x"),
        ("sqlite:///cairn.db", "sqlite:///cairn.db"),
    ],
)
def test_logged_store_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
