"""The access file (`cairn serve --access-file access.json`): static API keys
and client-certificate subjects, each with its grants.

    {
      "api_keys": [{"name": "ci-bot", "sha256": "<hex>", "grants": ["default:writer"]}],
      "certificates": [{"subject": "CN=worker-1", "grants": ["default:worker"]}]
    }

Only the SHA-256 of each key is stored, so the file leaks no credential
(`cairn keys create` prints a key and its entry). API keys are 32 random
bytes, so an unsalted fast hash is enough: there is nothing to guess. A
presented key is hashed and compared with every entry in constant time.

A certificate subject is written as RFC 4514 (`CN=worker-1,O=Acme`, as grpc
reports it and `openssl x509 -subject -nameopt rfc2253` prints it); the
order of its attributes does not matter here.

The file is checked when it is loaded: a bad entry is a ValueError naming it,
so a typo stops `cairn serve` rather than locking a caller out later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from cairn_server.auth.principal import Grant, Principal, parse_grant

KEY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
"""An API key's name: it appears in logs as `key:<name>`."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def hash_api_key(key: str) -> str:
    """The hex SHA-256 of a whole API key string, as the access file stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    name: str
    sha256: str
    grants: tuple[Grant, ...]


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    subject: str
    grants: tuple[Grant, ...]


def subject_key(subject: str) -> tuple[tuple[str, str], ...]:
    """A subject's attributes, types upper-cased and sorted, so that
    `CN=a,O=b` and `O=b, cn=a` name the same certificate. Values keep their
    case and escapes (`CN=a\\,b` is one attribute)."""
    parts: list[tuple[str, str]] = []
    for rdn in re.split(r"(?<!\\)[,+]", subject):
        kind, sep, value = rdn.partition("=")
        if not sep:
            return ((subject, ""),)  # not RFC 4514: only the same string matches
        parts.append((kind.strip().upper(), value.strip()))
    return tuple(sorted(parts))


@dataclass(frozen=True, slots=True)
class AccessFile:
    """The parsed access file."""

    api_keys: tuple[ApiKeyEntry, ...] = ()
    certificates: tuple[CertificateEntry, ...] = ()

    @classmethod
    def load(cls, path: str) -> AccessFile:
        """Read and check the file; ValueError saying which entry is wrong."""
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except OSError as error:
            raise ValueError(f"cannot read the access file {path}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"the access file {path} is not JSON: {error}") from None
        return cls.parse(data, source=path)

    @classmethod
    def parse(cls, data: Any, *, source: str = "the access file") -> AccessFile:
        if not isinstance(data, dict):
            raise ValueError(f"{source}: must be a JSON object with api_keys and certificates")
        unknown = set(data) - {"api_keys", "certificates"}
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        keys = tuple(
            _api_key(entry, f"{source}: api_keys[{i}]")
            for i, entry in enumerate(_list(data, "api_keys", source))
        )
        certificates = tuple(
            _certificate(entry, f"{source}: certificates[{i}]")
            for i, entry in enumerate(_list(data, "certificates", source))
        )
        _unique([k.name for k in keys], f"{source}: api_keys", "name")
        _unique([k.sha256 for k in keys], f"{source}: api_keys", "sha256")
        _unique(
            [subject_key(c.subject) for c in certificates], f"{source}: certificates", "subject"
        )
        return cls(keys, certificates)

    def principal_for_key(self, key: str) -> Principal | None:
        """The caller an API key names, or None for a key not in the file."""
        digest = hash_api_key(key)
        found = None
        for entry in self.api_keys:  # every entry, so timing tells nothing
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return None if found is None else Principal(f"key:{found.name}", found.grants)

    def principal_for_subject(self, subject: str) -> Principal | None:
        """The caller a verified client certificate's subject names, or None."""
        wanted = subject_key(subject)
        for entry in self.certificates:
            if subject_key(entry.subject) == wanted:
                return Principal(f"cert:{entry.subject}", entry.grants)
        return None


def _list(data: dict[str, Any], field: str, source: str) -> list[Any]:
    value = data.get(field, [])
    if not isinstance(value, list):
        raise ValueError(f"{source}: {field} must be a list")
    return value


def _fields(entry: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be an object")
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return entry


def _grants(entry: dict[str, Any], where: str) -> tuple[Grant, ...]:
    texts = entry.get("grants")
    if not isinstance(texts, list) or not texts:
        raise ValueError(f"{where}: grants must be a non-empty list of grant strings")
    try:
        return tuple(parse_grant(text) for text in texts)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _api_key(entry: Any, where: str) -> ApiKeyEntry:
    fields = _fields(entry, where, {"name", "sha256", "grants"})
    name = fields.get("name")
    if not isinstance(name, str) or KEY_NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"{where}: name must be 1-128 characters of letters, digits, '.', '_', '@', '-'"
        )
    where = f"{where} ({name})"
    digest = fields.get("sha256")
    if not isinstance(digest, str) or _SHA256_HEX.fullmatch(digest.lower()) is None:
        raise ValueError(
            f"{where}: sha256 must be the 64 hex digits of the key's SHA-256"
            " (`cairn keys create` prints it)"
        )
    return ApiKeyEntry(name, digest.lower(), _grants(fields, where))


def _certificate(entry: Any, where: str) -> CertificateEntry:
    fields = _fields(entry, where, {"subject", "grants"})
    subject = fields.get("subject")
    if not isinstance(subject, str) or not subject.strip() or "=" not in subject:
        raise ValueError(f"{where}: subject must be a certificate subject such as 'CN=worker-1'")
    return CertificateEntry(subject.strip(), _grants(fields, f"{where} ({subject})"))


def _unique(values: list[Any], where: str, field: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{where}[{i}]: the same {field} as an entry before it")
        seen.add(value)
