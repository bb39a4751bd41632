"""The parts the API routes work with, created once at daemon start (the composition root's list)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from tunelog.daemon.paths import Paths
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.sqlite import SqliteStore
from tunelog.store.tables import Tables

if TYPE_CHECKING:
    from tunelog.daemon.jobs.runner import JobRunner
    from tunelog.daemon.plugin_host.manager import PluginManager
    from tunelog.daemon.runs.executor import RunExecutor


class Notifier:
    """Wakes followers after each commit. Lives on the event loop; the store calls `notify`."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.closed = False
        """The daemon is stopping: followers send what is in the log and end."""

    def notify(self, head: int) -> None:
        self._event.set()
        self._event = anyio.Event()

    def close(self) -> None:
        """Mark the daemon as stopping and wake whoever waits now. Later waits wait as before: a
        loop that does not look at `closed` must not spin."""
        self.closed = True
        self.notify(0)

    async def wait(self, timeout: float) -> None:
        """Return after the next commit or after `timeout` seconds, whichever comes first."""
        with anyio.move_on_after(timeout):
            await self._event.wait()


def build_services(paths: Paths, *, version: str, plugin_dirs: Sequence[Path] = (),
                   builtin_dir: Path | None = None, slots: list[str] | None = None,
                   grace_s: float = 10.0, warm: bool = False) -> Services:
    """The daemon's parts over one data dir, wired together (the daemon and the tests use this).

    `warm` runs the warm worker host, so local CPU jobs fork from a process with torch imported."""
    from tunelog.daemon.jobs.runner import JobRunner, job_backend
    from tunelog.daemon.jobs.warm import WarmWorkers
    from tunelog.daemon.plugin_host.manager import PluginManager
    from tunelog.daemon.runs.executor import RunExecutor

    paths.ensure()
    store = SqliteStore(paths.db)
    artifacts = ArtifactStore(paths.artifacts)
    plugins = PluginManager(store, paths, extra_dirs=list(plugin_dirs), builtin_dir=builtin_dir)
    backend = job_backend(paths)
    host = WarmWorkers(python=sys.executable, log_path=paths.log_file, cwd=paths.home) if warm and backend is None else None
    jobs = JobRunner(store, paths, artifacts, slots=slots, grace_s=grace_s, backend=backend, warm=host)
    return Services(paths=paths, store=store, artifacts=artifacts, version=version, plugins=plugins, jobs=jobs,
                    runs=RunExecutor(store, plugins, jobs))


async def start_services(services: Services, tg: TaskGroup, *, watch_plugins: bool = True) -> Callable[[], None]:
    """Start the daemon's parts in `tg`, in start-up order: wake followers and the run executor after
    each commit, run the job runner (it first settles the jobs a crash left behind), scan the
    plugins, watch them for changes (unless `watch_plugins` is false), run the run executor.
    Returns the function that stops the wake-ups. Stop the job runner with `services.jobs.shutdown()`."""
    loop = asyncio.get_running_loop()
    unsubscribe = [services.store.subscribe(_on_loop(loop, services.notifier.notify)),
                   services.store.subscribe(_on_loop(loop, lambda head: services.runs.wake()))]
    await tg.start(services.jobs.run)
    await services.plugins.scan()
    if watch_plugins:
        await tg.start(services.plugins.watch)
    await tg.start(services.runs.run)

    def stop_waking() -> None:
        for undo in unsubscribe:
            undo()

    return stop_waking


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[int], None]) -> Callable[[int], None]:
    """A store subscriber that calls `fn(head)` in `loop`'s thread (the notifier's events belong to
    the loop), whichever thread appended."""
    owner = threading.get_ident()

    def call(head: int) -> None:
        if threading.get_ident() == owner:
            fn(head)
        else:
            loop.call_soon_threadsafe(fn, head)

    return call


@dataclass
class Services:
    """Dependencies of the API: one of each, no behaviour of its own."""

    paths: Paths
    store: SqliteStore
    artifacts: ArtifactStore
    plugins: PluginManager
    jobs: JobRunner
    runs: RunExecutor
    version: str
    notifier: Notifier = field(default_factory=Notifier)
    started_at: float = field(default_factory=time.time)
    request_stop: Callable[[str], None] = lambda reason: None

    @cached_property
    def tables(self) -> Tables:
        """The projections read as typed rows (`tables.runs.get(run_id) -> RunRow | None`)."""
        return Tables(self.store)
