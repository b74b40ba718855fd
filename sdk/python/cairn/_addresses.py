"""Server addresses as clients and workers accept them: one address, several
separated by commas, or a sequence of addresses (the replicas of one service).

    Client("127.0.0.1:50051")
    Client("10.0.0.1:50051,10.0.0.2:50051")
    Worker(["10.0.0.1:50051", "10.0.0.2:50051"], functions=[...])
"""

from __future__ import annotations

from collections.abc import Sequence

Addresses = str | Sequence[str]


def parse_addresses(address: Addresses) -> tuple[str, ...]:
    """The distinct addresses in `address`, in the order given."""
    items = [address] if isinstance(address, str) else list(address)
    found: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"a server address is a string, not {item!r}")
        for part in item.split(","):
            if part.strip():
                found[part.strip()] = None
    if not found:
        raise ValueError(f"no server address in {address!r}")
    return tuple(found)
