"""Every call's identity, rate limit and role, checked before a servicer runs.

The interceptor wraps each method's behaviour (unary and streaming alike, as
api/decoding.py does) for every service but health, which stays open for
probes. Per call it reads the namespace (`cairn-namespace`, `default` when
absent), authenticates the caller, counts the call against the caller's rate
limit and checks the role the method needs there, from one table
(`METHOD_ROLES`). A method missing from the table is refused for everyone, so
a new RPC cannot ship unguarded (a test holds every method of every
cairn.v1 service to the table).

Refusals, each with an ErrorInfo and an audit line:

- INVALID_ARGUMENT INVALID_NAMESPACE: the namespace metadata is not a name.
- UNAUTHENTICATED: no credential, or one that does not verify.
- RESOURCE_EXHAUSTED RATE_LIMITED: over the caller's rate; `retry_after_ms`.
- NOT_FOUND NAMESPACE_NOT_FOUND: the caller holds no grant in the namespace,
  so it cannot tell whether anything exists there.
- PERMISSION_DENIED: a grant in the namespace, but not the role.

Calls that delete, prune, rewrite or cancel are audit-logged when they
succeed. The servicer then learns the caller from `caller.current()`; what
only it can check (the names a worker registers, a relay hello) it checks
with `Principal.may_serve` and `Principal.allows(namespace, Role.REPLICA)`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from cairn_server import namespaces
from cairn_server.api import handlers
from cairn_server.api.errors import INTERNAL, abort
from cairn_server.auth import audit
from cairn_server.auth.authenticator import Authenticator
from cairn_server.auth.caller import Caller, acting_as, set_current
from cairn_server.auth.principal import Principal, Role
from cairn_server.auth.rate_limit import RateLimiter
from cairn_server.errors import ServiceError, error_for
from cairn_server.namespaces import DEFAULT as DEFAULT_NAMESPACE

log = logging.getLogger(__name__)

NAMESPACE_METADATA = "cairn-namespace"

OPEN_SERVICES = ("grpc.health.v1.Health",)
"""Services every caller reaches without credentials (load balancers' probes)."""


@dataclass(frozen=True, slots=True)
class Need:
    """What a method asks of its caller: one of `roles` in the call's
    namespace, or (`any_namespace`) any grant at all (reflection, which
    describes the API and no namespace's data)."""

    roles: frozenset[Role]
    any_namespace: bool = False

    def met_by(self, principal: Principal, namespace: str) -> bool:
        if self.any_namespace:
            return bool(principal.grants)
        return any(principal.allows(namespace, role) for role in self.roles)

    def __str__(self) -> str:
        if self.any_namespace:
            return "any grant"
        return " or ".join(sorted(role.value for role in self.roles))


READ = Need(frozenset({Role.READER}))
WRITE = Need(frozenset({Role.WRITER}))
ADMIN = Need(frozenset({Role.ADMIN}))
CONNECT = Need(frozenset({Role.WORKER, Role.REPLICA}))
"""The servicer checks the hello: the names against `may_serve`, a relay against REPLICA."""
RECALL = Need(frozenset({Role.READER, Role.WORKER}))
"""The memory store's reads: tasks and nodes read memories with their worker grant."""
REMEMBER = Need(frozenset({Role.WRITER, Role.WORKER}))
"""The memory store's writes, from applications (writer) and tasks (worker)."""
DESCRIBE = Need(frozenset(Role), any_namespace=True)

_BY_SERVICE: dict[str, dict[str, Need]] = {
    "cairn.v1.ThreadService": {
        "CreateThread": WRITE,
        "GetThread": READ,
        "ListThreads": READ,
        "DeleteThread": WRITE,
        "GetState": READ,
        "GetStateHistory": READ,
        "UpdateState": WRITE,
        "PruneThreads": ADMIN,
    },
    "cairn.v1.RunService": {
        "Invoke": WRITE,
        "Stream": WRITE,
        "Session": WRITE,
        "JoinRun": READ,
        "GetRun": READ,
        "ListRuns": READ,
        "CancelRun": WRITE,
    },
    "cairn.v1.WorkerService": {
        "Connect": CONNECT,
        "ListWorkers": READ,
    },
    "cairn.v1.GraphService": {
        "GetGraph": READ,
    },
    "cairn.v1.StoreService": {
        "GetItem": RECALL,
        "PutItem": REMEMBER,
        "DeleteItem": REMEMBER,
        "SearchItems": RECALL,
        "ListNamespaces": RECALL,
        # A batch that writes needs REMEMBER too: the servicer checks its operations.
        "BatchItems": RECALL,
    },
    "cairn.v1.ScheduleService": {
        "CreateSchedule": WRITE,
        "GetSchedule": READ,
        "ListSchedules": READ,
        "PauseSchedule": WRITE,
        "ResumeSchedule": WRITE,
        "TriggerSchedule": WRITE,
        "DeleteSchedule": WRITE,
    },
    "cairn.v1.CheckpointService": {
        "GetTuple": READ,
        "ListCheckpoints": READ,
        "PutCheckpoint": WRITE,
        "PutWrites": WRITE,
        "DeleteThreadCheckpoints": WRITE,
        "DeleteForRuns": WRITE,
        "CopyThreadCheckpoints": WRITE,
        "PruneCheckpoints": ADMIN,
        "GetCapabilities": READ,
    },
    "grpc.reflection.v1alpha.ServerReflection": {"ServerReflectionInfo": DESCRIBE},
    "grpc.reflection.v1.ServerReflection": {"ServerReflectionInfo": DESCRIBE},
}

METHOD_ROLES: Mapping[str, Need] = {
    f"{service}/{method}": need
    for service, methods in _BY_SERVICE.items()
    for method, need in methods.items()
}
"""Full method name (`cairn.v1.ThreadService/GetThread`) to what its caller needs."""

DESTRUCTIVE = frozenset(
    {
        "cairn.v1.ThreadService/DeleteThread",
        "cairn.v1.ThreadService/PruneThreads",
        "cairn.v1.ThreadService/UpdateState",
        "cairn.v1.RunService/CancelRun",
        "cairn.v1.CheckpointService/PutCheckpoint",
        "cairn.v1.CheckpointService/PutWrites",
        "cairn.v1.CheckpointService/DeleteThreadCheckpoints",
        "cairn.v1.CheckpointService/DeleteForRuns",
        "cairn.v1.CheckpointService/CopyThreadCheckpoints",
        "cairn.v1.CheckpointService/PruneCheckpoints",
        "cairn.v1.StoreService/DeleteItem",
        "cairn.v1.ScheduleService/DeleteSchedule",
    }
)
"""Methods audit-logged when they succeed."""


def namespace_of(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The call's namespace; INVALID_ARGUMENT (INVALID_NAMESPACE) for a bad one.
    Absent or empty means `default`."""
    values = {v for k, v in metadata or () if k == NAMESPACE_METADATA}
    if len(values) > 1:
        raise error_for(
            "INVALID_NAMESPACE", f"the call names more than one namespace ({NAMESPACE_METADATA})"
        )
    value = next(iter(values), "") or DEFAULT_NAMESPACE
    if not isinstance(value, str) or not namespaces.is_valid(value):
        shown = repr(value)[:80]
        raise error_for(
            "INVALID_NAMESPACE",
            f"{NAMESPACE_METADATA} {shown} is not a namespace name: 1 to 63 characters of"
            " a-z, 0-9, '.', '_' and '-', starting with a letter or a digit",
            namespace=shown,
        )
    return value


class AuthInterceptor(handlers.RewrappingInterceptor):
    """Authenticates, rate-limits and authorizes every call but health's.

    server = grpc.aio.server(interceptors=[
        AuthInterceptor(Authenticator.from_config(config),
                        rate_limiter=RateLimiter(config.rate_limit, config.burst)),
        DecodingInterceptor(),
    ])
    """

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        rate_limiter: RateLimiter | None = None,
        namespace_limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._limiter = rate_limiter
        self._namespace_limiter = namespace_limiter

    def rewrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if method.rpartition("/")[0] in OPEN_SERVICES:
            return handler
        wrap, behaviour = handlers.parts(handler)
        assert behaviour is not None  # grpc sets the behaviour of the handler's kind
        if handler.response_streaming:
            guarded = self._guarded_stream(behaviour, method)
        else:
            guarded = self._guarded_call(behaviour, method)
        wrapped: grpc.RpcMethodHandler = wrap(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return wrapped

    def _guarded_call(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            caller = await self._admit(method, request, context)
            with acting_as(caller):
                result = await handlers.result_of(behaviour(request, context))
            if method in DESTRUCTIVE:
                audit.destructive(
                    caller=caller.principal.name,
                    namespace=caller.namespace,
                    method=method,
                    request=request,
                )
            return result

        return call

    def _guarded_stream(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            caller = await self._admit(method, request, context)
            # Each call runs in a task of its own, so the caller set here is
            # this call's until it ends (a reset across yields could run in
            # another context when grpc closes the stream).
            set_current(caller)
            async for response in handlers.responses(behaviour(request, context)):
                yield response

        return stream

    async def _admit(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Caller:
        """The caller of an admitted call; a refused one is answered here."""
        name, namespace = "unauthenticated", "?"
        try:
            metadata = tuple(context.invocation_metadata() or ())
            namespace = namespace_of(metadata)
            principal = await self._authenticator.authenticate(metadata, context.auth_context())
            name = principal.name
            self._count(principal)
            self._authorize(principal, namespace, method)
            # Counted once admitted, so that callers without a grant there
            # cannot spend a namespace's calls.
            self._count_namespace(namespace)
        except ServiceError as error:
            audit.denied(
                caller=name,
                namespace=namespace,
                method=method,
                code=error.code,
                reason=error.reason,
                message=error.message,
                peer=context.peer() or "",
                request=request,
            )
            await abort(context, error)
        except Exception:
            log.exception("authenticating a call of %s failed", method)
            await abort(context, INTERNAL)
        return Caller(principal, namespace)

    def _count_namespace(self, namespace: str) -> None:
        _take(
            self._namespace_limiter,
            namespace,
            lambda rate: f"namespace {namespace!r} is over its {rate:g} calls per second",
            namespace=namespace,
        )

    def _count(self, principal: Principal) -> None:
        _take(
            self._limiter,
            principal.name,
            lambda rate: f"{principal.name} made more than {rate:g} calls per second",
        )

    @staticmethod
    def _authorize(principal: Principal, namespace: str, method: str) -> None:
        need = METHOD_ROLES.get(method)
        if need is None:
            raise error_for(
                "PERMISSION_DENIED",
                f"{method} is not open to any caller (it has no role in the server's table)",
                method=method,
            )
        if need.met_by(principal, namespace):
            return
        if need.any_namespace:
            raise error_for(
                "PERMISSION_DENIED",
                f"{principal.name} holds no grant, and {method} needs one",
                method=method,
            )
        if not principal.knows(namespace):
            # NOT_FOUND, as for an id that does not exist: a caller without a
            # grant here must not learn what the namespace holds.
            raise error_for(
                "NAMESPACE_NOT_FOUND",
                f"namespace {namespace!r} not found: {principal.name} holds no grant in it",
                namespace=namespace,
            )
        raise error_for(
            "PERMISSION_DENIED",
            f"{principal.name} may not call {method} in namespace {namespace!r}: it needs the"
            f" {need} role there",
            method=method,
            namespace=namespace,
            role=str(need),
        )


def _take(limiter: RateLimiter | None, key: str, over: Callable[[float], str], **ids: str) -> None:
    """Count a call against `key`'s bucket; RATE_LIMITED (with how long to
    wait) when it is empty. `over(rate)` says whose rate was exceeded."""
    if limiter is None:
        return
    wait = limiter.take(key)
    if wait > 0:
        milliseconds = max(1, math.ceil(wait * 1000))
        raise error_for(
            "RATE_LIMITED",
            f"{over(limiter.rate)}; try again in {milliseconds} ms",
            retry_after_ms=str(milliseconds),
            **ids,
        )
