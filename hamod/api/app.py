"""The REST API application: versioned routes under ``/api/v1`` over a :class:`Backend`.

One application serves every transport (root-only Unix socket, mutual TLS between nodes)
and every front end (the ``hamod`` command, the console later). Errors are mapped in
:mod:`hamod.api.handlers`; the OpenAPI document is at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, FastAPI, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime

from hamod import PROTOCOL_VERSION, __version__
from hamod.api import handlers
from hamod.api.backend import Backend
from hamod.api.models import (
    API_VERSION,
    CommandRequest,
    CommandResult,
    ErrorBody,
    ManifestRequest,
    ModuleConfigDump,
    ModuleStatus,
    NodeStatus,
    ReadyStatus,
    VersionInfo,
)

PREFIX: Final = f"/api/{API_VERSION}"
ModuleName = Annotated[
    str,
    Path(
        description="Module name.",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    ),
]

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": ErrorBody, "description": "Bad input (usage or config error)."},
    422: {"model": ErrorBody, "description": "Invalid request; `field` names it."},
    500: {"model": ErrorBody, "description": "Internal or adapter error."},
}
_MODULE_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "Unknown module."},
    502: {"model": ErrorBody, "description": "The peer could not be asked."},
}


def _health_router(backend: Backend) -> APIRouter:
    """Read-only routes that reveal nothing but versions and readiness."""
    router = APIRouter(prefix=PREFIX)

    @router.get("/version", tags=["node"], responses=_ERRORS)
    async def version() -> VersionInfo:
        """Software, API and wire protocol versions of this node."""
        return VersionInfo(version=__version__, api=API_VERSION, protocol=PROTOCOL_VERSION)

    @router.get(
        "/modules/{name}/ready",
        tags=["modules"],
        responses={
            **_MODULE_ERRORS,
            404: {"model": ReadyStatus, "description": "Not ready (or unknown module: ErrorBody)."},
        },
    )
    async def ready(name: ModuleName) -> JSONResponse:
        """Load balancers' health check (SafeKit's ``ready.txt``): 200 when the module
        serves here (PRIM, ALONE or UP, and READY), 404 otherwise."""
        status = await backend.module(name)
        answer = ReadyStatus(
            module=name, ready=status.ready, state=status.state, phase=status.phase
        )
        code = 200 if answer.ready else 404
        return JSONResponse(status_code=code, content=answer.model_dump(mode="json"))

    return router


def _router(backend: Backend) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.get("/node", tags=["node"], responses=_ERRORS)
    async def node() -> NodeStatus:
        """This node: its name, version and modules."""
        return await backend.node()

    @router.get("/modules", tags=["modules"], responses=_ERRORS)
    async def modules() -> list[ModuleStatus]:
        """Status of every module on this node (``hamod state``)."""
        return await backend.modules()

    @router.get("/modules/{name}", tags=["modules"], responses=_MODULE_ERRORS)
    async def module(name: ModuleName) -> ModuleStatus:
        """Status of one module on this node (``hamod state -m NAME -v``)."""
        return await backend.module(name)

    @router.get("/modules/{name}/config", tags=["modules"], responses=_MODULE_ERRORS)
    async def module_config(name: ModuleName) -> ModuleConfigDump:
        """The module's canonical configuration on this node (cluster and module files,
        defaults included), from which its config hash is computed. Nodes fetch their
        peer's to name the fields that differ when the hashes do (mutual TLS only)."""
        return await backend.module_config(name)

    @router.post(
        "/modules/{name}/commands",
        tags=["modules"],
        responses={
            **_MODULE_ERRORS,
            409: {"model": ErrorBody, "description": "Refused in this state."},
        },
    )
    async def command(
        name: ModuleName, request: Annotated[CommandRequest, Body()]
    ) -> CommandResult:
        """Run a command on the module on this node. 200 with ``accepted: false`` when
        there is nothing to do; 409 with the reason when the state forbids it."""
        return await backend.command(name, request)

    @router.get(
        "/modules/{name}/log",
        tags=["modules"],
        responses={**_MODULE_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Lines."}},
        response_class=StreamingResponse,
    )
    async def log(
        name: ModuleName,
        since: Annotated[
            AwareDatetime | None,
            Query(description="Only lines from this time (ISO 8601 with a time zone)."),
        ] = None,
        follow: Annotated[bool, Query(description="Keep the answer open for new lines.")] = False,
    ) -> StreamingResponse:
        """The module's log, one line per line of text (``hamod log [-f]``)."""
        lines = await backend.log(name, since, follow)
        return StreamingResponse(_encode(lines), media_type="text/plain; charset=utf-8")

    @router.post(
        "/modules/{name}/manifest",
        tags=["replication"],
        responses={**_MODULE_ERRORS, 200: {"content": {"application/x-ndjson": {}}}},
        response_class=StreamingResponse,
    )
    async def manifest(
        name: ModuleName, request: Annotated[ManifestRequest, Body()]
    ) -> StreamingResponse:
        """This node's manifest of one replicated directory (names, types, modes, owners,
        xattrs, hard links, region digests), one JSON line per name; ``verify`` on the
        peer reads it over mutual TLS."""
        lines = await backend.manifest(name, request.dir, request.paths)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @router.post(
        "/modules/{name}/verify",
        tags=["replication"],
        responses={**_MODULE_ERRORS, 200: {"content": {"application/x-ndjson": {}}}},
        response_class=StreamingResponse,
    )
    async def verify(name: ModuleName) -> StreamingResponse:
        """Compare this node's copy of the module's directories with the peer's, online
        (``hamod verify``): JSON lines of progress, differences (path, field, offset) and
        a report per directory, then ``{"done": true, "ok": ...}``."""
        lines = await backend.verify(name)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    return router


async def _encode(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield (line.rstrip("\n") + "\n").encode()


def create_app(backend: Backend) -> FastAPI:
    """The REST API over ``backend``, with its error handlers and OpenAPI document."""
    app = FastAPI(
        title="hamod",
        version=__version__,
        summary="High availability for any Linux application: node and module API.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.include_router(_health_router(backend))
    app.include_router(_router(backend))
    handlers.install(app)
    return app


def create_health_app(backend: Backend) -> FastAPI:
    """Only ``/api/v1/version`` and ``/api/v1/modules/{name}/ready``, for external load
    balancers that cannot present a client certificate (served without TLS, read-only)."""
    app = FastAPI(
        title="hamod health", version=__version__, openapi_url=None, docs_url=None, redoc_url=None
    )
    app.include_router(_health_router(backend))
    handlers.install(app)
    return app
