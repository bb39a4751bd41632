"""Warm workers, the daemon's side: start the warm worker host (`daemon/jobs/zygote.py`, a separate
process that has imported torch and friends once) and have it fork a job's worker, which then
starts its operation in a fraction of a second. The daemon itself imports none of that.

`WarmWorkers.spawn` gives a `WarmProcess` that the job's `Attempt` treats like the process it
would otherwise start: a pid that leads its own process group (signals go to the group), a
message channel, and an exit status (the host reaps its children and reports each status). If
the host is not running, or dies, jobs go back to starting their worker process themselves.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from tunelog.daemon.jobs.processes import killpg
from tunelog.daemon.paths import UMASK
from tunelog.events.errors import JobError

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 16
_POLL_S = 0.2
"""How often a waiter looks at the worker's pidfd while no status has come."""
_STATUS_WAIT_S = 2.0
"""How long the host gets to report the status of a worker that has ended."""
_DRAIN_S = 5.0
"""How long a stopping daemon waits for its workers' statuses before it closes the host."""


class WarmUnavailable(JobError):
    """The host cannot start this worker: start it the ordinary way."""


class WarmProcess:
    """A worker the host forked, seen from the daemon (the parts of `anyio.abc.Process` a job uses).

    Its exit status comes from the host. Should the host be gone (it died, or the daemon is
    tearing down), a pidfd of the worker still tells when it has ended; the status is then unknown.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.stdout: anyio.abc.ByteReceiveStream | None = None
        self.returncode: int | None = None
        self.lost: str | None = None
        """Why the exit status is unknown (the host was gone before the worker), else None."""
        self.host_gone = False
        self._exited = anyio.Event()
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # ended and reaped already: the host's status message is on its way
            self._pidfd = None

    def exited(self, status: int | None, *, lost: str | None = None) -> None:
        if not self._exited.is_set():
            self.returncode = os.waitstatus_to_exitcode(status) if status is not None else None
            self.lost = lost
            self._exited.set()

    async def wait(self) -> int | None:
        """The exit status, once the worker has ended (None if it is unknown)."""
        ended_at: float | None = None
        while not self._exited.is_set():
            with anyio.move_on_after(_POLL_S):
                await self._exited.wait()
            if self._exited.is_set() or not self._ended():
                continue
            now = anyio.current_time()
            ended_at = ended_at or now
            if self.host_gone or now - ended_at > _STATUS_WAIT_S:
                self.exited(None, lost="the warm worker host was gone before the worker; its exit status is unknown")
        return self.returncode

    def _ended(self) -> bool:
        if self._pidfd is None:
            return True
        return bool(select.select([self._pidfd], [], [], 0)[0])

    async def aclose(self) -> None:
        if self.stdout is not None:
            await self.stdout.aclose()
        await self.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


@dataclass
class _Pending:
    done: anyio.Event = field(default_factory=anyio.Event)
    proc: WarmProcess | None = None
    error: str = ""
    abandoned: bool = False
    """The job stopped waiting (its daemon is tearing down): a worker forked now is killed at once."""


class WarmWorkers:
    """Runs the warm worker host for the daemon's lifetime and forks workers from it."""

    def __init__(self, *, python: str, log_path: Path, cwd: Path, env: dict[str, str] | None = None,
                 modules: Sequence[str] | None = None):
        self.python, self.log_path, self.cwd = python, log_path, cwd
        self.env = dict(os.environ if env is None else env)
        self.env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        if modules is not None:
            self.env["TUNELOG_WARM_MODULES"] = ",".join(modules)
        self.host_pid: int | None = None
        self.warm: list[str] = []
        """Modules the host has imported (set once it finished importing)."""
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._live: dict[int, WarmProcess] = {}
        self._up = anyio.Event()
        self._sending = anyio.Lock()
        """One request at a time on the socket: anyio lets one task wait for it to be writable."""

    @property
    def available(self) -> bool:
        """True while the host runs (from its start, before it has said hello, until it exits)."""
        return self._sock is not None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the host and relay its messages until cancelled (then stop it)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as logfile:
                proc = await anyio.open_process(
                    [self.python, "-P", "-m", "tunelog.daemon.jobs.zygote", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=logfile, cwd=self.cwd, env=self.env, start_new_session=True, umask=UMASK)
        except OSError as exc:
            log.warning("warm workers: could not start the host (%s); workers start cold", exc)
            ours.close()
            task_status.started()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock, self.host_pid = ours, proc.pid
        task_status.started()
        try:
            while await self._receive():
                pass
            log.warning("warm workers: the host exited; workers start cold")
        finally:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(_DRAIN_S):  # torn down: the host reaps the workers stopped meanwhile
                    while self._live and await self._receive():
                        pass
                self._close()
                await _stop(proc)

    async def _receive(self) -> bool:
        """Handle the host's next message; False once it has closed its end."""
        sock = self._sock
        if sock is None:
            return False
        while True:
            await anyio.wait_readable(sock)
            try:
                data = sock.recv(_MAX_MESSAGE)
                break
            except BlockingIOError:
                continue
            except OSError:
                return False
        if data:
            self._handle(json.loads(data))
        return bool(data)

    def _handle(self, msg: dict[str, Any]) -> None:
        if "hello" in msg:
            self._up.set()
        elif "unsupported" in msg:
            log.warning("warm workers: not on this system (%s); workers start cold", msg["unsupported"])
        elif "warm" in msg:
            self.warm = list(msg["warm"])
            log.info("warm workers: host %s imported %s in %.1f s%s", self.host_pid, ", ".join(self.warm) or "nothing",
                     msg["seconds"], f" (failed: {msg['failed']})" if msg["failed"] else "")
        elif "started" in msg:
            proc = self._live[int(msg["pid"])] = WarmProcess(int(msg["pid"]))  # before its status can come
            self._answer(int(msg["started"]), proc=proc)
        elif "refused" in msg:
            self._answer(int(msg["refused"]), error=str(msg["error"]))
        elif "exited" in msg:
            ended = self._live.pop(int(msg["exited"]), None)
            if ended is not None:
                ended.exited(int(msg["status"]))

    def _answer(self, req_id: int, *, proc: WarmProcess | None = None, error: str = "") -> None:
        pending = self._pending.pop(req_id, None)
        if pending is not None:
            pending.proc, pending.error = proc, error
            pending.done.set()
            if pending.abandoned and proc is not None:
                killpg(proc.pid, signal.SIGKILL)

    def _close(self) -> None:
        """Close our end (the host exits when it reads that), answer what waits on the host, and
        tell the live workers that their exit status will not come."""
        sock, self._sock = self._sock, None
        if sock is not None:
            anyio.notify_closing(sock)
            sock.close()
        for pending in self._pending.values():
            pending.error = "the warm worker host exited"
            pending.done.set()
        self._pending.clear()
        self._up.set()  # spawn() waiting for the host sees that it is gone
        for proc in self._live.values():
            proc.host_gone = True
        self._live.clear()

    async def spawn(self, *, argv: list[str], cwd: Path, env: dict[str, str], stderr: int) -> WarmProcess:
        """Fork a worker in `cwd` with `env`, its stderr on the file descriptor `stderr`.

        Waits for the host to come up (it answers between two imports, so at most one import's
        time); raises WarmUnavailable when it is not running.
        """
        with anyio.move_on_after(30):
            await self._up.wait()
        sock = self._sock
        if sock is None or not self._up.is_set():
            raise WarmUnavailable("the warm worker host is not running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        req_id = next(self._ids)
        pending = self._pending[req_id] = _Pending()
        try:
            body = json.dumps({"id": req_id, "cwd": str(cwd), "env": env, "umask": UMASK, "argv": argv}).encode()
            async with self._sending:
                await anyio.wait_writable(sock)
                socket.send_fds(sock, [body], [theirs.fileno(), stderr])
        except OSError as exc:
            self._pending.pop(req_id, None)
            ours.close()
            raise WarmUnavailable(f"the warm worker host did not take the request: {exc}") from None
        finally:
            theirs.close()
        try:
            await pending.done.wait()
        except BaseException:
            pending.abandoned = True
            ours.close()
            raise
        if pending.proc is None:
            ours.close()  # a worker forked anyway finds its channel closed at its first message
            raise WarmUnavailable(pending.error or "the warm worker host refused the request")
        pending.proc.stdout = await anyio.abc.UNIXSocketStream.from_socket(ours)
        return pending.proc


async def _stop(proc: anyio.abc.Process) -> None:
    """Give the host a moment to exit after its socket closed, then kill it."""
    with anyio.move_on_after(5):
        await proc.wait()
    if proc.returncode is None:
        proc.kill()
    await proc.aclose()
