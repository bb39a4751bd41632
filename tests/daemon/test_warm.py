"""The daemon's side of the warm worker host (daemon/jobs/warm.py), without a job runner: a real
host process, workers it forks for real job folders (the testops plugin), their exit statuses,
and what a job sees when the host refuses, is gone, or never started."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import struct
import sys
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.daemon.jobs_support import Env, make_env
from tunelog.daemon.jobs.protocol import WorkerSpec
from tunelog.daemon.jobs.warm import WarmProcess, WarmUnavailable, WarmWorkers

pytestmark = pytest.mark.anyio
WORKER = ["tunelog.daemon.jobs.worker", "job.json"]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@asynccontextmanager
async def hosted(env: Env, **kw: Any) -> AsyncIterator[WarmWorkers]:
    """A started host (it imports nothing), stopped at the end of the block."""
    kw.setdefault("python", sys.executable)
    warm = WarmWorkers(log_path=env.paths.log_file, cwd=env.paths.home, modules=[], **kw)
    async with anyio.create_task_group() as tg:
        await tg.start(warm.run)
        try:
            yield warm
        finally:
            tg.cancel_scope.cancel()


def job_folder(env: Env, name: str, operation: str = "", **params: Any) -> Path:
    """A job folder with its job.json for a testops operation (none: the worker finds no job.json)."""
    folder = env.paths.jobs / name
    folder.mkdir(parents=True)
    if operation:
        spec = WorkerSpec(job_id=name, plugin="testops", operation=operation, params=params, inputs={},
                          code_dir=str(env.paths.plugin_code / env.code_hash), artifacts=str(env.paths.artifacts),
                          workdir=str(folder / "work"))
        (folder / "job.json").write_bytes(msgspec.json.encode(spec))
    return folder


async def spawn(warm: WarmWorkers, folder: Path, env: dict[str, str] | None = None) -> WarmProcess:
    with open(folder / "worker.log", "ab") as log:
        return await warm.spawn(argv=WORKER, cwd=folder, env=env if env is not None else dict(os.environ),
                                stderr=log.fileno())


async def ended(proc: WarmProcess) -> int | None:
    """Its exit status (None: unknown), its channel and pidfd closed."""
    with anyio.fail_after(30):
        await proc.aclose()
    return proc.returncode


async def test_the_host_starts_with_its_settings_and_says_what_it_imported(env: Env) -> None:
    os.environ.pop("TUNELOG_WARM_MODULES", None)
    warm = WarmWorkers(python=sys.executable, log_path=env.paths.log_file, cwd=env.paths.home,
                       env={"PATH": os.environ["PATH"], "TUNELOG_WARM_MODULES": "torch"}, modules=["json", "csv"])
    assert warm.env == {"PATH": os.environ["PATH"], "TUNELOG_WARM_MODULES": "json,csv", "PYTHONDONTWRITEBYTECODE": "1",
                        "PYTHONUNBUFFERED": "1"}
    assert WarmWorkers(python="python", log_path=env.paths.log_file, cwd=env.paths.home).env == {
        **os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}  # the daemon's own, unchanged
    async with anyio.create_task_group() as tg:
        assert not warm.available
        await tg.start(warm.run)
        assert warm.available and warm.host_pid is not None
        host = Path(f"/proc/{warm.host_pid}")
        assert (host / "cmdline").read_bytes().split(b"\0")[:4] == [sys.executable.encode(), b"-P", b"-m",
                                                                     b"tunelog.daemon.jobs.zygote"]
        assert os.getpgid(warm.host_pid) == warm.host_pid and Path(os.readlink(host / "cwd")) == env.paths.home
        assert [os.readlink(host / "fd" / str(fd)) for fd in (0, 1, 2)] == ["/dev/null", "/dev/null",
                                                                            str(env.paths.log_file)]
        assert "Umask:\t0077" in (host / "status").read_text()
        with anyio.fail_after(30):
            while warm.warm != ["json", "csv"]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert not warm.available
    assert env.paths.log_file.stat().st_mode & 0o777 == 0o600


async def test_a_forked_worker_runs_its_job_and_reports_its_exit_status(env: Env) -> None:
    async with hosted(env) as warm:
        proc = await spawn(warm, job_folder(env, "ok", "outputs", text="hi"))
        assert proc.stdout is not None and os.getpgid(proc.pid) == proc.pid
        frames = b""
        async for chunk in proc.stdout:
            frames += chunk
        assert await proc.wait() == 0 and proc.returncode == 0 and proc.lost is None
        assert b"result" in frames and frames.endswith(b"hi")  # its result, msgpack-framed
        await proc.aclose()
        failed = await spawn(warm, job_folder(env, "no-spec"))  # the worker finds no job.json
        assert await ended(failed) == 70
        killed = await spawn(warm, job_folder(env, "hang", "hang", seconds=60))
        os.killpg(killed.pid, signal.SIGKILL)
        assert await ended(killed) == -signal.SIGKILL and killed.lost is None
    assert "FileNotFoundError" in (env.paths.jobs / "no-spec" / "worker.log").read_text()


async def test_a_request_the_host_refuses_or_cannot_take_is_warm_unavailable_with_its_reason(env: Env) -> None:
    async with hosted(env) as warm:
        folder = job_folder(env, "bad")
        with pytest.raises(WarmUnavailable) as err:
            await spawn(warm, folder, env=[1])  # type: ignore[arg-type]
        assert err.value.message == ("TypeError: cannot convert dictionary update sequence element #0 to a "
                                     "sequence")
        with pytest.raises(WarmUnavailable) as err:
            await warm.spawn(argv=WORKER, cwd=folder, env={}, stderr=-1)
        assert err.value.message == "the warm worker host did not take the request: [Errno 9] Bad file descriptor"
        assert not warm._pending  # nothing left waiting for an answer that will not come
        proc = await spawn(warm, folder)  # the host serves the next one
        assert await ended(proc) == 70


async def test_without_a_host_a_job_is_told_to_start_cold(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tunelog.daemon.jobs.warm")
    warm = WarmWorkers(python=str(env.paths.home / "no-python"), log_path=env.paths.log_file, cwd=env.paths.home)
    async with anyio.create_task_group() as tg:
        await tg.start(warm.run)  # started, and ended at once
    assert not warm.available and warm.host_pid is None
    assert "warm workers: could not start the host" in caplog.text and "workers start cold" in caplog.text


async def test_a_worker_that_outlives_its_host_ends_with_an_unknown_status(env: Env) -> None:
    async with hosted(env) as warm:
        assert warm.host_pid is not None
        proc = await spawn(warm, job_folder(env, "orphan", "hang", seconds=60))
        os.kill(warm.host_pid, signal.SIGKILL)
        with anyio.fail_after(30):
            while warm.available:  # the daemon sees the host gone
                await anyio.sleep(0.01)
        assert proc.host_gone
        with pytest.raises(WarmUnavailable, match="^the warm worker host is not running$"):
            await spawn(warm, job_folder(env, "later"))
        with anyio.move_on_after(0.5) as still:  # it runs on: not taken for ended
            await proc.wait()
        assert still.cancelled_caught and proc.returncode is None and proc.lost is None
        os.killpg(proc.pid, signal.SIGKILL)
        with anyio.fail_after(30):
            assert await ended(proc) is None
        assert proc.lost == "the warm worker host was gone before the worker; its exit status is unknown"


async def test_a_status_that_does_not_come_is_given_up_after_a_while(env: Env) -> None:
    async with hosted(env) as warm:
        assert warm.host_pid is not None
        proc = await spawn(warm, job_folder(env, "stuck", "hang", seconds=60))
        os.kill(warm.host_pid, signal.SIGSTOP)  # the host cannot report the worker's end
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            with anyio.fail_after(30):
                began = anyio.current_time()
                assert await ended(proc) is None
                assert anyio.current_time() - began >= 2.0
            assert proc.lost == "the warm worker host was gone before the worker; its exit status is unknown"
        finally:
            os.kill(warm.host_pid, signal.SIGCONT)


def queued(sock: socket.socket) -> int:
    """Bytes sent on `sock` that the other end has not read yet."""
    return int(struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0])


async def test_a_worker_forked_for_a_job_that_stopped_waiting_is_killed(env: Env) -> None:
    async with hosted(env) as warm:
        assert warm.host_pid is not None and warm._sock is not None
        with anyio.fail_after(30):
            await warm._up.wait()  # the host said hello
        os.kill(warm.host_pid, signal.SIGSTOP)  # the request waits on the host's socket
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(spawn, warm, job_folder(env, "abandoned", "hang", seconds=60))
                with anyio.fail_after(30):
                    while not queued(warm._sock):
                        await anyio.sleep(0.01)
                tg.cancel_scope.cancel()  # the job is torn down while the host has its request
        finally:
            os.kill(warm.host_pid, signal.SIGCONT)
        children = Path(f"/proc/{warm.host_pid}/task/{warm.host_pid}/children")
        with anyio.fail_after(30):
            while warm._pending:  # answered: the worker was forked
                await anyio.sleep(0.01)
            while children.read_text().split():  # killed at once (it would hang 60 s), and reaped
                await anyio.sleep(0.01)


async def test_a_stopping_daemon_waits_for_its_workers_then_closes_the_host(env: Env) -> None:
    async with hosted(env) as warm:
        host = warm.host_pid
        assert host is not None
        proc = await spawn(warm, job_folder(env, "last", "hang", seconds=60))
        os.killpg(proc.pid, signal.SIGKILL)
    # torn down: the status still came, and the host has exited and been reaped
    assert await ended(proc) == -signal.SIGKILL and proc.lost is None
    assert not Path(f"/proc/{host}").exists()


async def test_a_request_waiting_when_the_host_dies_is_answered(env: Env) -> None:
    async with hosted(env) as warm:
        assert warm.host_pid is not None and warm._sock is not None
        with anyio.fail_after(30):
            await warm._up.wait()
        os.kill(warm.host_pid, signal.SIGSTOP)
        async with anyio.create_task_group() as tg:
            async def refused() -> None:
                with pytest.raises(WarmUnavailable, match="^the warm worker host exited$"):
                    await spawn(warm, job_folder(env, "waiting", "hang", seconds=60))

            tg.start_soon(refused)
            with anyio.fail_after(30):
                while not queued(warm._sock):
                    await anyio.sleep(0.01)
            os.kill(warm.host_pid, signal.SIGKILL)


async def test_a_host_that_does_not_exit_when_the_daemon_stops_is_killed(env: Env) -> None:
    async with hosted(env) as warm:
        host = warm.host_pid
        assert host is not None
        with anyio.fail_after(30):
            await warm._up.wait()
        os.kill(host, signal.SIGSTOP)  # cannot read that its socket closed
    assert not Path(f"/proc/{host}").exists()  # killed after a grace period, and reaped
