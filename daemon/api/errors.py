"""The one JSON error envelope: `{"error": {"code", "message", "hint"?, "problems"?}}`."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tunelog.events.errors import TunelogError, ValidationError

log = logging.getLogger("tunelog.api")
T = TypeVar("T")

MAX_BODY = 1 << 20
"""Largest request body accepted (bytes)."""


def envelope(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def tunelog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TunelogError)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request"}
    message = {404: f"no route {request.method} {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return envelope(exc.status_code, codes.get(exc.status_code, "error"), message)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "internal", f"internal error: {type(exc).__name__}: {exc}",
                    hint="see the daemon log (tunectl daemon status shows where it is)")


HANDLERS = {TunelogError: tunelog_error, HTTPException: http_error, Exception: unexpected_error}


async def read_body(request: Request, kind: type[T]) -> T:
    """Decode a JSON body into `kind`, refusing oversized, malformed or mistyped input."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        where, _, msg = _split_path(str(exc))
        raise ValidationError.collect("the request body is invalid", [(where, msg)]) from exc
    except msgspec.DecodeError as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}") from exc


def _split_path(text: str) -> tuple[str, str, str]:
    # msgspec: "Expected `int`, got `str` - at `$.params.lr`"
    if " - at `" in text:
        msg, _, rest = text.partition(" - at `")
        return rest.rstrip("`").replace("$.", "").replace("$", "body"), "", msg
    return "body", "", text
