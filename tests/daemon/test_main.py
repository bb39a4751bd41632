"""Daemon start-up and shutdown (`run_daemon`) in this process: the real composition root serving
the API on its Unix socket, with a test extension (as the web UI is one) that talks to it over the
socket and then stops it by SIGTERM or over the API. The daemon tests do the same with a daemon
subprocess, which mutation testing cannot credit."""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import tunelog.plugins
from tests.daemon.daemon_proc import FIXTURES
from tests.daemon.test_peer import (
    NOBODY,
    child_said,
    connect_as,
    forked,  # noqa: F401 - the fixture that reaps forked children
    needs_root,
    shared_folder,
)
from tunelog.daemon.jobs.runner import detect_slots
from tunelog.daemon.lock import InstanceLock
from tunelog.daemon.main import configure_logging, run_daemon
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services
from tunelog.events import jobs as J
from tunelog.events.errors import ConflictError
from tunelog.events.streams import DAEMON_STREAM
from tunelog.events.system import DaemonStarted, DaemonStopped
from tunelog.store.sqlite import SqliteStore

Probe = Callable[[httpx.AsyncClient, Services], Any]


@pytest.fixture
def daemon_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The daemon's settings from the environment; the process's logging and umask put back after."""
    monkeypatch.setenv("TUNELOG_PLUGIN_DIRS", f"{os.pathsep}{FIXTURES}{os.pathsep}")  # empty entries are skipped
    monkeypatch.setenv("TUNELOG_NO_BUILTINS", "1")
    monkeypatch.setenv("TUNELOG_SLOTS", "cpu0,,gpu0")
    monkeypatch.setenv("TUNELOG_GRACE_S", "2.5")
    monkeypatch.setenv("TUNELOG_WARM_WORKERS", "off")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # As in a fresh daemon process: uvicorn's loggers untouched (a test that ran uvicorn with its own
    # logging config stops them at "uvicorn"), and this test's own httpx client not logging requests.
    others = {name: logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx")}
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for name, lg in others.items()}
    for name, lg in others.items():
        lg.handlers[:], lg.level, lg.propagate, lg.disabled = [], logging.WARNING if name == "httpx" else 0, True, False
    umask = os.umask(0o022)
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
        for name, lg in others.items():
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = saved[name]
        os.umask(umask)


def serve(paths: Paths, probe: Probe, *, default_logging: bool = False) -> dict[str, Any]:
    """Run the daemon until `probe` (called once it serves, with a client on its socket) has it stop;
    logging to its file only, or as `run_daemon` does by default."""
    seen: dict[str, Any] = {}

    async def extension(services: Services, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        transport = httpx.AsyncHTTPTransport(uds=str(paths.socket))
        async with httpx.AsyncClient(transport=transport, base_url="http://tunelog", timeout=30) as client:
            seen.update(await probe(client, services))
            await anyio.sleep_forever()  # connections the probe left open stay open through the stop

    if default_logging:
        run_daemon(paths, extensions=[extension])
    else:
        run_daemon(paths, to_stderr=False, extensions=[extension])
    return seen


def daemon_events(paths: Paths) -> list[Any]:
    store = SqliteStore(paths.db)
    try:
        return [e.event for e in store.read(stream=DAEMON_STREAM)]
    finally:
        store.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_daemon_serves_its_settings_until_a_signal_and_records_its_start_and_stop(
        tmp_path: Path, daemon_env: None, signum: signal.Signals) -> None:
    paths = Paths.from_env(tmp_path / "home")

    async def probe(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
        status = (await client.get("/v1/status")).json()
        plugins = (await client.get("/v1/plugins")).json()
        seen = {"status": status, "plugins": plugins, "grace_s": services.jobs.grace_s, "warm": services.jobs.warm,
                "lock_says": paths.lock.read_text(),
                "socket_mode": stat.S_IMODE(paths.socket.stat().st_mode),
                "lock": InstanceLock(paths.lock, socket=paths.socket)}
        with pytest.raises(ConflictError):
            seen["lock"].acquire()  # held while it serves
        os.kill(os.getpid(), signum)
        return seen

    seen = serve(paths, probe)
    status = seen["status"]
    assert status["version"] and status["pid"] == os.getpid() and status["data_dir"] == str(paths.home)
    assert status["slots"] == {"cpu0": None, "gpu0": None} and status["backend"] == {"kind": "local"}
    assert [p["name"] for p in seen["plugins"]["plugins"]] == ["testops"]  # the fixtures, no built-ins
    assert seen["grace_s"] == 2.5 and seen["warm"] is None and seen["socket_mode"] == 0o600
    assert seen["lock_says"] == f"pid {os.getpid()}, socket {paths.socket}\n"  # named to a second daemon

    started, stopped = daemon_events(paths)
    assert started == DaemonStarted(pid=os.getpid(), version=status["version"], data_dir=str(paths.home),
                                    socket=str(paths.socket))
    assert stopped == DaemonStopped(pid=os.getpid(), reason=signum.name)
    assert not paths.socket.exists()
    seen["lock"].acquire()  # released
    seen["lock"].release()
    log = [line.split(" ", 2)[2] for line in paths.log_file.read_text().splitlines()]
    # uvicorn logs through the daemon's log, requests are not logged, and the server is shut down
    # (not cancelled) before the daemon says it stopped
    served = f"INFO tunelog.daemon: tunelog {status['version']} serving on {paths.socket} (data in {paths.home})"
    assert log[0] == served and log[1] == f"INFO uvicorn.error: Started server process [{os.getpid()}]"
    assert not [line for line in log if "uvicorn.access" in line]
    assert log[-4:-2] == [f"INFO tunelog.daemon: stopping: {signum.name}", "INFO uvicorn.error: Shutting down"]
    assert log[-1] == "INFO tunelog.daemon: stopped"
    assert stat.S_IMODE(paths.log_file.stat().st_mode) == 0o600  # under the daemon's umask, not 022


def test_a_stop_over_the_api_interrupts_running_jobs_before_the_stop_is_recorded(tmp_path: Path,
                                                                                 daemon_env: None) -> None:
    paths = Paths.from_env(tmp_path / "home")

    async def probe(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
        job = (await client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep",
                                                   "params": {"seconds": 120}})).json()["job"]
        with anyio.fail_after(60):
            while services.tables.jobs.get(job["job_id"]).state != "running":  # type: ignore[union-attr]
                await anyio.sleep(0.05)
        follower = await client.send(client.build_request("GET", "/v1/events", params={"follow": 1}), stream=True)
        chunks = follower.aiter_raw()  # kept (a dropped iterator closes the stream) and left open through the stop
        assert await chunks.__anext__() == b": following\n\n"
        stop = await client.post("/v1/daemon/stop", json={})
        with anyio.fail_after(30):  # the follow stream ends by itself once the daemon stops
            rest = b"".join([chunk async for chunk in chunks])
        return {"job_id": job["job_id"], "stop": stop.status_code, "rest": rest}

    seen = serve(paths, probe)
    assert seen["stop"] == 202
    store = SqliteStore(paths.db)
    try:
        interrupted = store.read(stream=f"job-{seen['job_id']}")[-1]
        stopped = store.read(stream=DAEMON_STREAM)[-1]
    finally:
        store.close()
    assert interrupted.event == J.JobInterrupted(job_id=seen["job_id"], reason="daemon stopped")
    assert stopped.event == DaemonStopped(pid=os.getpid(), reason="stop requested over the API")
    assert interrupted.position < stopped.position  # workers stopped first, then the stop recorded
    assert b"event: job-started" in seen["rest"]  # it sent the log (from position 1) before it ended
    log = paths.log_file.read_text()  # the follower ended by itself: nothing was cut, nothing logged an error
    assert "ERROR" not in log and "Cancel" not in log, log


def test_a_second_daemon_on_a_data_dir_is_refused_before_it_records_anything(tmp_path: Path,
                                                                             daemon_env: None) -> None:
    paths = Paths.from_env(tmp_path / "home")
    paths.ensure()
    held = InstanceLock(paths.lock, socket=paths.socket)
    held.acquire()
    try:
        with pytest.raises(ConflictError, match="already running"):
            run_daemon(paths, to_stderr=False)
    finally:
        held.release()
    assert not paths.db.exists() and not paths.socket.exists()


def test_logging_goes_to_the_log_file_and_to_stderr_only_in_the_foreground(tmp_path: Path, daemon_env: None) -> None:
    paths = Paths.from_env(tmp_path / "home")
    paths.ensure()
    root = logging.getLogger()
    for to_stderr in (False, True):
        configure_logging(paths, to_stderr=to_stderr)
        kinds = [(type(h), getattr(h, "stream", None)) for h in root.handlers]
        assert kinds[0][0] is logging.FileHandler and root.level == logging.INFO
        assert kinds[1:] == ([(logging.StreamHandler, sys.stderr)] if to_stderr else [])
        logging.getLogger("tunelog.daemon").info("hello %s", to_stderr)
    lines = paths.log_file.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["INFO tunelog.daemon: hello False",
                                                         "INFO tunelog.daemon: hello True"]


def test_without_settings_the_daemon_uses_its_defaults(tmp_path: Path, daemon_env: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TUNELOG_PLUGIN_DIRS", "TUNELOG_NO_BUILTINS", "TUNELOG_SLOTS", "TUNELOG_GRACE_S",
                 "TUNELOG_WARM_WORKERS"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("TUNELOG_WARM_MODULES", "")  # the warm host imports nothing up front (a fast start)
    paths = Paths.from_env(tmp_path / "home")

    async def probe(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
        status = (await client.get("/v1/status")).json()
        services.request_stop("test done")
        return {"handlers": [getattr(h, "stream", h.__class__) for h in logging.getLogger().handlers][1:],
                "slots": list(status["slots"]), "grace_s": services.jobs.grace_s, "warm": services.jobs.warm,
                "roots": [root for root, _ in services.plugins.roots],
                "plugins": {p.name for p in services.tables.plugins.all()}}

    seen = serve(paths, probe, default_logging=True)
    assert seen["handlers"] == [sys.stderr]  # in the foreground by default: the log on stderr too
    assert seen["slots"] == detect_slots() and seen["grace_s"] == 10.0
    assert seen["warm"] is not None  # warm workers are on unless turned off
    assert seen["roots"] == [Path(tunelog.plugins.__file__).parent, paths.user_plugins]
    assert {"lora_trainer", "evaluate"} <= seen["plugins"]  # the built-in plugins
    assert daemon_events(paths)[-1] == DaemonStopped(pid=os.getpid(), reason="test done")


@needs_root
def test_the_daemon_closes_a_connection_from_another_user_even_on_an_open_socket(
        tmp_path: Path, daemon_env: None, forked: list[int]) -> None:  # noqa: F811 - the fixture
    with shared_folder() as shared:
        paths = Paths(home=tmp_path / "home", runtime=shared / "run")

        async def probe(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
            paths.runtime.chmod(0o711)  # a socket other users can reach (a copy of its path, a loose mode)
            paths.socket.chmod(0o666)
            said = await child_said(connect_as(NOBODY, paths.socket, forked))
            status = (await client.get("/v1/status")).status_code
            services.request_stop("test done")
            return {"said": said, "status": status}

        seen = serve(paths, probe)
    assert seen == {"said": "closed", "status": 200}  # the other user closed unanswered, this one served
    assert f"WARNING tunelog.peer: refused a connection from uid {NOBODY}" in paths.log_file.read_text()
