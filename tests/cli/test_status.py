"""`tunectl status`, `daemon status|run|start|stop`, the daemon-down message, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import MODULE, Daemon, run_tunectl
from tunelog.daemon.paths import Paths
from tunelog.events import errors
from tunelog.frontends.cli import exits, status

DOWN = "Error: the tunelog daemon is not running (no socket at {}). Start it with: tunectl daemon start\n"


def test_status_text(daemon: Daemon) -> None:
    out = daemon.tunectl("status")
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    assert first.startswith("tunelog ") and f"running, pid {daemon.proc.pid}, up " in first
    assert f"  socket    {daemon.socket}" in rest
    assert f"  data dir  {daemon.home}" in rest
    assert any(line.startswith("  plugins   ") and "loaded" in line for line in rest)
    assert "  slots     cpu0: free" in rest or any(line.startswith("  slots     cpu0: job ") for line in rest)


def test_status_json(daemon: Daemon) -> None:
    st = daemon.json("status")
    assert st["pid"] == daemon.proc.pid and st["socket"] == daemon.socket and st["head"] >= 1
    assert set(st) >= {"version", "uptime_s", "data_dir", "log_file", "jobs", "plugins", "slots"}


def test_daemon_status_when_up(daemon: Daemon) -> None:
    st = daemon.json("daemon", "status")
    assert st["running"] is True and st["pid"] == daemon.proc.pid
    assert daemon.tunectl("daemon", "status").stdout.startswith("tunelog ")


def test_status_path_stays_light(daemon: Daemon) -> None:
    """`tunectl status` must not import click, msgspec, rich or httpx (each import costs milliseconds: httpx ~72)."""
    code = ("import sys\nfrom tunelog.frontends.cli.main import main\nsys.argv = ['tunectl', 'status', '--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('click', 'msgspec', 'rich', 'httpx') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], env=daemon.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "[]"


def test_daemon_down_is_one_line_and_exit_69(down_env: dict[str, str]) -> None:
    sock = Paths.from_env(down_env["TUNELOG_HOME"]).socket
    for args in (["status"], ["status", "--json"], ["jobs", "list"], ["plugins", "list"], ["events"],
                 ["logs", "abc"], ["jobs", "submit", "testops.sleep"]):
        out = run_tunectl(down_env, *args)
        assert (out.returncode, out.stderr, out.stdout) == (exits.DAEMON_DOWN, DOWN.format(sock), ""), args


def test_daemon_status_when_down(down_env: dict[str, str]) -> None:
    out = run_tunectl(down_env, "daemon", "status")
    assert out.returncode == 69 and out.stdout.startswith("tunelog daemon: not running")
    js = json.loads(run_tunectl(down_env, "daemon", "status", "--json").stdout)
    assert js["running"] is False and js["socket"] == str(Paths.from_env(down_env["TUNELOG_HOME"]).socket)


def test_stale_socket_is_daemon_down(down_env: dict[str, str]) -> None:
    """A socket file nobody listens on (a crashed daemon) reads as `not running`, not a traceback."""
    import socket

    paths = Paths.from_env(down_env["TUNELOG_HOME"])
    paths.ensure()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(paths.socket))
    s.close()
    out = run_tunectl(down_env, "status")
    assert out.returncode == 69 and out.stderr.startswith("Error: the tunelog daemon is not running (")
    assert "Start it with: tunectl daemon start" in out.stderr and len(out.stderr.splitlines()) == 1


def test_second_daemon_run_exits_3_naming_the_running_one(daemon: Daemon) -> None:
    out = daemon.tunectl("daemon", "run", timeout=60)
    assert out.returncode == 3
    assert out.stderr.startswith(f"Error: a tunelog daemon is already running for {daemon.home} "
                                 f"(pid {daemon.proc.pid}, socket {daemon.socket})")
    assert "Hint: " in out.stderr


def test_daemon_start_and_stop(tmp_path: Path, down_env: dict[str, str]) -> None:
    started = run_tunectl(down_env, "daemon", "start", timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        pid = int(started.stdout.split("pid ")[1].split(",")[0])
        assert f"socket {Paths.from_env(down_env['TUNELOG_HOME']).socket}" in started.stdout
        again = run_tunectl(down_env, "daemon", "start")
        assert again.returncode == 0 and f"already running: pid {pid}" in again.stdout
        assert run_tunectl(down_env, "status").returncode == 0
    finally:
        stopped = run_tunectl(down_env, "daemon", "stop", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == "tunelog daemon stopped"
    assert run_tunectl(down_env, "status").returncode == 69
    assert _exits_soon(pid)
    assert run_tunectl(down_env, "daemon", "stop").stdout == "tunelog daemon is not running\n"


def _exits_soon(pid: int, timeout: float = 10) -> bool:
    """True once `pid` is gone or a zombie (its parent exited; the container's init may not reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X"):
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def test_socket_path_mirrors_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The light path's socket lookup equals `Paths.from_env().socket` in every set-up."""
    long = tmp_path / ("x" * 120)
    cases = [{"TUNELOG_HOME": str(tmp_path / "h")}, {"TUNELOG_HOME": str(tmp_path) + "//./h/"},
             {"TUNELOG_HOME": str(long)}, {"XDG_RUNTIME_DIR": str(tmp_path / "run") + "/"},
             {"XDG_RUNTIME_DIR": str(long)}, {}]
    for case in cases:
        for var in ("TUNELOG_HOME", "XDG_RUNTIME_DIR"):
            monkeypatch.delenv(var, raising=False)
        for k, v in case.items():
            monkeypatch.setenv(k, v)
        assert status.socket_path() == str(Paths.from_env().socket), case


def test_exit_codes_mirror_the_error_tree() -> None:
    for cls in (errors.ValidationError, errors.ConflictError, errors.NotFoundError, errors.PluginError,
                errors.JobError):
        assert exits.exit_code({"code": cls.code}) == cls.exit_code
    assert exits.exit_code({"code": "internal"}) == exits.FAILURE


def test_help_documents_exit_codes() -> None:
    out = subprocess.run([*MODULE, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for code in ("0", "1", "2", "3", "4", "5", "6", "69", "130"):
        assert re.search(rf"\n +{code} +\w", out.stdout), code
    for command in ("daemon", "events", "jobs", "logs", "plugins", "status"):
        assert f"\n  {command} " in out.stdout
