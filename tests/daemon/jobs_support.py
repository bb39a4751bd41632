"""Helpers for the job runner tests: a real SQLite store in a temp dir, and the `testops` plugin
(tests/plugins_fixtures/testops) snapshotted the way the plugin manager does it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

from tunelog.daemon.jobs.runner import JobRunner
from tunelog.daemon.jobs.warm import WarmWorkers
from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host.snapshots import snapshot
from tunelog.events.base import Event
from tunelog.events.state import JobRow
from tunelog.plugins.api import Manifest
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.sqlite import SqliteStore

TESTOPS = Path(__file__).parents[1] / "plugins_fixtures" / "testops"
MANIFEST = msgspec.yaml.decode((TESTOPS / "manifest.yaml").read_bytes(), type=Manifest)
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


@dataclass
class Env:
    """A data dir with a store, an artifact store and the testops snapshot."""

    paths: Paths
    store: SqliteStore
    artifacts: ArtifactStore
    code_hash: str
    warm: bool = False
    """Workers fork from a warm worker host (with numpy imported: a host with threads) instead of
    starting as new processes."""

    def runner(self, **kw: Any) -> JobRunner:
        kw.setdefault("slots", ["cpu0"])
        kw.setdefault("grace_s", 2.0)
        if self.warm:
            kw.setdefault("warm", WarmWorkers(python=sys.executable, log_path=self.paths.log_file, cwd=self.paths.home,
                                              modules=["numpy"]))
        return JobRunner(self.store, self.paths, self.artifacts, **kw)

    def submit(self, runner: JobRunner, operation: str, *, inputs: dict[str, Any] | None = None,
               command_id: str | None = None, run_id: str | None = None, resume_of: str | None = None,
               **params: Any) -> JobRow:
        """Submit a testops operation with its manifest defaults applied (what the API does)."""
        spec = MANIFEST.operations[operation]
        full = {k: p.default for k, p in spec.params.items() if p.default is not msgspec.UNSET} | params
        return runner.submit(plugin="testops", operation=operation, params=full, inputs=inputs or {},
                             code_hash=self.code_hash, plugin_version=MANIFEST.version, resource=spec.resource,
                             command_id=command_id, run_id=run_id, resume_of=resume_of)

    def events(self, job_id: str, tag: str | None = None) -> list[Event]:
        """The job's events, optionally only those with one tag."""
        return [e.event for e in self.store.read(stream=f"job-{job_id}") if tag is None or e.type == tag]

    def tags(self, job_id: str) -> list[str]:
        return [e.type for e in self.store.read(stream=f"job-{job_id}")]

    async def wait(self, job_id: str, *states: str, timeout: float = 30.0) -> JobRow:
        """Poll the projection until the job reaches one of `states` (default: any terminal state)."""
        states = states or FINISHED
        with anyio.fail_after(timeout):
            while (row := self.store.get("jobs", job_id)).state not in states:
                await anyio.sleep(0.01)
        return row


    async def until(self, job_id: str, check: Callable[[JobRow], bool], *, timeout: float = 30.0) -> JobRow:
        """Poll the projection until `check(row)` holds, e.g. until the operation reports progress."""
        with anyio.fail_after(timeout):
            while not check(row := self.store.get("jobs", job_id)):
                await anyio.sleep(0.01)
        return row


def make_env(tmp_path: Path, *, warm: bool = False) -> Env:
    paths = Paths.from_env(tmp_path / "home")
    paths.ensure()
    code_hash, _ = snapshot(TESTOPS, paths.plugin_code)
    return Env(paths, SqliteStore(paths.db), ArtifactStore(paths.artifacts), code_hash, warm=warm)


@asynccontextmanager
async def running(runner: JobRunner) -> AsyncIterator[JobRunner]:
    """Run the scheduler for the duration of the block, then shut it down."""
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        try:
            yield runner
        finally:
            await runner.shutdown()
            tg.cancel_scope.cancel()
