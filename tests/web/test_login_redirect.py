"""The token login's redirect stays on this origin, whatever the path looks like; a path with
control or non-latin-1 characters gets a 4xx from the real UI server, never a 500 or a closed
connection."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from tests.web.conftest import UiDaemon
from tunelog.frontends.web.security import LocalGuard

TOKEN = "t" * 43
PORT = 8477


async def _never(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a login must not reach the app")


def login(raw_path: bytes, path: str, query: bytes = b"token=" + TOKEN.encode()) -> tuple[int, dict[bytes, bytes]]:
    """One token login through LocalGuard, with the path exactly as a server would hand it over."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": raw_path, "query_string": query,
             "headers": [(b"host", f"127.0.0.1:{PORT}".encode())]}
    anyio.run(LocalGuard(_never, token=TOKEN, port=PORT), scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


@pytest.mark.parametrize(("raw_path", "path", "location"), [
    (b"//evil.example/", "//evil.example/", b"/evil.example/"),
    (b"///evil.example", "///evil.example", b"/evil.example"),
    (b"/%2F%2Fevil.example/", "///evil.example/", b"/evil.example/"),
    (b"/\\evil.example", "/\\evil.example", b"/%5Cevil.example"),
    (b"/runs/%E6%A8%A1", "/runs/\u6a21", b"/runs/%E6%A8%A1"),
    (b"/runs/r1", "/runs/r1", b"/runs/r1"),
])
def test_the_login_redirect_goes_only_to_a_path_on_this_origin(raw_path: bytes, path: str, location: bytes) -> None:
    status, headers = login(raw_path, path)
    assert status == 303 and headers[b"location"] == location
    assert headers[b"location"].startswith(b"/") and not headers[b"location"].startswith((b"//", b"/\\"))


def test_the_query_stays_without_the_token() -> None:
    status, headers = login(b"//evil.example/", "//evil.example/", b"x=1&token=" + TOKEN.encode() + b"&y=%2F%2Fz")
    assert status == 303 and headers[b"location"] == b"/evil.example/?x=1&y=%2F%2Fz"


@pytest.mark.parametrize(("raw_path", "path"), [(b"/%09/evil.example", "/\t/evil.example"),
                                               (b"/%0d%0aSet-Cookie:x", "/\r\nSet-Cookie:x"), (b"/a%00", "/a\x00")])
def test_a_path_with_control_characters_is_refused_before_any_login(raw_path: bytes, path: str) -> None:
    status, headers = login(raw_path, path)
    assert status == 400 and b"location" not in headers and b"set-cookie" not in headers


def raw(ui: UiDaemon, target: bytes, query: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", ui.port), timeout=10) as s:
        s.sendall(b"GET " + target + query + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % ui.port)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize(("target", "status"), [
    (b"/runs/%E6%A8%A1", b"303"), (b"//evil.example/", b"303"), (b"/%2F%2Fevil.example/", b"303"),
    (b"/runs/%0d%0aX", b"400"), (b"/runs/%00", b"400"), (b"/runs/%0a", b"400")])
def test_a_login_on_any_path_of_the_real_ui_gets_an_answer_not_a_500(ui_daemon: UiDaemon, target: bytes,
                                                                     status: bytes) -> None:
    answer = raw(ui_daemon, target, b"?token=" + ui_daemon.token.encode())
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
    if status == b"303":
        location = next(line for line in answer.split(b"\r\n") if line.lower().startswith(b"location:"))
        assert location.split(b":", 1)[1].strip().startswith(b"/") and b"//" not in location
    log = ui_daemon.daemon.paths.log_file.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log
