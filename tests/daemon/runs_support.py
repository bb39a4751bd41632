"""Helpers for the run executor tests: two small plugins written to a folder, services over a real
store with the job runner's scheduler not started, and the events a job's worker would append."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import yaml

from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events import jobs as J
from tunelog.events.run_state import RunRow
from tunelog.events.streams import job_stream, run_stream


def port(kind: str, *, required: bool = True) -> dict[str, Any]:
    return {"type": kind, "description": kind, **({} if required else {"required": False})}


def param(kind: str, default: Any) -> dict[str, Any]:
    return {"type": kind, "description": kind, "default": default}


EX = {"name": "ex", "version": "1.2", "description": "executor test plugin", "operations": {
    "gen": {"description": "makes rows", "resource": "cpu", "params": {"n": param("integer", 1)},
            "outputs": {"rows": port("json"), "note": port("text")}},
    "use": {"description": "reads things", "resource": "cpu",
            "inputs": {"data": port("json", required=False), "file": port("path", required=False),
                       "model": port("model", required=False)},
            "params": {"lr": param("number", 1.0), "tag": param("string", "")},
            "outputs": {"out": port("json"), "adapter": port("adapter")}},
    "wide": {"description": "asks for devices", "resource": "cpu", "devices_param": "gpus",
             "nodes_param": "machines", "gpu_type_param": "card",
             "params": {"gpus": param("integer", 1), "machines": param("integer", 0), "card": param("string", "")}},
    "big": {"description": "needs a GPU", "resource": "gpu"},
    "judge": {"description": "calls rewards", "resource": "cpu", "uses_param": "rewards",
              "params": {"rewards": {"type": "list", "items": "string", "description": "operations", "default": []}}},
}}
RW = {"name": "rw", "version": "3", "description": "rewards", "operations": {
    "score": {"description": "a reward", "resource": "cpu", "outputs": {"value": port("json")}}}}


def write_plugin(root: Path, manifest: dict[str, Any]) -> None:
    folder = root / manifest["name"]
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    ops = "\n".join(f"def {op}(ctx, params, inputs):\n    return {{}}\n\n" for op in manifest["operations"])
    (folder / "backend.py").write_text(ops)


def end(s: Services, job_id: str, state: str = "succeeded", *, outputs: dict[str, Any] | None = None,
        checkpoint: tuple[int, str] | None = None, started: bool = True, error: str = "boom") -> None:
    """Append what a job's worker would: started, a checkpoint, then the job's end."""
    events: list[Any] = [J.JobStarted(job_id=job_id, pid=os.getpid(), slot="cpu0", log_path="-")] if started else []
    if checkpoint is not None:
        events.append(J.JobCheckpointed(job_id=job_id, step=checkpoint[0], sha256=checkpoint[1], size=1))
    events.append({"succeeded": J.JobSucceeded(job_id=job_id, outputs=outputs or {}, duration_s=0.5),
                   "failed": J.JobFailed(job_id=job_id, error=error, cause="exception"),
                   "cancelled": J.JobCancelled(job_id=job_id),
                   "interrupted": J.JobInterrupted(job_id=job_id, reason="daemon restarted")}[state])
    s.store.append(job_stream(job_id), events)


def run_events(s: Services, run_id: str, *, after: int = 0) -> list[tuple[str, Any]]:
    return [(e.type, e.event) for e in s.store.read(stream=run_stream(run_id)) if e.position > after]


def states(row: RunRow) -> dict[str, str]:
    return {n: node.state for n, node in row.nodes.items()}


def job_of(s: Services, run_id: str, node: str) -> str:
    job_id = s.runs.find(run_id).nodes[node].job_id
    assert job_id
    return job_id




def plugins(root: Path) -> Path:
    """`root` with the two test plugins written into it."""
    root.mkdir(exist_ok=True)
    write_plugin(root, EX)
    write_plugin(root, RW)
    return root


@contextmanager
def services(home: Path, plugin_dir: Path) -> Iterator[Services]:
    """Services over a new data dir with the plugins of `plugin_dir` loaded; jobs stay queued."""
    s = build_services(Paths.from_env(home), version="test", plugin_dirs=[plugin_dir], builtin_dir=Path(os.devnull),
                       slots=["cpu0"])
    anyio.run(s.plugins.scan)
    try:
        yield s
    finally:
        s.store.close()
