"""`Guard`, the API's outermost layer, under uvicorn on a real Unix socket: an unexpected error is
answered with the 500 envelope and logged exactly once (uvicorn would log it a second time)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api import errors
from tunelog.daemon.api.guard import Guard


async def boom(request: Request) -> Response:
    raise RuntimeError("a bug")


def test_an_unexpected_error_is_a_500_envelope_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = Starlette(routes=[Route("/boom", boom)], exception_handlers=errors.HANDLERS, middleware=[Middleware(Guard)])
    sock = str(tmp_path / "api.sock")
    server = uvicorn.Server(uvicorn.Config(app, uds=sock, lifespan="off", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://api") as c:
            r = c.get("/boom")
    finally:
        server.should_exit = True
        thread.join(10)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    failures = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(failures) == 1, [rec.getMessage() for rec in failures]
    assert failures[0].exc_info is not None and "GET '/boom'" in failures[0].getMessage()
