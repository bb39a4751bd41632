"""The JobContext implementation. The worker process feeds its messages to the daemon; tests and
benchmarks may run an operation in-process with a list as the sink (`Context.local`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelog.store.artifacts import ArtifactStore

Sink = Callable[[str, dict[str, Any]], None]
"""Receives (kind, body): kind is `progress`, `metrics`, `log`, `artifact`, `checkpoint` or `event`."""


class Context:
    """Implements `tunelog.plugins.api.JobContext`."""

    def __init__(self, *, job_id: str, workdir: Path, artifacts: ArtifactStore, sink: Sink,
                 resume_from: Path | None = None, run_id: str | None = None, cache_dir: Path | None = None):
        self.job_id = job_id
        self.run_id = run_id
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.resume_from = resume_from
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(artifacts.root).parent / "cache"
        self._artifacts = artifacts
        self._sink = sink
        self._stop = False

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

    def request_stop(self) -> None:
        """Ask the operation to checkpoint and return (what SIGTERM does in a worker)."""
        self._stop = True

    def should_stop(self) -> bool:
        return self._stop

    def install_sigterm(self) -> None:
        """Turn SIGTERM into a stop request (worker processes only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
