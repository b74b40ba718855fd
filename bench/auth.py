"""What identity costs per call: a unary call (GetThread) and an Invoke of
an entrypoint with one task, on an open server and on servers that check an
API key, an HS256 JWT or an RS256 JWT (from a JWKS file), in plaintext and
over TLS.

    .venv/bin/python bench/auth.py [--calls 2000] [--invokes 300] [--json results.json]

Each configuration gets its own in-process server (SQLite in a temporary
directory, 127.0.0.1:0) and client; the worker serving the entrypoint runs
in the same event loop. It reports the median and p90 latency per call and
the difference from the open server's median, which is what checking the
caller adds (the interceptor, the credential check, the role table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

from cairn import Client, TlsConfig, Worker, entrypoint, task
from cairn_server.auth import AuthConfig, hash_api_key, new_api_key
from cairn_server.server import ServerConfig, create_server

SECRET = b"bench-secret-" + b"x" * 40


@task
def double(x: int) -> int:
    return 2 * x


@entrypoint()
def flow(x: int) -> int:
    return double(x).result()


@dataclass
class Setup:
    name: str
    auth: AuthConfig
    credentials: dict[str, Any]


def setups(folder: pathlib.Path) -> list[Setup]:
    key = new_api_key()
    access = folder / "access.json"
    entry = {"name": "bench", "sha256": hash_api_key(key), "grants": ["default:admin"]}
    access.write_text(json.dumps({"api_keys": [entry]}))
    claims = {"sub": "bench", "exp": int(time.time()) + 3600, "permissions": ["default:admin"]}
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk, "kid": "k1", "alg": "RS256"}]}))
    rs256 = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "tls.crt"))
    cert.private_key_pem.write_to_path(str(folder / "tls.key"))
    ca.cert_pem.write_to_path(str(folder / "ca.crt"))
    tls_server = {"tls_cert": str(folder / "tls.crt"), "tls_key": str(folder / "tls.key")}
    tls_client = {"tls": TlsConfig(ca_file=str(folder / "ca.crt"))}
    return [
        Setup("open", AuthConfig(), {}),
        Setup("api key", AuthConfig(access_file=str(access)), {"api_key": key}),
        Setup(
            "jwt hs256",
            AuthConfig(jwt_secret=SECRET),
            {"token": jwt.encode(claims, SECRET, algorithm="HS256")},
        ),
        Setup("jwt rs256", AuthConfig(jwt_jwks=str(jwks)), {"token": rs256}),
        Setup("tls, open", AuthConfig(**tls_server), tls_client),
        Setup(
            "tls, api key",
            AuthConfig(access_file=str(access), **tls_server),
            {"api_key": key, **tls_client},
        ),
    ]


@contextlib.asynccontextmanager
async def serving(setup: Setup, folder: pathlib.Path) -> AsyncIterator[str]:
    config = ServerConfig(
        address="127.0.0.1:0", store_url=f"sqlite:///{folder / (setup.name + '.db')}"
    )
    config.auth = setup.auth
    server, port = await create_server(config)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0.5)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p90_us": ordered[int(len(ordered) * 0.9)] * 1e6,
    }


async def measure(setup: Setup, folder: pathlib.Path, calls: int, invokes: int) -> dict[str, Any]:
    async with serving(setup, folder) as address:
        worker = Worker(address, functions=[double, flow], **setup.credentials)
        running = asyncio.create_task(worker.run())
        try:
            async with Client(address, **setup.credentials) as client:
                await client.invoke(flow, 1, thread_id="warm", durability="sync")
                unary = []
                for _ in range(calls):
                    started = time.perf_counter()
                    await client.get_thread("warm")
                    unary.append(time.perf_counter() - started)
                runs = []
                for i in range(invokes):
                    started = time.perf_counter()
                    await client.invoke(flow, i, thread_id=f"t{i}", durability="sync")
                    runs.append(time.perf_counter() - started)
        finally:
            await worker.stop()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    return {"get_thread": summary(unary), "invoke": summary(runs)}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--invokes", type=int, default=300)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory)
        for setup in setups(folder):
            results[setup.name] = await measure(setup, folder, args.calls, args.invokes)
    base = results["open"]
    print(
        f"{'server':<14} {'GetThread p50':>14} {'p90':>8} {'+p50':>8}"
        f" {'Invoke p50':>11} {'p90':>8} {'+p50':>8}   (microseconds)"
    )
    for name, figures in results.items():
        get, run = figures["get_thread"], figures["invoke"]
        print(
            f"{name:<14} {get['median_us']:>14.0f} {get['p90_us']:>8.0f}"
            f" {get['median_us'] - base['get_thread']['median_us']:>+8.0f}"
            f" {run['median_us']:>11.0f} {run['p90_us']:>8.0f}"
            f" {run['median_us'] - base['invoke']['median_us']:>+8.0f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
