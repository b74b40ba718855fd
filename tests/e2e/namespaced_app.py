"""A worker process for the identity, namespace and TLS end-to-end tests.

It serves the entrypoint `hello` and its task `greet` in one namespace,
with the credentials and TLS settings given on the command line (passed to
`Worker` as arguments, not through CAIRN_* variables). Their outputs carry
`--label`, so that two workers serving the same names in two namespaces give
different results. Every execution appends
`<label> <name> <namespace> <thread id> <run id>` to the --log file, so that
tests can tell which worker ran which runs. Calls go through the service
(`local_calls=False`): a task of a relayed run crosses the relay too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib

from cairn import TlsConfig, Worker, entrypoint, task
from cairn._context import current

LOG: pathlib.Path
LABEL = ""


def record() -> None:
    assignment = current().assignment
    line = (
        f"{LABEL} {assignment.name} {assignment.namespace or '-'}"
        f" {assignment.thread_id} {assignment.run_id}\n"
    )
    with LOG.open("a") as handle:
        handle.write(line)


@task
def greet(name: str) -> str:
    record()
    return f"{LABEL} greets {name}"


@entrypoint()
def hello(name: str) -> dict[str, str]:
    record()
    return {"greeting": greet(name).result(), "by": LABEL}


async def main() -> None:
    global LOG, LABEL
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--log", required=True, type=pathlib.Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--namespace")
    parser.add_argument("--token-file", type=pathlib.Path, help="a JWT, kept out of argv")
    parser.add_argument("--ca", help="the CA of the server's certificate (TLS)")
    parser.add_argument("--cert", help="a client certificate (mTLS)")
    parser.add_argument("--key", help="its private key")
    args = parser.parse_args()
    LOG, LABEL = args.log, args.label
    token = args.token_file.read_text().strip() if args.token_file else None
    tls = None
    if args.ca or args.cert:
        tls = TlsConfig(ca_file=args.ca, cert_file=args.cert, key_file=args.key)
    worker = Worker(
        args.address,
        functions=[greet, hello],
        token=token,
        namespace=args.namespace,
        tls=tls,
        local_calls=False,
    )
    runner = asyncio.ensure_future(worker.run())
    await worker.connected.wait()
    print("worker ready", worker.worker_id, os.getpid(), flush=True)
    await runner


if __name__ == "__main__":
    asyncio.run(main())
