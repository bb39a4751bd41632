"""A real daemon in a subprocess on a temp TUNELOG_HOME, and an httpx client on its Unix socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tunelog.daemon.paths import Paths

FIXTURES = Path(__file__).resolve().parents[1] / "plugins_fixtures"


class Daemon:
    """One daemon process; `start()` waits until it answers."""

    def __init__(self, home: Path, *, builtins: bool = False, grace_s: float = 1.0, env: dict[str, str] | None = None):
        self.home = home
        self.paths = Paths.from_env(home)
        self.env = {**os.environ, "TUNELOG_HOME": str(home), "TUNELOG_PLUGIN_DIRS": str(FIXTURES),
                    "TUNELOG_GRACE_S": str(grace_s), **(env or {})}
        if not builtins:
            self.env["TUNELOG_NO_BUILTINS"] = "1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0) -> Daemon:
        self.proc = subprocess.Popen([sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if not self.listening():  # httpx leaks the socket of a refused UDS connect
                time.sleep(0.05)
                continue
            try:
                if self.get("/v1/status").status_code == 200 and self.plugins_ready():
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError("daemon did not answer in time")

    def listening(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.paths.socket))
            except OSError:
                return False
            return True

    def plugins_ready(self) -> bool:
        rows = self.get("/v1/plugins").json()["plugins"]
        return any(r["name"] == "testops" for r in rows)

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.paths.socket)), base_url="http://tunelog",
                            timeout=timeout)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        with self.client() as c:
            return c.post(path, **kw)

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        if self.proc.stderr:
            self.proc.stderr.close()
        return rc

    def submit(self, op: str, *, params: dict[str, Any] | None = None, command_id: str | None = None) -> dict[str, Any]:
        r = self.post("/v1/jobs", json={"plugin": "testops", "operation": op, "params": params or {},
                                                 "command_id": command_id})
        assert r.status_code == 201, r.text
        return r.json()["job"]  # type: ignore[no-any-return]

    def wait_job(self, job_id: str, states: tuple[str, ...], *, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while time.monotonic() < deadline:
                job = c.get(f"/v1/jobs/{job_id}").json()["job"]
                if job["state"] in states:
                    return job  # type: ignore[no-any-return]
                time.sleep(0.05)
        raise TimeoutError(f"job {job_id} not in {states}: {job['state']}")


@contextmanager
def running(home: Path, **kw: Any) -> Iterator[Daemon]:
    d = Daemon(home, **kw).start()
    try:
        yield d
    finally:
        d.stop(signal.SIGKILL if d.proc and d.proc.poll() is None and kw.get("kill") else signal.SIGTERM)
