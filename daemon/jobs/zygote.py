"""The warm worker host: a process that imports the training libraries once and forks one worker
per job, so a job starts in a fraction of a second instead of importing torch again.

The daemon starts it as `python -P -m tunelog.daemon.jobs.zygote FD`, where FD is its end of a
SOCK_SEQPACKET socket pair; messages are one JSON object each (see `daemon/jobs/warm.py`, the
daemon's side). It imports `TUNELOG_WARM_MODULES` (comma-separated; default `WARM_MODULES`) one
at a time, answering requests between two imports, so a job never waits for more than the
import in progress. It imports no tunelog plugin code and no tunelog module beyond this one: a
forked child imports the worker (`daemon/jobs/worker.py`) and then the job's plugin snapshot
itself, so every job runs the code of its snapshot and the current tunelog modules, exactly as a
freshly started worker would.

A request `{"id", "cwd", "env", "umask", "argv"}` carries two descriptors: the socket that
becomes the worker's stdout (its message channel) and the worker's log file (its stderr). The
child makes itself a session and process-group leader, takes the job's environment, folder and
umask, and runs the worker's `main`; the host answers `{"started": id, "pid"}` and, when the
worker ends, `{"exited": pid, "status"}` (the raw wait status). The host exits when the daemon's
end closes, and dies with the daemon (parent-death signal) so a killed daemon leaves no host.

This module and its children may import plugin code and torch; the daemon never imports it.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

WARM_MODULES = ("torch", "transformers", "transformers.modeling_utils", "transformers.models.auto.modeling_auto",
                "transformers.models.llama.modeling_llama", "accelerate", "peft", "safetensors.torch")
"""What a training job imports and would otherwise import anew each time, heaviest first."""

MAX_MESSAGE = 1 << 20
"""Largest request accepted (bytes): a job's whole environment fits many times over."""


def warm_modules(env: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """The modules to import up front: `TUNELOG_WARM_MODULES` if set (empty: none), else the default."""
    given = env.get("TUNELOG_WARM_MODULES")
    if given is None:
        return list(WARM_MODULES)
    return [m.strip() for m in given.split(",") if m.strip()]


class Host:
    """The fork loop: one control socket, one pidfd per live child."""

    def __init__(self, control: socket.socket):
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)

    def send(self, message: dict[str, Any]) -> None:
        self.control.send(json.dumps(message).encode())

    def serve(self, *, timeout: float | None) -> bool:
        """Answer what is waiting (up to `timeout` s; None: until there is something); False once
        the daemon has closed its end."""
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                if not self._request():
                    return False
            else:
                self._reap(key.fd, key.data)
        return True

    def _request(self) -> bool:
        msg, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 4)
        if not msg:
            for fd in fds:
                os.close(fd)
            return False
        req: dict[str, Any] = {}
        try:
            req = json.loads(msg)
            if len(fds) != 2:
                raise ValueError(f"expected 2 descriptors, got {len(fds)}")
            pid = self._fork(req, stdout=fds[0], stderr=fds[1])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.send({"refused": req.get("id"), "error": f"{type(exc).__name__}: {exc}"})
            return True
        finally:
            for fd in fds:
                os.close(fd)
        self.send({"started": req["id"], "pid": pid})
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        return True

    def reap_ended(self) -> None:
        """Reap the children that have ended (on the way out; the living ones go on as orphans)."""
        for key in list(self.selector.get_map().values()):
            if key.data is not None:
                if os.waitpid(key.data, os.WNOHANG)[0]:
                    self.selector.unregister(key.fd)
                    os.close(key.fd)

    def _reap(self, pidfd: int, pid: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.send({"exited": pid, "status": status})

    def _fork(self, req: dict[str, Any], *, stdout: int, stderr: int) -> int:
        cwd, env, umask, argv = str(req["cwd"]), dict(req["env"]), int(req["umask"]), list(req["argv"])
        sys.stdout.flush()
        sys.stderr.flush()
        leader, led = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(leader)
            os.close(led)
            raise
        if pid:
            # "started" only once the child leads its own process group: a signal the daemon sends
            # to the group at once (a job cancelled as it starts) would find no such group before.
            os.close(led)
            os.read(leader, 1)  # end of file when the child has called setsid (or died)
            os.close(leader)
            return pid
        code = 70  # EX_SOFTWARE: the child failed before the worker ran
        try:
            os.close(leader)
            self._leave()
            code = become_worker(cwd=cwd, env=env, umask=umask, argv=argv, stdout=stdout, stderr=stderr,
                                 leading=led)
        except BaseException:  # noqa: BLE001 - the child must never return into the host's loop
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        return 0  # not reached

    def _leave(self) -> None:
        """In the child: drop the host's descriptors (control socket, other children's pidfds)."""
        for key in list(self.selector.get_map().values()):
            if key.data is not None:
                os.close(key.fd)
        self.selector.close()
        self.control.close()


def become_worker(*, cwd: str, env: dict[str, str], umask: int, argv: list[str], stdout: int, stderr: int,
                  leading: int | None = None) -> int:
    """Turn the freshly forked child into a job's worker and run it; returns its exit status.

    `leading`, if given, is closed once the child leads its own session and process group."""
    os.setsid()
    if leading is not None:
        os.close(leading)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in (devnull, stdout, stderr):
        os.close(fd)
    os.chdir(cwd)
    os.umask(umask)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = list(argv)
    _reseed()
    print(f"tunelog: worker forked from the warm worker host {os.getppid()}", file=sys.stderr, flush=True)
    from tunelog.daemon.jobs import worker

    return worker.main(argv[1:])


def _reseed() -> None:
    """A fresh process draws new seeds; a forked one would share the host's (`random` reseeds
    itself at fork; numpy's global generator does not)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the daemon dies (Linux); the closed socket covers the rest."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG; cleared in forked children
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -P -m tunelog.daemon.jobs.zygote FD`."""
    args = sys.argv[1:] if argv is None else argv
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return 0
    with socket.socket(fileno=int(args[0])) as control:
        return _serve(Host(control))


def _serve(host: Host) -> int:
    """Say hello, import the warm modules between requests, then serve until the daemon's end closes."""
    if not hasattr(os, "pidfd_open"):
        host.send({"unsupported": "os.pidfd_open is missing (Linux 5.3 and Python 3.9 or newer needed)"})
        return 0
    host.send({"hello": os.getpid()})
    started, failed = time.monotonic(), {}
    for name in warm_modules():
        if not host.serve(timeout=0):
            return 0
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a library that fails to import is simply not warm
            failed[name] = f"{type(exc).__name__}: {exc}"
    host.send({"warm": [m for m in warm_modules() if m not in failed], "failed": failed,
               "seconds": round(time.monotonic() - started, 3)})
    while host.serve(timeout=None):
        pass
    host.reap_ended()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
