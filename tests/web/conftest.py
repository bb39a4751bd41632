"""Fixtures of the web UI tests: a real daemon (subprocess) serving the UI on a free port, headless
Debian Chromium driven by playwright, a screenshot folder, and a page that records every request.

Screenshot paths and measured latencies are listed at the end of the pytest run (CI keeps the log).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.daemon.daemon_proc import FIXTURES, Daemon
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services

WEB_FIXTURES = Path(__file__).parent / "plugins_fixtures"
CHROMIUM = os.environ.get("TUNELOG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
REPORT: list[str] = []
"""Lines for the end-of-run summary: screenshot paths, latencies."""


def report(line: str) -> None:
    """Print now (seen with -s) and again in the terminal summary (always seen)."""
    print(line)
    REPORT.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("web UI: screenshots and measurements")
        for line in REPORT:
            terminalreporter.write_line(line)


@dataclass
class UiDaemon:
    """A daemon with its web UI: `base` is http://127.0.0.1:PORT, `token` the UI token."""

    daemon: Daemon
    base: str
    token: str

    @property
    def port(self) -> int:
        return int(urlparse(self.base).port or 0)

    def submit(self, graph: dict[str, Any], **kw: Any) -> str:
        r = self.daemon.post("/v1/runs", json={"graph": graph, **kw})
        assert r.status_code == 201, r.text
        return str(r.json()["run"]["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        return self.daemon.get(f"/v1/runs/{run_id}").json()["run"]  # type: ignore[no-any-return]

    def wait_run(self, run_id: str, *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.run(run_id)
            if row["state"] != "running":
                return row
            time.sleep(0.2)
        raise TimeoutError(f"run {run_id} still running")

    def wait_success(self, run_id: str, *, timeout: float = 120) -> dict[str, Any]:
        """Wait for the run; if it did not succeed, fail with its whole row and the daemon log's tail."""
        row = self.wait_run(run_id, timeout=timeout)
        if row["state"] != "succeeded":
            log = self.daemon.home / "daemon.log"
            tail = log.read_text(errors="replace")[-6000:] if log.exists() else "(no daemon.log)"
            pytest.fail(f"run {run_id} ended {row['state']}:\n{json.dumps(row, indent=1)[:6000]}\n"
                        f"daemon.log:\n{tail}")
        return row


def wait_ui(d: Daemon, *, timeout: float = 30) -> UiDaemon:
    """Wait for the daemon to write ui.json (the UI is listening then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = json.loads((d.home / "ui.json").read_text())
            token = (d.home / "ui-token").read_text().strip()
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        return UiDaemon(daemon=d, base=f"http://127.0.0.1:{info['port']}", token=token)
    raise TimeoutError("the daemon wrote no ui.json")


def start_ui_daemon(home: Path, **kw: Any) -> UiDaemon:
    env = {"TUNELOG_UI_PORT": "0", "TUNELOG_PLUGIN_DIRS": os.pathsep.join([str(FIXTURES), str(WEB_FIXTURES)]),
           "TUNELOG_SLOTS": "cpu0,cpu1", **kw.pop("env", {})}
    return wait_ui(Daemon(home, env=env, **kw).start())


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """The daemon's services in this process (no plugins, one CPU slot) on a SQLite log in tmp_path,
    for rendering pages with reactpy's Layout without a browser."""
    s = build_services(Paths.from_env(tmp_path), version="test", plugin_dirs=[], builtin_dir=Path("/nonexistent"),
                       slots=["cpu0"])
    yield s
    s.store.close()


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDaemon]:
    """One daemon (test plugins only) for a module's tests."""
    u = start_ui_daemon(tmp_path_factory.mktemp("ui-home"))
    yield u
    u.daemon.stop()


def unavailable(reason: str) -> None:
    """Skip on a developer machine without the browser or bundle; in CI (CI=true) that is a failure,
    so missing set-up can never pass for coverage."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium (playwright's own browser download is never used). Module-scoped:
    playwright's sync API keeps an event loop running, which async tests elsewhere cannot share."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set TUNELOG_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $TUNELOG_SCREENSHOTS, else a temp folder."""
    folder = Path(os.environ.get("TUNELOG_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browsing:
    """Pages of one browser context (one cookie jar), every request and page error recorded."""

    def __init__(self, chromium: Any, ui: UiDaemon, shots: Path):
        self.ui, self.shots = ui, shots
        self.context = chromium.new_context(viewport={"width": 1360, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        return page

    def login(self) -> Any:
        """A page that traded the token for the cookie and shows the runs page."""
        page = self.new_page()
        page.goto(f"{self.ui.base}/?token={self.ui.token}")
        page.wait_for_selector("#log-head")
        assert "token=" not in page.url
        return page

    def open(self, page: Any, path: str, selector: str = "#log-head") -> Any:
        page.goto(self.ui.base + path)
        page.wait_for_selector(selector)
        return page

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        report(f"screenshot {name}: {path}")
        return path

    def foreign(self) -> list[str]:
        """Requests to anything but this daemon's UI (other hosts, ports or schemes)."""
        own = urlparse(self.ui.base)
        return [u for u in self.requests if (urlparse(u).scheme not in ("data", "blob") and (
            urlparse(u).hostname, urlparse(u).port) != (own.hostname, own.port))]


@pytest.fixture
def browsing(chromium: Any, ui_daemon: UiDaemon, screenshots: Path) -> Iterator[Browsing]:
    """A fresh browser context on the module's daemon; afterwards no foreign request, no page error."""
    b = Browsing(chromium, ui_daemon, screenshots)
    yield b
    b.context.close()
    assert b.foreign() == [], f"requests to other hosts: {b.foreign()}"
    assert b.errors == [], f"errors in the page: {b.errors}"
