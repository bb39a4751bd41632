"""Commands that start runs from recorded ones: replay (same graph, same plugin code, no cache)
and fork (same graph with one node's parameters changed, continuing from one of its checkpoints).

Both go through `RunExecutor.submit`, so the graph is validated again and a retried
`command_id` answers with the run it already started.
"""

from __future__ import annotations

import copy
from typing import Any

from tunelog.daemon.runs.facts import checkpoints
from tunelog.daemon.services import Services
from tunelog.events.errors import ValidationError
from tunelog.events.run_state import RunRow


def replay(s: Services, run_id: str, *, command_id: str | None = None) -> RunRow:
    """A new run of a run's recorded graph (parameters as resolved then) on the plugin code it ran."""
    row = s.runs.find(run_id)
    label = f"replay of {row.run_id}" + (f": {row.label}" if row.label else "")
    return s.runs.submit(row.graph, command_id=command_id, workflow=row.workflow,
                         workflow_version=row.workflow_version, no_cache=True, replay_of=row.run_id,
                         label=label, code=row.code)


def pick_checkpoint(saved: list[dict[str, Any]], step: int | None, *, node: str) -> dict[str, Any] | None:
    """The checkpoint at `step` (the latest one saved there), or the latest of all when `step` is None."""
    if step is None:
        return saved[-1] if saved else None
    at = [c for c in saved if c["step"] == step]
    if at:
        return at[-1]
    steps = sorted({c["step"] for c in saved})
    have = f"checkpoints at steps {', '.join(map(str, steps))}" if steps else "no checkpoints"
    raise ValidationError.collect("no checkpoint at that step", [("step", f"node {node!r} has {have}")],
                                  hint="leave the step out to fork from the latest checkpoint" if steps else None)


def forked_graph(row: RunRow, node: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The run's recorded graph with `changes` applied to one node's parameters."""
    if node not in row.graph["nodes"]:
        known = ", ".join(row.graph["nodes"])
        raise ValidationError.collect("cannot fork", [("node", f"run {row.run_id} has no node {node!r} (nodes: {known})")])
    graph: dict[str, Any] = copy.deepcopy(row.graph)
    spec = graph["nodes"][node]
    spec["params"] = {**(spec.get("params") or {}), **changes}
    return graph


def fork(s: Services, run_id: str, *, node: str, step: int | None = None, changes: dict[str, Any] | None = None,
         command_id: str | None = None) -> RunRow:
    """A new run of a run's graph with `node`'s parameters changed, recorded as forked from the
    node's checkpoint at `step` (or its latest); the executor resumes the node from it."""
    row = s.runs.find(run_id)
    changes = dict(changes or {})
    graph = forked_graph(row, node, changes)
    jobs = list(row.nodes[node].jobs) if node in row.nodes else []
    chosen = pick_checkpoint(checkpoints(s.store, jobs), step, node=node)
    forked_from = {"run": row.run_id, "node": node, "step": chosen and chosen["step"],
                   "job": chosen and chosen["job"], "checkpoint": chosen and chosen["sha256"]}
    what = ", ".join(f"{k}={v!r}" for k, v in changes.items()) or "no changes"
    at = f" step {chosen['step']}" if chosen else ""
    # The same plugin code as the original: a checkpoint is only meaningful to the code that wrote it.
    return s.runs.submit(graph, command_id=command_id, forked_from=forked_from,
                         label=f"fork of {row.run_id} at {node}{at}: {what}", code=row.code)
