"""The outermost layer of the API: size limits on what uvicorn parsed, and one log line per failure.

- A request target longer than `MAX_TARGET` bytes is answered 414, headers larger than
  `MAX_HEADERS` bytes (or more than `MAX_HEADER_COUNT` of them) 431, before any route runs;
  bodies are limited where they are read (`errors.read_body`, 413).
- A client that goes away mid-request or mid-stream is an ordinary event: one info line.
- An unexpected exception is logged once, with its traceback, here (Starlette's error middleware
  answers it with the 500 envelope and re-raises it; uvicorn would log it a second time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

log = logging.getLogger("tunelog.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

MAX_TARGET = 8 * 1024
"""Longest request target (path and query string), bytes."""
MAX_HEADERS = 32 * 1024
"""Largest sum of header names and values, bytes."""
MAX_HEADER_COUNT = 100
"""Most headers in one request."""


class Guard:
    """ASGI middleware: request limits, quiet disconnects, one log line per unexpected error."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _over_limits(scope)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        what = f"{scope.get('method')} {scope.get('path', '')[:200]!r}"
        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.info("the client went away during %s", what)
        except Exception:
            log.exception("unhandled error on %s", what)
            if not started:
                await _answer(send, 500, "internal", "internal error",
                              hint="see the daemon log (tunectl daemon status shows where it is)")


def _over_limits(scope: Scope) -> tuple[int, str, str] | None:
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if target > MAX_TARGET:
        return 414, "too_large", f"the request target is {target} bytes; the limit is {MAX_TARGET}"
    headers = scope.get("headers") or []
    size = sum(len(k) + len(v) for k, v in headers)
    if size > MAX_HEADERS or len(headers) > MAX_HEADER_COUNT:
        return (431, "too_large", f"the request headers are {size} bytes in {len(headers)} headers; the limits "
                                  f"are {MAX_HEADERS} bytes and {MAX_HEADER_COUNT} headers")
    return None


async def _answer(send: Callable[[Message], Awaitable[None]], status: int, code: str, message: str,
                  **extra: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, **extra}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
