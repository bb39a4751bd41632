"""The one JSON error envelope: `{"error": {"code", "message", "hint"?, "problems"?}}`, and the
strict readers every route uses for what a client sends (numbers, bodies), so malformed input is
a 4xx naming the field and never reaches the store."""

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
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a JSON body."""
MAX_POSITION = (1 << 63) - 1
"""Largest integer SQLite stores: the bound of every log position and version."""


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
    # `guard.Guard` answers (and logs) errors of the routes first; this covers anything outside it.
    return envelope(500, "internal", f"internal error: {type(exc).__name__}: {exc}",
                    hint="see the daemon log (tunectl daemon status shows where it is)")


HANDLERS = {TunelogError: tunelog_error, HTTPException: http_error, Exception: unexpected_error}


def parse_int(raw: str, *, low: int = 0, high: int = MAX_POSITION) -> int | None:
    """`raw` as an integer in `low..high`, or None: ASCII digits only (`str.isdigit` takes '²',
    `int` takes '+5', ' 5' and '1_0'), at most one leading '-'."""
    digits = raw[1:] if raw.startswith("-") else raw
    if not (0 < len(digits) <= 19 and digits.isascii() and digits.isdigit()):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def int_field(raw: str | None, where: str, problems: list[tuple[str, str]], *, default: int, low: int = 0,
              high: int = MAX_POSITION) -> int:
    """One integer from a query string or header; a problem naming `where` when it is not one."""
    if raw is None:
        return default
    value = parse_int(raw, low=low, high=high)
    if value is None:
        problems.append((where, f"must be an integer from {low} to {high}, got {raw[:40]!r}"))
        return default
    return value


async def read_body(request: Request, kind: type[T]) -> T:
    """Decode a JSON body into `kind`, refusing oversized, malformed, too deep or mistyped input.
    The decoded body is kept on the request, so a second call (the idempotency check, then the
    route) reads it once."""
    cached = getattr(request.state, "body", None)
    if isinstance(cached, kind):
        return cached
    length = request.headers.get("content-length")
    if length is not None and (parse_int(length) is None or int(length) > MAX_BODY):
        raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    try:
        raw = msgspec.json.decode(body or b"{}")
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"the request body is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationError(f"the request body is nested deeper than {MAX_DEPTH} levels") from exc
    if _depth(raw) > MAX_DEPTH:
        raise ValidationError(f"the request body is nested deeper than {MAX_DEPTH} levels")
    try:
        decoded = msgspec.convert(raw, type=kind)
    except msgspec.ValidationError as exc:
        where, msg = _split_path(str(exc))
        raise ValidationError.collect("the request body is invalid", [(where, msg)]) from exc
    request.state.body = decoded
    return decoded


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded JSON value (iterative: no recursion limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _split_path(text: str) -> tuple[str, str]:
    """(where, message) of a msgspec error: "Expected `int`, got `str` - at `$.params.lr`" is at
    `params.lr`; an error without a path is about the whole body."""
    if " - at `" in text:
        msg, _, rest = text.partition(" - at `")
        return rest.rstrip("`").replace("$.", "").replace("$", "body"), msg
    return "body", text
