"""The UI server inside a real daemon (no browser): `tunectl ui` gives a working address, and
requests without the token, with a foreign Host, or a websocket from a foreign Origin are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.web.conftest import UiDaemon, start_ui_daemon
from tunelog.frontends.web.security import COOKIE

TUNECTL = [sys.executable, "-m", "tunelog.frontends.cli.main"]


def tunectl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUNELOG_HOME": str(home)}
    return subprocess.run([*TUNECTL, *args], env=env, capture_output=True, text=True, timeout=60)


def test_tunectl_ui_prints_an_address_whose_token_becomes_a_cookie(ui_daemon: UiDaemon) -> None:
    out = tunectl(ui_daemon.daemon.home, "ui", "--print-url")
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    assert url == f"{ui_daemon.base}/?token={ui_daemon.token}"
    with httpx.Client() as c:
        login = c.get(url)
        assert login.status_code == 303 and login.headers["location"] == "/"
        page = c.get(ui_daemon.base + "/")  # the cookie jar now has the token
        assert page.status_code == 200 and "/_reactpy/assets/" in page.text
        assert "https://" not in page.text and "cdn" not in page.text.lower()
    human = tunectl(ui_daemon.daemon.home, "ui", "--no-open")
    assert human.returncode == 0 and url in human.stdout


def test_requests_without_the_token_or_with_a_foreign_host_are_refused(ui_daemon: UiDaemon) -> None:
    page = httpx.get(ui_daemon.base + "/", headers={"Authorization": f"Bearer {ui_daemon.token}"})
    script = page.text.split('src="')[1].split('"')[0]
    with httpx.Client(base_url=ui_daemon.base) as c:
        assert c.get("/").status_code == 401
        assert c.get("/runs/anything").status_code == 401
        assert c.get(script).status_code == 401
        assert c.get(script, headers={"Authorization": f"Bearer {ui_daemon.token}"}).status_code == 200
        for host in ("evil.example", f"evil.example:{ui_daemon.port}", f"127.0.0.1:{ui_daemon.port + 1}"):
            r = c.get("/", headers={"Host": host, "Authorization": f"Bearer {ui_daemon.token}"})
            assert r.status_code == 403, host
        r = c.get(f"/?token={ui_daemon.token}", headers={"Host": "rebound.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers


def stream_url(ui: UiDaemon) -> str:
    return f"ws://127.0.0.1:{ui.port}/_reactpy/stream/"


def test_a_websocket_from_a_foreign_origin_is_refused(ui_daemon: UiDaemon) -> None:
    cookie = {"Cookie": f"{COOKIE}={ui_daemon.token}"}
    for origin in ("http://evil.example", f"http://127.0.0.1:{ui_daemon.port + 1}", None):
        with pytest.raises(InvalidStatus) as refused:
            connect(stream_url(ui_daemon), origin=origin, additional_headers=cookie, open_timeout=10)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin
    with pytest.raises(InvalidStatus) as no_token:
        connect(stream_url(ui_daemon), origin=ui_daemon.base, open_timeout=10)  # type: ignore[arg-type]
    assert no_token.value.response.status_code == 403
    with connect(stream_url(ui_daemon), origin=ui_daemon.base, additional_headers=cookie, open_timeout=10) as ws:  # type: ignore[arg-type]
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "layout-update"


def test_no_ui_when_turned_off_and_tunectl_says_so(tmp_path: Path) -> None:
    from tests.daemon.daemon_proc import running

    with running(tmp_path / "home", env={"TUNELOG_UI_PORT": "off"}) as d:
        assert not (d.home / "ui.json").exists()
        out = tunectl(d.home, "ui", "--print-url")
        assert out.returncode == 1 and "serves no web UI" in out.stderr and "TUNELOG_UI_PORT=off" in out.stderr


def test_the_ui_file_goes_away_with_the_daemon(tmp_path: Path) -> None:
    ui = start_ui_daemon(tmp_path / "home")
    assert (ui.daemon.home / "ui.json").exists()
    assert ui.daemon.stop() == 0
    assert not (ui.daemon.home / "ui.json").exists()
    assert (ui.daemon.home / "ui-token").read_text().strip() == ui.token  # kept: bookmarks keep working


def test_rotate_token_revokes_the_old_token_and_its_cookies(tmp_path: Path) -> None:
    ui = start_ui_daemon(tmp_path / "home")
    try:
        with httpx.Client() as old:
            assert old.get(f"{ui.base}/?token={ui.token}").status_code == 303
            assert old.get(ui.base + "/").status_code == 200
            out = tunectl(ui.daemon.home, "ui", "--rotate-token", "--print-url")
            assert out.returncode == 0, out.stderr
            new_url = out.stdout.strip()
            new_token = new_url.split("token=", 1)[1]
            assert new_token != ui.token and (ui.daemon.home / "ui-token").read_text().strip() == new_token
            assert old.get(ui.base + "/").status_code == 401  # the old cookie
            assert old.get(f"{ui.base}/?token={ui.token}").status_code == 401  # the old address
        with httpx.Client() as new:
            assert new.get(new_url).status_code == 303
            assert new.get(ui.base + "/").status_code == 200
        assert stat_mode(ui.daemon.home / "ui-token") == 0o600
    finally:
        ui.daemon.stop()


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
