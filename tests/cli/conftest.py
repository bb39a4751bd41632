"""Fixtures of the CLI tests: a real daemon in a subprocess on a temp TUNELOG_HOME, and `tunectl`
run as a real process talking to it over the real socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tunelog.frontends.cli.client import Client, ConnectionLost, DaemonDown
from tunelog.frontends.cli.status import socket_path

FIXTURES = Path(__file__).parents[1] / "plugins_fixtures"
TESTOPS = FIXTURES / "testops"
MODULE = [sys.executable, "-m", "tunelog.frontends.cli.main"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon and its clients: one data dir, the test plugins, short grace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNELOG_")}
    env.update(TUNELOG_HOME=str(home), TUNELOG_GRACE_S="2", TUNELOG_SLOTS="cpu0", PYTHONDONTWRITEBYTECODE="1")
    if FIXTURES.is_dir():
        env["TUNELOG_PLUGIN_DIRS"] = str(FIXTURES)
    env.update(extra)
    return env


def run_tunectl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m tunelog.frontends.cli.main ARGS` and capture its output."""
    return subprocess.run([*MODULE, *args], env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Daemon:
    """A daemon process serving `home`."""

    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> str:
        return _socket_for(self.env)

    def tunectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_tunectl(self.env, *args, timeout=timeout)

    def json(self, *args: str) -> Any:
        """Run a `--json` command that must succeed and decode its output."""
        out = self.tunectl(*args, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def log(self) -> str:
        return (self.home / "daemon.out").read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until GET /v1/status answers; fail with the daemon's output if it exits first."""
        client = Client(self.socket, timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                client.get("/v1/status")
                return
            except (DaemonDown, ConnectionLost):
                time.sleep(0.1)
        pytest.fail(f"the daemon did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _socket_for(env: dict[str, str]) -> str:
    saved = os.environ.get("TUNELOG_HOME")
    os.environ["TUNELOG_HOME"] = env["TUNELOG_HOME"]
    try:
        return socket_path()
    finally:
        if saved is None:
            del os.environ["TUNELOG_HOME"]
        else:
            os.environ["TUNELOG_HOME"] = saved


def start_daemon(home: Path, **extra_env: str) -> Daemon:
    """`python -m tunelog.frontends.cli.main daemon run` on `home`, ready to answer."""
    home.mkdir(parents=True, exist_ok=True)
    env = cli_env(home, **extra_env)
    with open(home / "daemon.out", "ab") as out:
        proc = subprocess.Popen([*MODULE, "daemon", "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    daemon = Daemon(home=home, env=env, proc=proc)
    daemon.wait_ready()
    return daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon shared by a test module (read-mostly tests)."""
    d = start_daemon(tmp_path_factory.mktemp("home"))
    yield d
    d.stop()


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon for one test (tests that stop or restart it)."""
    d = start_daemon(tmp_path / "home")
    yield d
    d.stop()


@pytest.fixture
def down_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose data dir has no daemon."""
    return cli_env(tmp_path / "nobody-home")


needs_testops = pytest.mark.skipif(not (TESTOPS / "manifest.yaml").is_file(),
                                   reason="the testops fixture plugin (tests/plugins_fixtures/testops) is not there")
