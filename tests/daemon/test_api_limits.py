"""The API's outer guard at its exact limits, driven as ASGI (the interface uvicorn calls it through):
the longest request target and the largest and most headers pass, one byte or header more is
refused before any route runs; a client that goes away is one info line; an unexpected error is
one logged traceback and a 500 envelope, unless the answer had already started.
test_api_socket.py checks the same through uvicorn on a real socket."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
from starlette.requests import ClientDisconnect

from tunelog.daemon.api.guard import MAX_HEADER_COUNT, MAX_HEADERS, MAX_TARGET, Guard


class Route:
    """The app behind the guard: records that it ran, then answers, fails or loses its client."""

    def __init__(self, fail: BaseException | None = None, *, after_start: bool = False):
        self.fail, self.after_start, self.calls = fail, after_start, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        if self.fail is not None and not self.after_start:
            raise self.fail
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if self.fail is not None:
            raise self.fail
        await send({"type": "http.response.body", "body": b"ok"})


def call(app: Route, *, path: bytes = b"/v1/status", query: bytes = b"",
         headers: list[tuple[bytes, bytes]] | None = None, kind: str = "http") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": kind, "method": "GET", "path": path.decode(), "raw_path": path, "query_string": query,
             "headers": headers or []}
    anyio.run(Guard(app), scope, receive, send)
    return sent


def refusal(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    assert dict(start["headers"]) == {b"content-type": b"application/json",
                                      b"content-length": str(len(body["body"])).encode()}
    return start["status"], json.loads(body["body"])["error"]


def test_the_longest_request_target_passes_and_one_byte_more_is_a_414() -> None:
    path = b"/v1/events"
    app = Route()
    assert call(app, path=path, query=b"q" * (MAX_TARGET - len(path)))[0]["status"] == 200
    assert app.calls == 1
    status, err = refusal(call(app, path=path, query=b"q" * (MAX_TARGET - len(path) + 1)))
    assert (status, err) == (414, {"code": "too_large", "message": f"the request target is {MAX_TARGET + 1} bytes; "
                                                                   f"the limit is {MAX_TARGET}"})
    refusal(call(app, path=b"/" * (MAX_TARGET + 1)))  # the path alone counts too
    assert app.calls == 1


def test_the_largest_and_most_headers_pass_and_more_is_a_431() -> None:
    app = Route()
    big = [(b"x-big", b"v" * (MAX_HEADERS - 5))]
    many = [(b"x-%d" % i, b"") for i in range(MAX_HEADER_COUNT)]
    assert call(app, headers=big)[0]["status"] == 200 and call(app, headers=many)[0]["status"] == 200
    status, err = refusal(call(app, headers=[(b"x-big", b"v" * (MAX_HEADERS - 4))]))
    assert status == 431 and err["message"] == (f"the request headers are {MAX_HEADERS + 1} bytes in 1 headers; "
                                                f"the limits are {MAX_HEADERS} bytes and {MAX_HEADER_COUNT} headers")
    status, err = refusal(call(app, headers=[*many, (b"y", b"")]))
    assert status == 431 and f"in {MAX_HEADER_COUNT + 1} headers" in err["message"]
    assert app.calls == 2


def test_only_http_is_checked() -> None:
    app = Route()
    assert call(app, kind="websocket", path=b"/" * (MAX_TARGET + 1))[0]["status"] == 200
    assert app.calls == 1


def test_a_client_that_goes_away_is_one_info_line_and_no_answer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tunelog.api")
    long = b"/" + b"p" * 300
    assert call(Route(ClientDisconnect()), path=long) == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"the client went away during GET {long.decode()[:200]!r}")]


def test_an_unexpected_error_is_logged_once_and_answered_500_unless_the_answer_started(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tunelog.api")
    status, err = refusal(call(Route(RuntimeError("broken")), path=b"/v1/x"))
    assert (status, err) == (500, {"code": "internal", "message": "internal error",
                                   "hint": "see the daemon log (tunectl daemon status shows where it is)"})
    [record] = caplog.records
    assert (record.levelname, record.getMessage()) == ("ERROR", "unhandled error on GET '/v1/x'")
    assert record.exc_info is not None and str(record.exc_info[1]) == "broken"

    caplog.clear()
    sent = call(Route(RuntimeError("late"), after_start=True))
    assert [m["type"] for m in sent] == ["http.response.start"]  # no second start on a started answer
    assert [r.levelname for r in caplog.records] == ["ERROR"]
