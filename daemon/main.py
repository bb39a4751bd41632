"""Daemon start-up and shutdown: the composition root.

Order matters: take the lock (one daemon per data dir), open the log, record the start,
reconcile jobs a crash left behind, scan plugins, then serve. On SIGTERM/SIGINT or a stop
request: stop accepting, interrupt running workers (they checkpoint), record the stop.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from tunelog.daemon.app import create_app
from tunelog.daemon.lock import InstanceLock
from tunelog.daemon.paths import UMASK, Paths
from tunelog.daemon.peer import bind_unix_socket, checked_protocol
from tunelog.daemon.services import build_services, start_services
from tunelog.daemon.version import tunelog_version
from tunelog.events.streams import DAEMON_STREAM
from tunelog.events.system import DaemonStarted, DaemonStopped

log = logging.getLogger("tunelog.daemon")

Extension = Callable[..., Coroutine[Any, Any, None]]
"""Something served beside the API for the daemon's lifetime, e.g. the web UI: called as
`await ext(services, task_status=...)` in the daemon's task group, it reports `task_status.started()`
once it serves and runs until cancelled. Front ends hand extensions to `run_daemon`, so the daemon
never imports them."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def configure_logging(paths: Paths, *, to_stderr: bool) -> None:
    """Log to `daemon.log` in the data dir (and to stderr in the foreground)."""
    handlers: list[logging.Handler] = [logging.FileHandler(paths.log_file)]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_daemon(paths: Paths, *, to_stderr: bool = True, extensions: Sequence[Extension] = ()) -> None:
    """Run the daemon in this process until it is told to stop, serving `extensions` beside the API.
    Raises ConflictError if one runs."""
    os.umask(UMASK)  # the log, its WAL, daemon.log, artifacts and worker logs: owner only
    paths.ensure()
    lock = InstanceLock(paths.lock, socket=paths.socket)
    lock.acquire()
    try:
        configure_logging(paths, to_stderr=to_stderr)
        anyio.run(_serve, paths, extensions)
    finally:
        lock.release()


def _env_list(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p]


async def _serve(paths: Paths, extensions: Sequence[Extension]) -> None:
    services = build_services(
        paths, version=tunelog_version(), plugin_dirs=[Path(p) for p in _env_list("TUNELOG_PLUGIN_DIRS")],
        builtin_dir=Path(os.devnull) if os.environ.get("TUNELOG_NO_BUILTINS") else None,
        slots=[s for s in os.environ.get("TUNELOG_SLOTS", "").split(",") if s] or None,
        grace_s=float(os.environ.get("TUNELOG_GRACE_S", "10")),
        warm=os.environ.get("TUNELOG_WARM_WORKERS", "on") != "off")
    store = services.store
    stop = anyio.Event()
    reason = ["unknown"]

    def request_stop(why: str) -> None:
        reason[0] = why
        stop.set()

    services.request_stop = request_stop
    sock = bind_unix_socket(paths.socket)
    server = _Server(uvicorn.Config(create_app(services), http=checked_protocol(_http_protocol()),
                                    lifespan="off", log_config=None, access_log=False,
                                    timeout_graceful_shutdown=1))
    store.append(DAEMON_STREAM, [DaemonStarted(pid=os.getpid(), version=services.version,
                                               data_dir=str(paths.home), socket=str(paths.socket))])
    log.info("tunelog %s serving on %s (data in %s)", services.version, paths.socket, paths.home)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, request_stop)
            await start_services(services, tg)
            served = anyio.Event()

            async def serve() -> None:
                try:
                    await server.serve([sock])
                finally:
                    served.set()

            tg.start_soon(serve)
            for extension in extensions:
                await tg.start(functools.partial(extension, services))
            await stop.wait()
            log.info("stopping: %s", reason[0])
            services.notifier.close()  # follow streams end now, not cut by the server's grace timeout
            server.should_exit = True
            await services.jobs.shutdown()
            store.append(DAEMON_STREAM, [DaemonStopped(pid=os.getpid(), reason=reason[0])])
            with anyio.move_on_after(3):
                await served.wait()
            tg.cancel_scope.cancel()
    finally:
        sock.close()
        if paths.socket.exists():
            paths.socket.unlink()
        store.close()
        log.info("stopped")


async def _watch_signals(request_stop: Callable[[str], None]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            request_stop(signal.Signals(signum).name)


def _http_protocol() -> type:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
