"""The parts the API routes work with, created once at daemon start (the composition root's list)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from tunelog.daemon.paths import Paths
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from tunelog.daemon.jobs.runner import JobRunner
    from tunelog.daemon.plugin_host.manager import PluginManager
    from tunelog.daemon.runs.executor import RunExecutor


class Notifier:
    """Wakes followers after each commit. Lives on the event loop; the store calls `notify`."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self, head: int) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, timeout: float) -> None:
        """Return after the next commit or after `timeout` seconds, whichever comes first."""
        with anyio.move_on_after(timeout):
            await self._event.wait()


def build_services(paths: Paths, *, version: str, plugin_dirs: Sequence[Path] = (),
                   builtin_dir: Path | None = None, slots: list[str] | None = None,
                   grace_s: float = 10.0) -> Services:
    """The daemon's parts over one data dir, wired together (the daemon and the tests use this)."""
    from tunelog.daemon.jobs.runner import JobRunner
    from tunelog.daemon.plugin_host.manager import PluginManager
    from tunelog.daemon.runs.executor import RunExecutor

    paths.ensure()
    store = SqliteStore(paths.db)
    artifacts = ArtifactStore(paths.artifacts)
    plugins = PluginManager(store, paths, extra_dirs=list(plugin_dirs), builtin_dir=builtin_dir)
    jobs = JobRunner(store, paths, artifacts, slots=slots, grace_s=grace_s)
    return Services(paths=paths, store=store, artifacts=artifacts, version=version, plugins=plugins, jobs=jobs,
                    runs=RunExecutor(store, plugins, jobs))


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
