"""Error answers of the REST API: hamod's exception tree and FastAPI's own errors mapped
to an HTTP status and an :class:`~hamod.api.models.ErrorBody`.

| error | status | code |
|---|---|---|
| request validation (body, query, path) | 422 | usage, ``field: problem`` |
| :class:`~hamod.api.backend.UnknownModule` | 404 | not_found |
| :class:`~hamod.errors.UsageError` | 400 | usage |
| :class:`~hamod.errors.ConfigError` | 400 | config |
| :class:`~hamod.errors.StateError` | 409 | state |
| :class:`~hamod.errors.PeerError` | 502 | peer |
| :class:`~hamod.errors.AdapterError`, other HamodError | 500 | adapter / internal |
| anything else | 500 | internal, generic message, traceback logged only |
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hamod.api.backend import UnknownModule
from hamod.api.models import ErrorBody, ErrorCode
from hamod.errors import (
    AdapterError,
    ConfigError,
    HamodError,
    PeerError,
    StateError,
    UsageError,
)

log = logging.getLogger("hamod.api")

#: A UsageError message ``field: problem`` names its field (``resource: required``).
_FIELD_PREFIX: Final = re.compile(r"^([A-Za-z_][\w.\[\]-]*): ")
GENERIC_500: Final = "internal error (details in the daemon's log)"


def error_response(
    status: int, code: ErrorCode, message: str, field: str | None = None
) -> JSONResponse:
    """A JSON error answer."""
    body = ErrorBody(code=code, message=message, field=field)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "error"


def _field_of(exc: HamodError, message: str) -> str | None:
    field = getattr(exc, "field", None)
    if isinstance(field, str):
        return field
    match = _FIELD_PREFIX.match(message)
    return match.group(1) if match else None


def _is_unknown_module(exc: UsageError) -> bool:
    return isinstance(exc, UnknownModule) or str(exc).startswith("unknown module ")


async def _hamod_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HamodError)
    message = _one_line(str(exc))
    if isinstance(exc, UsageError):
        if _is_unknown_module(exc):
            return error_response(404, ErrorCode.NOT_FOUND, message, "name")
        return error_response(400, ErrorCode.USAGE, message, _field_of(exc, message))
    if isinstance(exc, ConfigError):
        field = exc.problems[0].path if exc.problems else None
        return error_response(400, ErrorCode.CONFIG, message, field)
    if isinstance(exc, StateError):
        return error_response(409, ErrorCode.STATE, message)
    if isinstance(exc, PeerError):
        return error_response(502, ErrorCode.PEER, message)
    log.error("%s %s: %s", request.method, request.url.path, message)
    if isinstance(exc, AdapterError):
        return error_response(500, ErrorCode.ADAPTER, message)
    return error_response(500, ErrorCode.INTERNAL, message)


class CatchAll:
    """ASGI middleware answering 500 with a generic message for any unexpected exception
    (Starlette's own catch-all would re-raise it to the server after answering). The
    traceback goes to the log; an exception after the answer started just ends it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("%s %s: unexpected error", scope.get("method"), scope.get("path"))
            if not started:
                response = error_response(500, ErrorCode.INTERNAL, GENERIC_500)
                await response(scope, receive, send)


def _loc(loc: Sequence[Any]) -> str:
    """``("body", "checks", 0, "name")`` → ``checks[0].name``; the body itself → ``body``."""
    parts = list(loc[1:]) if len(loc) > 1 and loc[0] in ("body", "query", "path") else list(loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (str(loc[0]) if loc else "body")


def _problem(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "enum":
        return f"not one of {ctx.get('expected', '?').replace(chr(39), '')}"
    if kind == "json_invalid":
        return f"invalid JSON ({ctx.get('error', 'parse error')})"
    if kind == "model_attributes_type" or kind == "dict_type":
        return "must be a JSON object"
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def validation_message(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """hamod's one-line form of pydantic errors, and the first field named."""
    problems = [(_loc(e.get("loc", ())), _problem(e)) for e in errors]
    if not problems:
        return "invalid request", None
    message = "; ".join(f"{field}: {problem}" for field, problem in problems)
    return message, problems[0][0]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, field = validation_message(list(exc.errors()))
    return error_response(422, ErrorCode.USAGE, message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(404, ErrorCode.NOT_FOUND, f"no such endpoint: {request.url.path}")
    if exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(405, ErrorCode.USAGE, message)
    code = ErrorCode.INTERNAL if exc.status_code >= 500 else ErrorCode.USAGE
    return error_response(exc.status_code, code, _one_line(str(exc.detail)))


def install(app: FastAPI) -> None:
    """Register every error handler on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(HamodError, _hamod_error)
    app.add_middleware(CatchAll)
