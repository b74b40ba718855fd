"""`cairn keys create`: a new API key and the access-file entry that admits it.

The key is printed once and never stored: the server keeps only its SHA-256,
so a leaked access file or backup reveals no credential.

    $ cairn keys create --name ci-bot --grant default:writer
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any, TextIO

from cairn_server.auth.access_file import KEY_NAME_PATTERN, hash_api_key
from cairn_server.auth.principal import parse_grant

API_KEY_PREFIX = "cairn_"
"""How the server tells an API key from a JWT in `authorization: Bearer ...`."""

__all__ = ["API_KEY_PREFIX", "add_keys_parser", "hash_api_key", "keys_command", "new_api_key"]


def new_api_key() -> str:
    """A new random API key: `cairn_` and 32 random bytes in base64url (43 characters)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `keys create` to the `cairn` parser's sub-commands. The parsed
    arguments carry `run_keys` as `keys_run`: call `args.keys_run(args)`."""
    keys: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="create API keys for the access file"
    )
    actions = keys.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser(
        "create", help="print a new API key once, and the access-file entry that admits it"
    )
    create.add_argument("--name", required=True, help="the key's name in logs (key:NAME)")
    create.add_argument(
        "--grant",
        action="append",
        required=True,
        metavar="GRANT",
        help="NAMESPACE:ROLE or NAMESPACE:worker:NAME[,NAME...]; repeat for more (* is every"
        " namespace; roles: reader, writer, worker, admin, replica)",
    )
    keys.set_defaults(keys_run=run_keys)
    return keys


def run_keys(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a parsed `cairn keys ...` command; 2 with a message for bad arguments."""
    out = out or sys.stdout
    if KEY_NAME_PATTERN.fullmatch(args.name) is None:
        print(
            f"cairn keys create: --name {args.name!r}: use 1-128 letters, digits, '.', '_',"
            " '@' or '-', starting with a letter or a digit",
            file=sys.stderr,
        )
        return 2
    try:
        grants = [str(parse_grant(text)) for text in args.grant]
    except ValueError as error:
        print(f"cairn keys create: --grant: {error}", file=sys.stderr)
        return 2
    key = new_api_key()
    entry = {"name": args.name, "sha256": hash_api_key(key), "grants": grants}
    print(f"API key (shown only now; the server keeps only its hash):\n\n  {key}\n", file=out)
    print(
        'Add this entry to "api_keys" in the access file (cairn serve --access-file):\n', file=out
    )
    print(json.dumps(entry, indent=2), file=out)
    return 0


def keys_command(argv: list[str], out: TextIO | None = None) -> int:
    """`cairn keys ...` on its own, e.g. `keys_command(["create", "--name", "ci", ...])`."""
    parser = argparse.ArgumentParser(prog="cairn")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", *argv])
    return run_keys(args, out)
