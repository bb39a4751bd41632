"""Finding plugin folders, deciding which registration (stream key) each one gets, and which
event its state calls for. No store and no processes here: the manager (daemon/plugin_host/manager.py)
drives these and appends the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tunelog.daemon.plugin_host.check import CheckResult
from tunelog.daemon.plugin_host.manifest import MANIFEST, declared_name
from tunelog.daemon.plugin_host.snapshots import code_hash, read_files
from tunelog.events.base import Event
from tunelog.events.plugins import PluginFailed, PluginLoaded, PluginReloaded
from tunelog.events.state import PluginRow
from tunelog.plugins.api import Manifest

NOT_PLUGINS = frozenset({"common", "__pycache__"})
"""Folder names in a plugin dir that never hold a plugin (shared code, caches)."""


@dataclass
class Folder:
    """A plugin folder as last read from disk, and the key it registers under in this pass."""

    path: Path
    source: str
    """`builtin` or `user`."""
    digest: str = ""
    """Code hash of its content when read."""
    name: str = ""
    """The name its manifest declares, when readable and well formed."""
    error: str = ""
    """Why the folder could not be read at all."""
    key: str = ""
    """The plugin name (stream `plugin-<key>`, row key) this folder registers under."""
    owner: Path | None = None
    """For a folder refused as a duplicate: the folder that keeps the name."""


def discover(roots: Sequence[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Every folder with a manifest.yaml directly under a root, in root order then by name."""
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for root, source in roots:
        try:
            entries = sorted(root.iterdir())
        except OSError:  # a missing plugin dir simply holds no plugins
            continue
        for path in entries:
            if path.name.startswith((".", "_")) or path.name in NOT_PLUGINS or path in seen:
                continue
            if path.is_dir() and (path / MANIFEST).is_file():
                seen.add(path)
                out.append((path, source))
    return out


def read_folder(path: Path, source: str) -> Folder:
    """Hash a folder and read the name it declares, from one read of its files."""
    try:
        files = read_files(path)
    except OSError as exc:
        return Folder(path, source, error=f"the plugin folder could not be read: {exc}")
    return Folder(path, source, digest=code_hash(path, files=files), name=declared_name(files.get(MANIFEST)) or "")


def survey(roots: Sequence[tuple[Path, str]], cache: dict[Path, Folder], dirty: set[Path] | None) -> list[Folder]:
    """The current plugin folders; re-reads those in `dirty` (all when None) or not seen before."""
    found = discover(roots)
    for gone in set(cache) - {p for p, _ in found}:
        del cache[gone]
    out = []
    for path, source in found:
        cached = cache.get(path)
        if cached is None or dirty is None or path in dirty or cached.source != source:
            cached = cache[path] = read_folder(path, source)
        out.append(dataclasses.replace(cached, key="", owner=None))
    return out


def assign_keys(folders: Sequence[Folder], rows: Mapping[str, PluginRow]) -> None:
    """Give each folder the key it registers under, refusing duplicate names.

    The folder already registered under a name keeps it; otherwise the first found (built-ins
    before user folders) does. Every other folder declaring that name gets a key of its own,
    `name@source:folder`, so its refusal is visible without touching the plugin that stays.
    """
    registered = {r.path: r.key for r in rows.values() if r.status != "removed"}
    groups: dict[str, list[Folder]] = {}
    for f in folders:
        # A manifest too broken to name itself keeps the registration it had, so its failure
        # lands on that plugin (whose last good version keeps serving) instead of removing it.
        name = f.name or registered.get(str(f.path), "").partition("@")[0] or f.path.name
        groups.setdefault(name, []).append(f)
    taken = set(groups)
    for name, group in groups.items():
        row = rows.get(name)
        kept = row.path if row is not None and row.status != "removed" else None
        ranked = sorted(group, key=lambda f: (str(f.path) != kept, not f.name))
        ranked[0].key = name
        for f in ranked[1:]:
            f.key, f.owner = _unique(f"{name}@{f.source}:{f.path.name}", taken), ranked[0].path


def outcome(f: Folder, row: PluginRow | None, digest: str, manifest: Manifest, check: CheckResult) -> Event:
    """The event a checked folder calls for: loaded, reloaded or failed."""
    if not check.ok:
        problems = [{"where": f"operations.{op}", "message": f"backend.py has no function {op}"} for op in check.missing]
        return PluginFailed(name=f.key, path=str(f.path), code_hash=digest, error=check.error,
                            problems=problems, traceback=check.traceback)
    fields: dict[str, Any] = dict(name=f.key, version=manifest.version, code_hash=digest, path=str(f.path),
                                  source=f.source, manifest=msgspec.to_builtins(manifest))
    if row is not None and row.status != "removed" and row.code_hash:
        return PluginReloaded(previous_hash=row.code_hash, **fields)
    return PluginLoaded(**fields)


def duplicate(f: Folder) -> PluginFailed:
    """The refusal of a folder whose name another folder already provides; it names both paths."""
    name = f.key.partition("@")[0]
    return PluginFailed(name=f.key, path=str(f.path), code_hash=f.digest,
                        error=f"duplicate plugin name {name!r}: {f.path} declares it but {f.owner} already "
                              f"provides it; {f.path} is ignored",
                        problems=[{"where": "name", "message": f"{name!r} is already provided by {f.owner}"}])


def unchanged(row: PluginRow | None, f: Folder) -> bool:
    """Whether the registration already reflects this exact content (nothing to check)."""
    if row is None or row.path != str(f.path):
        return False
    return bool((row.status == "loaded" and row.code_hash == f.digest)
                or (row.status == "failed" and row.failed_hash == f.digest))


def repeats(row: PluginRow | None, event: Event) -> bool:
    """Whether appending `event` would tell the log nothing new."""
    if row is None or row.path != getattr(event, "path", None):
        return False
    if isinstance(event, PluginFailed):
        return bool(row.status == "failed" and row.failed_hash == event.code_hash and row.error == event.error)
    if isinstance(event, PluginLoaded | PluginReloaded):
        return bool(row.status == "loaded" and row.code_hash == event.code_hash)
    return False


def _unique(key: str, taken: set[str]) -> str:
    n, out = 1, key
    while out in taken:
        n += 1
        out = f"{key}#{n}"
    taken.add(out)
    return out
