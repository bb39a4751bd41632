"""LocalGuard, the UI's ASGI middleware, in process: Host, Origin and token checks, the token
login redirect, security headers; the token file and the port setting."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from tunelog.events.errors import ValidationError
from tunelog.frontends.web.security import COOKIE, LocalGuard, load_or_create_token
from tunelog.frontends.web.server import DEFAULT_PORT, bind_local, ui_port_from_env

TOKEN = "t" * 43
PORT = 8477
ORIGIN = f"http://127.0.0.1:{PORT}"


async def hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(await ws.receive_text())
    await ws.close()


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"]), Route("/runs", hello),
                            WebSocketRoute("/ws", echo)])
    return TestClient(LocalGuard(app, token=TOKEN, port=PORT), base_url=f"http://127.0.0.1:{PORT}",
                      follow_redirects=False)


def test_requests_without_the_token_are_refused(client: TestClient) -> None:
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    client.cookies.set(COOKIE, "wrong")
    assert client.get("/runs").status_code == 401


def test_the_token_as_bearer_or_cookie_is_accepted_with_security_headers(client: TestClient) -> None:
    r = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.text == "hello"
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert r.headers["x-frame-options"] == "DENY"
    client.cookies.set(COOKIE, TOKEN)
    assert client.get("/runs").status_code == 200


def test_the_token_in_the_url_becomes_a_strict_httponly_cookie_and_leaves_the_url(client: TestClient) -> None:
    r = client.get(f"/runs?x=1&token={TOKEN}")
    assert r.status_code == 303 and r.headers["location"] == "/runs?x=1"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/runs").status_code == 200  # the client kept the cookie
    assert client.get("/?token=wrong").status_code == 401


@pytest.mark.parametrize("host", ["evil.example:8477", "127.0.0.1:9999", "127.0.0.1", "localhost.evil:8477", ""])
def test_a_foreign_host_header_is_refused_even_with_the_token(client: TestClient, host: str) -> None:
    r = client.get("/", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 403, host


def test_localhost_by_name_is_accepted(client: TestClient) -> None:
    r = client.get("/", headers={"Host": f"localhost:{PORT}", "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_a_cross_origin_post_is_refused_a_same_origin_one_passes(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/", headers={**auth, "Origin": "http://evil.example"}).status_code == 403
    assert client.post("/", headers={**auth, "Origin": f"http://localhost:{PORT}"}).status_code == 200
    assert client.post("/", headers={**auth, "Origin": ORIGIN}).status_code == 200


def test_a_websocket_needs_our_origin_and_the_token(client: TestClient) -> None:
    host = {"Host": f"127.0.0.1:{PORT}"}  # the test client's websockets default to `testserver`
    client.cookies.set(COOKIE, TOKEN)
    with client.websocket_connect("/ws", headers={**host, "Origin": ORIGIN}) as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": f"http://127.0.0.1:{PORT + 1}"}, {}):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/ws", headers={**host, **headers}):
                pass
        assert refused.value.code == 1008 and "origin" in refused.value.reason, headers
    client.cookies.clear()
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/ws", headers={**host, "Origin": ORIGIN}):
            pass
    assert "token" in refused.value.reason


def test_the_token_file_is_owner_only_and_stable(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    path = tmp_path / "ui-token"
    assert len(token) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path) == token
    os.chmod(path, 0o644)
    assert load_or_create_token(tmp_path) == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    fresh = load_or_create_token(tmp_path)
    assert fresh != "short" and len(fresh) >= 40


def test_the_port_setting() -> None:
    assert ui_port_from_env({}) == DEFAULT_PORT
    assert ui_port_from_env({"TUNELOG_UI_PORT": "0"}) == 0
    assert ui_port_from_env({"TUNELOG_UI_PORT": "9123"}) == 9123
    assert ui_port_from_env({"TUNELOG_UI_PORT": "off"}) is None
    with pytest.raises(ValidationError) as bad:
        ui_port_from_env({"TUNELOG_UI_PORT": "http"})
    assert bad.value.problems[0]["where"] == "TUNELOG_UI_PORT"


def test_a_taken_port_falls_back_to_a_free_one_only_when_asked() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with bind_local(port, fallback=True) as other:
            assert other.getsockname()[0] == "127.0.0.1" and other.getsockname()[1] not in (port, 0)
        with pytest.raises(OSError):
            bind_local(port, fallback=False)
