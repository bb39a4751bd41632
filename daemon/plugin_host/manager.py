"""The plugin manager: finds plugin folders, validates them out of process, records every change.

Each registration is an event on stream `plugin-<name>` (PluginLoaded, PluginReloaded,
PluginFailed, PluginRemoved); the `plugins` projection says which code hash a job gets. The
daemon never imports plugin code: a throwaway process imports the immutable snapshot
(daemon/plugin_host/check.py). A broken or duplicate plugin becomes a PluginFailed event and never
affects the daemon or the other plugins; the last good version of a broken plugin keeps serving.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from watchfiles import awatch

import tunelog.plugins
from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host import params as P
from tunelog.daemon.plugin_host.check import run_check
from tunelog.daemon.plugin_host.manifest import read_manifest
from tunelog.daemon.plugin_host.presets import Presets, snapshot_presets
from tunelog.daemon.plugin_host.scan import (
    Folder,
    assign_keys,
    duplicate,
    outcome,
    repeats,
    survey,
    unchanged,
)
from tunelog.daemon.plugin_host.snapshots import code_hash, snapshot
from tunelog.events.base import Event
from tunelog.events.errors import NotFoundError, PluginError
from tunelog.events.plugins import PluginFailed, PluginRemoved
from tunelog.events.state import PluginRow
from tunelog.events.streams import plugin_stream
from tunelog.plugins.api import Manifest, OperationSpec
from tunelog.store.tables import Tables

if TYPE_CHECKING:
    from tunelog.store.base import EventStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolved:
    """What a job needs to run an operation: the registered plugin, the operation and its code."""

    row: PluginRow
    op: OperationSpec
    code_dir: Path
    """The immutable snapshot of the registered code (`paths.plugin_code / row.code_hash`)."""
    manifest: Manifest

    def presets(self) -> Presets:
        """The plugin's named presets (empty when its manifest names none)."""
        return snapshot_presets(self.code_dir / self.manifest.presets) if self.manifest.presets else {}


class PluginManager:
    """Keeps the `plugins` projection in step with the plugin folders on disk."""

    check_timeout_s = 120.0
    """How long importing a backend.py may take before the plugin is failed."""
    watch_step_ms = 10
    """watchfiles yields once no new change arrived for this long..."""
    watch_debounce_ms = 50
    """...or at the latest this long after the first change of a batch."""
    watch_timeout_ms = 100
    """The watcher also wakes up this often when idle: its first wake-up tells us it is live."""
    max_passes = 5
    """Re-checks in a row before yielding when a folder keeps changing while it is checked."""
    parallel_checks = max(1, min(4, os.cpu_count() or 1))
    """Plugins validated at once (each in its own process)."""

    def __init__(self, store: EventStore, paths: Paths, *, builtin_dir: Path | None = None,
                 extra_dirs: Sequence[Path] = (), python: str = sys.executable):
        self.store = store
        self.tables = Tables(store)
        self.paths = paths
        self.python = python
        builtin = builtin_dir if builtin_dir is not None else Path(tunelog.plugins.__file__).parent
        self.roots: list[tuple[Path, str]] = [(builtin.resolve(), "builtin"), (paths.user_plugins.resolve(), "user"),
                                              *((Path(d).resolve(), "user") for d in extra_dirs)]
        self._cache: dict[Path, Folder] = {}
        self._dirty: set[Path] = set()
        self._everything = False
        self._wake: anyio.Event | None = None
        self._lock: anyio.Lock | None = None
        self._manifests: dict[str, Manifest] = {}

    # -- public ------------------------------------------------------------------------------

    async def scan(self) -> None:
        """Check every plugin folder once (daemon start); unchanged plugins append nothing."""
        await self._reconcile(everything=True)

    async def reload(self, name: str | None = None) -> list[PluginRow]:
        """Re-check one plugin (or all), re-validating even unchanged code; returns their rows."""
        await self._reconcile(everything=True, force=name if name is not None else True)
        if name is None:
            return list(self.tables.plugins.all())
        row = self.tables.plugins.get(name)
        if row is None:
            raise NotFoundError(f"no plugin named {name!r}", hint=f"known plugins: {self._known()}; "
                                f"plugin folders are read from {', '.join(str(r) for r, _ in self.roots)}")
        return [row]

    async def watch(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch the plugin folders forever, registering each change; reports started once watching."""
        self.paths.user_plugins.mkdir(parents=True, exist_ok=True)
        self._wake = anyio.Event()
        ready = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._settle_loop)
            tg.start_soon(self._watch_forever, ready)
            await ready.wait()
            task_status.started()

    async def _watch_forever(self, ready: anyio.Event) -> None:
        """Feed watchfiles' changes to the settle loop; a failing watcher is restarted, never fatal."""
        while True:
            try:
                await self._watch_roots(ready)
                continue
            except Exception:
                log.exception("watching the plugin folders failed; restarting the watcher in 1 s")
            ready.set()
            await anyio.sleep(1)

    async def _watch_roots(self, ready: anyio.Event) -> None:
        """Watch the plugin dirs that exist now; returns when one appears or goes, to watch the new set.

        A dir that did not exist when the watcher started (a `TUNELOG_PLUGIN_DIRS` entry made
        later) would otherwise never be watched.
        """
        fresh = True
        roots = self._existing_roots()
        async for changes in awatch(*roots, step=self.watch_step_ms, debounce=self.watch_debounce_ms,
                                    rust_timeout=self.watch_timeout_ms, yield_on_timeout=True):
            if fresh:  # the watcher is live: look again at whatever changed before it was
                fresh, self._everything = False, True
                ready.set()
            for _, path in changes:
                self._mark_dirty(Path(path))
            if self._everything and self._wake is not None:
                self._wake.set()
            if self._existing_roots() != roots:  # the new watcher's first wake-up looks at everything
                return

    def _existing_roots(self) -> list[Path]:
        return [r for r, _ in self.roots if r.is_dir()]

    def resolve(self, plugin: str, operation: str) -> Resolved:
        """The registered code of `plugin` and its `operation`, or an error naming what exists."""
        row: PluginRow | None = self.tables.plugins.get(plugin)
        if row is None or row.status == "removed":
            raise NotFoundError(f"no plugin named {plugin!r}", hint=f"known plugins: {self._known()}")
        if not row.code_hash:
            raise PluginError(f"plugin {plugin!r} has never loaded: {row.error}", problems=row.problems,
                              hint="fix it and save; `tunectl plugins` shows what is wrong")
        manifest = self._manifest(row)
        op = manifest.operations.get(operation)
        if op is None:
            raise PluginError(f"plugin {plugin!r} has no operation {operation!r}",
                              hint=f"its operations: {', '.join(manifest.operations)}")
        code_dir = self.paths.plugin_code / row.code_hash
        if not code_dir.is_dir():
            raise PluginError(f"the code of plugin {plugin!r} ({row.code_hash[:12]}) is missing from {code_dir.parent}",
                              hint="reload the plugin to snapshot its folder again")
        return Resolved(row=row, op=op, code_dir=code_dir, manifest=manifest)

    def presets(self) -> dict[str, Presets]:
        """Plugin name -> its presets, for every loaded plugin whose manifest names a presets file."""
        out: dict[str, Presets] = {}
        for row in self.tables.plugins.all():
            if row.code_hash and row.status != "removed" and row.manifest.get("presets"):
                out[row.name] = snapshot_presets(self.paths.plugin_code / row.code_hash / row.manifest["presets"])
        return out

    def validate_params(self, op: OperationSpec, params: dict[str, Any], *, where: str = "params") -> dict[str, Any]:
        """Params with defaults applied; every problem at once in one ValidationError."""
        resolved: dict[str, Any] = P.validate_params(op, params, where=where)
        return resolved

    def validate_inputs(self, op: OperationSpec, inputs: dict[str, Any], *, where: str = "inputs") -> dict[str, Any]:
        """Inputs checked against the operation's ports: required present, unknown refused."""
        given: dict[str, Any] = P.validate_inputs(op, inputs, where=where)
        return given

    # -- reconciling -------------------------------------------------------------------------

    async def _reconcile(self, *, everything: bool = False, force: bool | str = False) -> None:
        """Run passes until no folder changed while it was being checked (bounded)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            for _ in range(self.max_passes):
                dirty: set[Path] | None = None if (everything or self._everything) else self._dirty
                self._dirty, self._everything = set(), False
                await self._pass(dirty, force=force)
                everything, force = False, False
                if not (self._dirty or self._everything):
                    return

    async def _pass(self, dirty: set[Path] | None, *, force: bool | str) -> None:
        """Re-read changed folders, register what changed and record what disappeared."""
        folders = await anyio.to_thread.run_sync(survey, self.roots, self._cache, dirty)
        rows: dict[str, PluginRow] = {r.key: r for r in self.tables.plugins.all()}
        assign_keys(folders, rows)
        limiter = anyio.CapacityLimiter(self.parallel_checks)

        async def settle(f: Folder) -> None:
            async with limiter:
                try:
                    await self._settle(f, rows.get(f.key), force=force is True or force == f.key)
                except Exception as exc:
                    self._internal_failure(f, exc)

        async with anyio.create_task_group() as tg:
            for f in folders:
                tg.start_soon(settle, f)
        keys = {f.key for f in folders}
        for key, row in rows.items():
            if row.status != "removed" and key not in keys:
                self._append(key, PluginRemoved(name=key, path=row.path))

    async def _settle(self, f: Folder, row: PluginRow | None, *, force: bool) -> None:
        """Bring one folder's registration up to date."""
        event: Event | None
        if f.owner is not None:
            event = duplicate(f)
        elif f.error:
            event = PluginFailed(name=f.key, path=str(f.path), code_hash=f.digest, error=f.error)
        elif not force and unchanged(row, f):
            return
        else:
            event = await self._validate(f, row)
        if event is not None and not repeats(row, event):
            self._append(f.key, event)

    async def _validate(self, f: Folder, row: PluginRow | None) -> Event | None:
        """Snapshot, check the manifest and import the code; None when the folder changed meanwhile."""
        digest, code_dir = await anyio.to_thread.run_sync(snapshot, f.path, self.paths.plugin_code)
        if digest != f.digest:
            self._mark_dirty(f.path)
            return None
        result = await anyio.to_thread.run_sync(read_manifest, code_dir)
        event: Event
        if result.manifest is None:
            first = f"{result.problems[0][0]}: {result.problems[0][1]}"
            more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
            event = PluginFailed(name=f.key, path=str(f.path), code_hash=digest, error=f"invalid manifest: {first}{more}",
                                 problems=[{"where": w, "message": m} for w, m in result.problems])
        else:
            check = await run_check(self.python, code_dir, package=_package(f.key),
                                    operations=list(result.manifest.operations), timeout=self.check_timeout_s)
            event = outcome(f, row, digest, result.manifest, check)
        # Never register stale code: if the folder was edited while we checked, check again.
        if await anyio.to_thread.run_sync(code_hash, f.path) != digest:
            self._mark_dirty(f.path)
            return None
        return event

    async def _settle_loop(self) -> None:
        """Run a reconcile each time the watcher reports changes; never dies."""
        while (wake := self._wake) is not None:
            await wake.wait()
            self._wake = anyio.Event()
            try:
                await self._reconcile()
            except Exception:
                log.exception("checking changed plugin folders failed")

    # -- helpers -----------------------------------------------------------------------------

    def _append(self, key: str, event: Event) -> None:
        self.store.append(plugin_stream(key), [event])
        if isinstance(event, PluginFailed):
            log.warning("plugin %s failed: %s", key, event.error)

    def _internal_failure(self, f: Folder, exc: Exception) -> None:
        """An unexpected error while checking one folder becomes that plugin's PluginFailed."""
        if not f.path.exists():  # deleted while we looked: the next pass records the removal
            self._mark_dirty(f.path)
            return
        log.exception("checking plugin folder %s failed", f.path)
        self._append(f.key, PluginFailed(name=f.key, path=str(f.path), code_hash=f.digest,
                                         error=f"checking the plugin failed: {type(exc).__name__}: {exc}",
                                         traceback=traceback.format_exc()))

    def _mark_dirty(self, path: Path) -> None:
        """Note that something under `path` changed; the next pass re-reads its plugin folder."""
        for root, _ in self.roots:
            if path == root:
                self._everything = True
            elif path.is_relative_to(root):
                self._dirty.add(root / path.relative_to(root).parts[0])
        if self._wake is not None:
            self._wake.set()

    def _manifest(self, row: PluginRow) -> Manifest:
        if row.code_hash not in self._manifests:
            self._manifests[row.code_hash] = msgspec.convert(row.manifest, Manifest)
        return self._manifests[row.code_hash]

    def _known(self) -> str:
        names = [r.key for r in self.tables.plugins.all() if r.code_hash and r.status != "removed"]
        return ", ".join(names) or "none"


def _package(key: str) -> str:
    return "tunelog_plugin_" + re.sub(r"\W", "_", key)
