"""The ``hamod`` command's transport: an asynchronous client of the REST API, over the
local root-only Unix socket or over mutual TLS to another node, and the fan-out behind
``-H all|n1,n2``.

Every failure becomes a hamod error with a one-line message: transport failures name
the node and address (``n2 (10.0.0.2:9010): unreachable: connection refused``) and are
:class:`~hamod.errors.PeerError`; error answers map back to the class the server raised
(404/400/422 → UsageError, 409 → StateError, 502 → PeerError, 500 → AdapterError or
HamodError), prefixed with the node name for remote nodes. Imports no server code.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from hamod.api.models import (
    API_VERSION,
    DEFAULT_SOCKET,
    CommandRequest,
    CommandResult,
    ErrorBody,
    ErrorCode,
    ModuleConfigDump,
    ModuleStatus,
    NodeStatus,
    ReadyStatus,
    VersionInfo,
)
from hamod.errors import AdapterError, HamodError, PeerError, StateError, UsageError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
DEFAULT_TIMEOUT = 10.0
_MODULES = TypeAdapter(list[ModuleStatus])


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.3 client context: verifies the server against the cluster CA (hostname
    included) and presents this node's certificate."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"TLS files {ca}, {cert}, {key}: {_reason(exc)}") from exc
    return ctx


class Client:
    """One node's API. Use as ``async with Client.local() as c: await c.modules()``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        label: str,
        node: str | None = None,
        server_name: str | None = None,
    ) -> None:
        self._http = http
        #: Names the endpoint in transport errors: ``n2 (10.0.0.2:9010)``.
        self.label = label
        #: Prefix of error answers from a remote node (None for the local daemon).
        self.node_name = node
        self._ext: dict[str, Any] = {"sni_hostname": server_name} if server_name else {}

    @classmethod
    def local(cls, socket_path: Path = DEFAULT_SOCKET, timeout: float = DEFAULT_TIMEOUT) -> Client:
        """The local daemon, over its root-only Unix socket."""
        transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
        http = httpx.AsyncClient(transport=transport, base_url="http://hamod", timeout=timeout)
        return cls(http, f"local API ({socket_path})")

    @classmethod
    def remote(
        cls,
        address: str,
        port: int,
        ca: Path,
        cert: Path,
        key: Path,
        *,
        node: str | None = None,
        server_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Client:
        """Node ``node`` at ``address:port`` over mutual TLS. The server certificate must
        name ``server_name`` if given (the node name, a DNS SAN), else ``address`` (an IP
        SAN)."""
        host = f"[{address}]" if ":" in address else address
        http = httpx.AsyncClient(
            base_url=f"https://{host}:{port}",
            verify=client_context(ca, cert, key),
            timeout=timeout,
        )
        where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
        label = f"{node} ({where})" if node else where
        return cls(http, label, node=node or address, server_name=server_name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- API -------------------------------------------------------------------------

    async def version(self) -> VersionInfo:
        """Software, API and protocol versions of the node."""
        return _parse(VersionInfo, await self._request("GET", "/version"), self.label)

    async def node(self) -> NodeStatus:
        """The node: name, version and modules."""
        return _parse(NodeStatus, await self._request("GET", "/node"), self.label)

    async def modules(self) -> list[ModuleStatus]:
        """Status of every module on the node."""
        answer = await self._request("GET", "/modules")
        try:
            return _MODULES.validate_json(answer.content)
        except ValidationError as exc:
            raise PeerError(f"{self.label}: unexpected answer: {_first(exc)}") from exc

    async def module(self, name: str) -> ModuleStatus:
        """Status of one module on the node."""
        answer = await self._request("GET", f"/modules/{quote(name, safe='')}")
        return _parse(ModuleStatus, answer, self.label)

    async def module_config(self, name: str) -> ModuleConfigDump:
        """The module's canonical configuration on the node (its config hash's source)."""
        answer = await self._request("GET", f"/modules/{quote(name, safe='')}/config")
        return _parse(ModuleConfigDump, answer, self.label)

    async def command(self, name: str, request: CommandRequest) -> CommandResult:
        """Run a command on a module of the node."""
        body = request.model_dump(mode="json", exclude_defaults=True)
        path = f"/modules/{quote(name, safe='')}/commands"
        return _parse(CommandResult, await self._request("POST", path, json=body), self.label)

    async def ready(self, name: str) -> ReadyStatus:
        """The load balancers' health check, as a value (not ready is not an error)."""
        path = f"/modules/{quote(name, safe='')}/ready"
        answer = await self._request("GET", path, ok=(200, 404))
        if answer.status_code == 404 and b'"ready"' not in answer.content:
            self._raise_answer(answer)
        return _parse(ReadyStatus, answer, self.label)

    async def log(
        self, name: str, since: datetime | None = None, follow: bool = False
    ) -> AsyncIterator[str]:
        """The module's log lines; with ``follow``, waits for new ones until closed."""
        params: dict[str, str] = {"follow": "true" if follow else "false"}
        if since is not None:
            params["since"] = since.isoformat()
        url = f"/api/{API_VERSION}/modules/{quote(name, safe='')}/log"
        timeout = httpx.Timeout(self._http.timeout.connect, read=None) if follow else None
        try:
            async with self._http.stream(
                "GET",
                url,
                params=params,
                extensions=self._ext,
                timeout=timeout or self._http.timeout,
            ) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    self._raise_answer(answer)
                async for line in answer.aiter_lines():
                    yield line
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def verify(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """``hamod verify``: the JSON lines of the comparison, as they come."""
        url = f"/api/{API_VERSION}/modules/{quote(name, safe='')}/verify"
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            async with self._http.stream(
                "POST", url, extensions=self._ext, timeout=timeout
            ) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    self._raise_answer(answer)
                async for line in answer.aiter_lines():
                    if not line:
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as exc:
                        raise PeerError(f"{self.label}: unexpected answer: {line[:80]!r}") from exc
                    if isinstance(obj, dict):
                        yield obj
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    # -- internals -------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, json: Any = None, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        try:
            answer = await self._http.request(
                method, f"/api/{API_VERSION}{path}", json=json, extensions=self._ext
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if answer.status_code not in ok:
            self._raise_answer(answer)
        return answer

    def _raise_answer(self, answer: httpx.Response) -> None:
        """Raise the hamod error an error answer stands for."""
        try:
            body = ErrorBody.model_validate_json(answer.content)
            code, message = body.code, body.message
        except ValidationError:
            code, message = None, f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
        if self.node_name:
            message = f"{self.node_name}: {message}"
        if code in (ErrorCode.USAGE, ErrorCode.NOT_FOUND, ErrorCode.CONFIG):
            raise UsageError(message)
        if code is ErrorCode.STATE or answer.status_code == 409:
            raise StateError(message)
        if code is ErrorCode.PEER or answer.status_code in (502, 503, 504):
            raise PeerError(message)
        if code is ErrorCode.ADAPTER:
            raise AdapterError(message)
        if code is None and 400 <= answer.status_code < 500:
            raise UsageError(message)
        raise HamodError(message)

    def _transport_error(self, exc: httpx.HTTPError) -> HamodError:
        cause = _root_cause(exc)
        if isinstance(exc, httpx.TimeoutException):
            return PeerError(f"{self.label}: timed out ({_reason(cause)})")
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or _reason(cause)
            return PeerError(f"{self.label}: TLS: server certificate refused: {detail}")
        if isinstance(cause, ssl.SSLError):
            if "alert" in _reason(cause) and "certificate" in _reason(cause):
                return PeerError(
                    f"{self.label}: TLS: our certificate was refused ({_reason(cause)})"
                )
            return PeerError(f"{self.label}: TLS: {_reason(cause)}")
        if self.node_name is not None and isinstance(cause, ConnectionResetError):
            # TLS 1.3: a node refusing our certificate often just resets the connection.
            hint = "connection reset (is our certificate from the cluster CA?)"
            return PeerError(f"{self.label}: refused: {hint}")
        if isinstance(exc, httpx.ConnectError):
            reason = _reason(cause)
            if self.node_name is None and isinstance(cause, FileNotFoundError):
                reason += " (is the hamod daemon running?)"
            if self.node_name is None and isinstance(cause, PermissionError):
                reason += " (the local API is for root only)"
            return PeerError(f"{self.label}: unreachable: {reason}")
        return PeerError(f"{self.label}: {_reason(cause)}")


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        text = str(exc.reason) if exc.reason else str(exc)
        return text.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


def _parse(model: type[M], answer: httpx.Response, label: str) -> M:
    try:
        return model.model_validate_json(answer.content)
    except ValidationError as exc:
        raise PeerError(f"{label}: unexpected answer: {_first(exc)}") from exc


# -- fan-out (-H) ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResult(Generic[T]):
    """The outcome of one call on one node: a value or the error (never both)."""

    node: str
    value: T | None = None
    error: HamodError | None = None

    @property
    def ok(self) -> bool:
        """The call succeeded."""
        return self.error is None


def select_nodes(spec: str, known: Sequence[str]) -> list[str]:
    """Nodes named by ``-H``: ``all`` (every node, in cluster order) or ``n1,n2``."""
    if spec.strip() == "all":
        return list(known)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("-H: empty node list (use all or n1,n2)")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"-H: unknown node {unknown[0]!r} (known: {', '.join(known)})")
    return list(dict.fromkeys(names))


async def fan_out(
    clients: Mapping[str, Client], call: Callable[[Client], Awaitable[T]]
) -> list[NodeResult[T]]:
    """Run ``call`` on every node's client concurrently; one result per node, in the
    mapping's order. A node's failure is its result, not an exception."""

    async def one(node: str, client: Client) -> NodeResult[T]:
        try:
            return NodeResult(node, value=await call(client))
        except HamodError as exc:
            return NodeResult(node, error=exc)
        except Exception as exc:  # a bug must not hide the other nodes' answers
            return NodeResult(
                node, error=HamodError(f"{client.label}: {type(exc).__name__}: {exc}")
            )

    return list(await asyncio.gather(*(one(n, c) for n, c in clients.items())))
