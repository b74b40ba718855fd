"""Grants, role implication and the anonymous principal."""

from __future__ import annotations

import pytest

from cairn_server.auth import ANONYMOUS, OPEN_CALLER, Grant, Principal, Role, current, parse_grant


def principal(*grants: str) -> Principal:
    return Principal("test", tuple(parse_grant(g) for g in grants))


def test_grants_parse_namespace_role_and_worker_names() -> None:
    assert parse_grant("default:writer") == Grant("default", Role.WRITER)
    assert parse_grant("*:replica") == Grant("*", Role.REPLICA)
    assert parse_grant("team-a.prod_1:worker:fetch, summarize") == Grant(
        "team-a.prod_1", Role.WORKER, frozenset({"fetch", "summarize"})
    )
    assert str(parse_grant("ns:worker:b,a")) == "ns:worker:a,b"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("default", "is not '<namespace>:<role>'"),
        ("default:owner", "unknown role 'owner'"),
        ("Default:reader", "not '*' or a namespace name"),
        (":reader", "not '*' or a namespace name"),
        ("-x:reader", "not '*' or a namespace name"),
        ("a" * 64 + ":reader", "not '*' or a namespace name"),
        ("default:reader:fetch", "only worker grants may list names"),
        ("default:worker:", "names must not be empty"),
        ("default:worker:a,,b", "names must not be empty"),
    ],
)
def test_bad_grants_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="grant") as caught:
        parse_grant(text)
    assert complaint in str(caught.value)


def test_roles_imply_weaker_ones_in_their_namespace_only() -> None:
    writer = principal("team-a:writer")
    assert writer.allows("team-a", Role.READER)
    assert writer.allows("team-a", Role.WRITER)
    assert not writer.allows("team-a", Role.ADMIN)
    assert not writer.allows("team-a", Role.WORKER)
    assert not writer.allows("team-b", Role.READER)
    reader = principal("team-a:reader")
    assert not reader.allows("team-a", Role.WRITER)


def test_admin_includes_writer_reader_and_every_worker_name_but_not_replica() -> None:
    admin = principal("team-a:admin")
    for role in (Role.READER, Role.WRITER, Role.WORKER, Role.ADMIN):
        assert admin.allows("team-a", role)
    assert admin.may_serve("team-a", "anything")
    assert not admin.allows("team-a", Role.REPLICA)
    assert not admin.may_serve("team-b", "anything")


def test_replica_implies_nothing_else() -> None:
    replica = principal("*:replica")
    assert replica.allows("any", Role.REPLICA)
    for role in (Role.READER, Role.WRITER, Role.WORKER, Role.ADMIN):
        assert not replica.allows("any", role)
    assert not replica.may_serve("any", "fetch")


def test_worker_grants_limit_the_names_served() -> None:
    worker = principal("team-a:worker:fetch,parse", "*:worker:shared")
    assert worker.may_serve("team-a", "fetch")
    assert not worker.may_serve("team-a", "summarize")
    assert not worker.may_serve("team-b", "fetch")
    assert worker.may_serve("team-b", "shared")
    assert worker.allows("team-a", Role.WORKER)
    assert not worker.allows("team-a", Role.READER)
    assert principal("team-a:worker").may_serve("team-a", "summarize")


def test_knows_is_any_grant_in_the_namespace() -> None:
    caller = principal("team-a:worker:fetch")
    assert caller.knows("team-a")
    assert not caller.knows("team-b")
    assert principal("*:reader").knows("team-z")
    assert not Principal("nobody").knows("default")


def test_anonymous_may_do_everything_and_is_the_caller_outside_a_call() -> None:
    for role in Role:
        assert ANONYMOUS.allows("default", role)
        assert ANONYMOUS.allows("team-a", role)
    assert ANONYMOUS.may_serve("team-a", "fetch")
    assert current() == OPEN_CALLER
    assert (current().principal, current().namespace) == (ANONYMOUS, "default")
