"""The access file, API keys and `cairn keys create`."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import re

import pytest

from cairn_server.auth import AccessFile, Role, hash_api_key, keys_command, new_api_key, parse_grant


def test_new_keys_are_cairn_prefixed_random_and_hashed_as_sha256() -> None:
    key = new_api_key()
    assert re.fullmatch(r"cairn_[A-Za-z0-9_-]{43}", key)
    assert new_api_key() != key
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_a_key_in_the_file_names_its_caller_with_its_grants() -> None:
    key = new_api_key()
    access = AccessFile.parse(
        {
            "api_keys": [
                {"name": "other", "sha256": hash_api_key(new_api_key()), "grants": ["*:admin"]},
                {
                    "name": "ci-bot",
                    "sha256": hash_api_key(key).upper(),
                    "grants": ["default:writer"],
                },
            ]
        }
    )
    caller = access.principal_for_key(key)
    assert caller is not None
    assert caller.name == "key:ci-bot"
    assert caller.grants == (parse_grant("default:writer"),)
    assert access.principal_for_key(new_api_key()) is None
    assert access.principal_for_key(key + "x") is None


def test_certificate_subjects_match_whatever_the_attribute_order() -> None:
    access = AccessFile.parse(
        {"certificates": [{"subject": "CN=worker-1,OU=bots,O=Acme", "grants": ["team-a:worker"]}]}
    )
    for subject in ("CN=worker-1,OU=bots,O=Acme", "O=Acme, OU=bots, cn=worker-1"):
        caller = access.principal_for_subject(subject)
        assert caller is not None and caller.name == "cert:CN=worker-1,OU=bots,O=Acme"
        assert caller.allows("team-a", Role.WORKER)
    assert access.principal_for_subject("CN=worker-1") is None
    assert access.principal_for_subject("CN=worker-1,OU=bots,O=Acme,C=US") is None
    assert access.principal_for_subject("CN=Worker-1,OU=bots,O=Acme") is None


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ([], "must be a JSON object"),
        ({"api_key": []}, "unknown field(s) api_key"),
        ({"api_keys": {}}, "api_keys must be a list"),
        (
            {"api_keys": [{"name": "a", "sha256": "00", "grants": ["d:reader"]}]},
            "api_keys[0] (a): sha256",
        ),
        (
            {"api_keys": [{"name": "", "sha256": "0" * 64, "grants": ["d:reader"]}]},
            "api_keys[0]: name",
        ),
        (
            {"api_keys": [{"name": "a", "sha256": "0" * 64, "grants": []}]},
            "api_keys[0] (a): grants",
        ),
        (
            {"api_keys": [{"name": "a", "sha256": "0" * 64, "grants": ["d:boss"]}]},
            "unknown role 'boss'",
        ),
        (
            {"api_keys": [{"name": "a", "sha256": "0" * 64, "grant": ["d:reader"]}]},
            "unknown field(s) grant",
        ),
        (
            {"api_keys": [{"name": "a", "sha256": "0" * 64, "grants": ["d:reader"]}] * 2},
            "api_keys[1]: the same name",
        ),
        (
            {"certificates": [{"subject": "worker", "grants": ["d:worker"]}]},
            "certificates[0]: subject",
        ),
        (
            {
                "certificates": [
                    {"subject": "CN=a,O=b", "grants": ["d:worker"]},
                    {"subject": "O=b,CN=a", "grants": ["d:reader"]},
                ]
            },
            "certificates[1]: the same subject",
        ),
    ],
)
def test_a_bad_entry_is_a_value_error_naming_it(data: object, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        AccessFile.parse(data, source="access.json")
    assert str(caught.value).startswith("access.json")
    assert complaint in str(caught.value)


def test_load_reports_unreadable_and_non_json_files(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="cannot read the access file"):
        AccessFile.load(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="is not JSON"):
        AccessFile.load(str(tmp_path / "bad.json"))


def test_keys_create_prints_the_key_once_and_an_entry_that_admits_it() -> None:
    out = io.StringIO()
    code = keys_command(
        ["create", "--name", "ci-bot", "--grant", "default:writer", "--grant", "*:worker:fetch"],
        out,
    )
    assert code == 0
    text = out.getvalue()
    keys = re.findall(r"cairn_[A-Za-z0-9_-]{43}", text)
    assert len(keys) == 1
    entry = json.loads(text[text.index("{") :])
    assert entry == {
        "name": "ci-bot",
        "sha256": hash_api_key(keys[0]),
        "grants": ["default:writer", "*:worker:fetch"],
    }
    caller = AccessFile.parse({"api_keys": [entry]}).principal_for_key(keys[0])
    assert caller is not None and caller.name == "key:ci-bot"


def test_keys_create_refuses_bad_grants_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert keys_command(["create", "--name", "ci", "--grant", "default:boss"]) == 2
    assert "unknown role 'boss'" in capsys.readouterr().err
    assert keys_command(["create", "--name", "has space", "--grant", "default:reader"]) == 2
    assert "--name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        keys_command(["create", "--name", "ci"])  # --grant is required
