"""The JobContext implementation. The worker process feeds its messages to the daemon; tests and
benchmarks may run an operation in-process with a list as the sink (`Context.local`)."""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.store.artifacts import ArtifactStore

Sink = Callable[[str, dict[str, Any]], None]
"""Receives (kind, body): kind is `progress`, `metrics`, `log`, `artifact`, `checkpoint` or `event`."""
Pinned = tuple[Callable[[], ModuleType], str]
"""A plugin the job may call: (import its backend from the pinned snapshot, its code hash)."""


def builtin_backend(plugin: str) -> ModuleType:
    """A built-in plugin's backend (what a context without pinned plugins calls, e.g. in tests)."""
    if not plugin.isidentifier():
        raise ModuleNotFoundError(plugin)
    return importlib.import_module(f"tunelog.plugins.{plugin}.backend")


def source_sha256(folder: Path) -> str:
    """sha256 over a plugin folder's manifest and Python files, by relative path and content."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted([*folder.rglob("*.py"), folder / "manifest.yaml"]):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()


class Context:
    """Implements `tunelog.plugins.api.JobContext`."""

    def __init__(self, *, job_id: str, workdir: Path, artifacts: ArtifactStore, sink: Sink,
                 resume_from: Path | None = None, run_id: str | None = None, cache_dir: Path | None = None,
                 uses: dict[str, Pinned] | None = None):
        self.job_id = job_id
        self.run_id = run_id
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.resume_from = resume_from
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(artifacts.root).parent / "cache"
        self._artifacts = artifacts
        self._sink = sink
        self._stop = False
        self._uses = dict(uses or {})

    @classmethod
    def local(cls, root: Path, *, job_id: str = "local", resume_from: Path | None = None,
              run_id: str | None = None) -> tuple[Context, list[tuple[str, dict[str, Any]]]]:
        """A context that runs in this process and records every message in the returned list."""
        got: list[tuple[str, dict[str, Any]]] = []
        ctx = cls(job_id=job_id, workdir=Path(root) / "jobs" / job_id, artifacts=ArtifactStore(Path(root) / "artifacts"),
                  sink=lambda kind, body: got.append((kind, body)), resume_from=resume_from, run_id=run_id)
        return ctx, got

    @property
    def artifacts(self) -> ArtifactStore:
        return self._artifacts

    def progress(self, step: int, total: int | None = None, message: str = "") -> None:
        self._sink("progress", {"step": step, "total": total, "message": message, "time": time.time()})

    def metrics(self, step: int, **values: float) -> None:
        self._sink("metrics", {"step": step, **values})

    def log(self, message: str) -> None:
        self._sink("log", {"line": message})

    def artifact_path(self, sha256: str) -> Path:
        return self._artifacts.path(sha256)

    def store_artifact(self, name: str, path: Path) -> str:
        path = Path(path)
        ref = self._artifacts.put_dir(path) if path.is_dir() else self._artifacts.put_file(path)
        self._sink("artifact", {"name": name, "sha256": ref.sha256, "size": ref.size, "kind": ref.kind})
        return ref.sha256

    def checkpoint(self, step: int, path: Path) -> str:
        ref = self._artifacts.put_dir(Path(path))
        self._sink("checkpoint", {"step": step, "sha256": ref.sha256, "size": ref.size})
        return ref.sha256

    def emit(self, event: Any) -> None:
        self._sink("event", {"event": event})

    def operation(self, name: str) -> Callable[..., Any]:
        """`plugin.operation` from the code pinned for this job, else from the built-in plugins."""
        plugin, _, operation = name.partition(".")
        try:
            backend = self._uses[plugin][0]() if plugin in self._uses else builtin_backend(plugin)
        except ModuleNotFoundError as exc:
            raise ValidationError(f"no plugin {plugin!r} for operation {name!r}",
                                  hint="name a loaded plugin's operation, e.g. rewards.exact_match") from exc
        found = getattr(backend, operation, None) if operation else None
        if not callable(found):
            raise ValidationError(f"plugin {plugin!r} has no operation {operation!r}")
        return found  # type: ignore[no-any-return]

    def plugin_code(self, plugin: str) -> str:
        """The code hash the run pinned for a plugin the job calls; outside a run (a built-in plugin
        called in-process, e.g. by tests) a sha256 over its manifest and Python files."""
        if plugin in self._uses:
            return self._uses[plugin][1]
        return source_sha256(Path(builtin_backend(plugin).__file__ or "").parent)

    def request_stop(self) -> None:
        """Ask the operation to checkpoint and return (what SIGTERM does in a worker)."""
        self._stop = True

    def should_stop(self) -> bool:
        return self._stop

    def install_sigterm(self) -> None:
        """Turn SIGTERM into a stop request (worker processes only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
