"""Folds for workflows, runs, the node cache, adapters and models (pure, like events/state.py)."""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from tunelog.events import jobs as J
from tunelog.events import merges as M
from tunelog.events import runs as R
from tunelog.events.base import Stamped

replace = msgspec.structs.replace


class RunState(enum.StrEnum):
    """Where a run stands (`RunRow.state`); members equal the strings stored in the log."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class NodeState(enum.StrEnum):
    """Where one node of a run stands (`NodeRow.state`)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    """Its job started."""
    COMPLETED = "completed"
    CACHED = "cached"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


NODE_ACTIVE = frozenset({NodeState.QUEUED, NodeState.RUNNING})
"""Node states whose job is queued or running."""
NODE_DONE = frozenset({NodeState.COMPLETED, NodeState.CACHED})
"""Node states whose outputs exist."""
NODE_AGAIN = frozenset({NodeState.FAILED, NodeState.CANCELLED, NodeState.SKIPPED})
"""Node states `resume` runs again; a node downstream of one of them is skipped."""
NODE_ENDED = NODE_DONE | NODE_AGAIN
"""Node states that are final for this attempt of the run."""


class WorkflowRow(msgspec.Struct, kw_only=True):
    """The latest version of a saved workflow."""

    key: str
    name: str
    version: int
    graph: dict[str, Any]
    saved_at: float


class NodeRow(msgspec.Struct, kw_only=True):
    """Where one node of a run stands."""

    state: str = "pending"
    """A `NodeState`: `pending`, `queued`, `running` (its job started), `completed`, `cached`, `failed`, `cancelled` or `skipped`."""
    job_id: str | None = None
    jobs: list[str] = []
    """Every job that ran this node, oldest first (resumes add one each)."""
    cache_key: str = ""
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    error: str = ""
    attempt: int = 0


class RunRow(msgspec.Struct, kw_only=True):
    """One execution of a graph."""

    key: str
    run_id: str
    graph: dict[str, Any]
    order: list[str]
    code: dict[str, dict[str, str]]
    nodes: dict[str, NodeRow]
    state: str
    """A `RunState`: `running`, `succeeded`, `failed` or `cancelled`."""
    submitted_at: float
    submitted_position: int
    finished_at: float | None = None
    workflow: str | None = None
    workflow_version: int | None = None
    replay_of: str | None = None
    forked_from: dict[str, Any] | None = None
    label: str = ""
    no_cache: bool = False
    force: list[str] = []
    cancel_requested: bool = False
    training: dict[str, dict[str, Any]] = {}
    """Job id -> provenance its TrainingStarted event recorded."""


class CacheRow(msgspec.Struct, kw_only=True):
    """Outputs stored under a node cache key."""

    key: str
    outputs: dict[str, Any]
    job_id: str
    run_id: str
    node: str


class AdapterRow(msgspec.Struct, kw_only=True):
    """An adapter artifact and where it came from."""

    key: str
    sha256: str
    source: str
    """`run` (trained) or `merge` (combined from other adapters)."""
    created_at: float
    created_position: int = 0
    """Log position of the event that produced it (lists page by it)."""
    run_id: str | None = None
    node: str | None = None
    job_id: str | None = None
    base_model: Any = None
    parents: list[dict[str, Any]] = []
    """For merges: the input adapters with their weights."""
    merge_type: str | None = None
    exact: bool | None = None


class ModelRow(msgspec.Struct, kw_only=True):
    """A registered base model name."""

    key: str
    name: str
    ref: str
    note: str = ""
    added_at: float = 0.0


def evolve_workflow(row: WorkflowRow | None, env: Stamped) -> WorkflowRow | None:
    e = env.event
    assert isinstance(e, R.WorkflowSaved)
    return WorkflowRow(key=e.name, name=e.name, version=e.version, graph=e.graph, saved_at=env.time)


def _node(row: RunRow, node: str, **changes: Any) -> RunRow:
    nodes = dict(row.nodes)
    nodes[node] = replace(nodes.get(node) or NodeRow(), **changes)
    return replace(row, nodes=nodes)


def evolve_run(row: RunRow | None, env: Stamped) -> RunRow | None:
    """Fold run events; a node's state follows its latest event."""
    e = env.event
    if isinstance(e, R.RunSubmitted):
        return RunRow(key=e.run_id, run_id=e.run_id, graph=e.graph, order=e.order, code=e.code,
                      nodes={n: NodeRow() for n in e.order}, state="running", submitted_at=env.time,
                      submitted_position=env.position, workflow=e.workflow, workflow_version=e.workflow_version,
                      replay_of=e.replay_of, forked_from=e.forked_from, label=e.label, no_cache=e.no_cache,
                      force=e.force)
    if row is None:
        return None
    if isinstance(e, R.NodeQueued):
        old = row.nodes.get(e.node) or NodeRow()
        return _node(row, e.node, state="queued", job_id=e.job_id, jobs=[*old.jobs, e.job_id],
                     cache_key=e.cache_key, inputs=e.inputs, attempt=e.attempt, error="")
    if isinstance(e, R.NodeCached):
        return _node(row, e.node, state="cached", cache_key=e.cache_key, outputs=e.outputs, job_id=e.source_job)
    if isinstance(e, R.NodeCompleted):
        return _node(row, e.node, state="completed", outputs=e.outputs)
    if isinstance(e, J.JobStarted):
        started = [n for n, node in row.nodes.items() if node.job_id == e.job_id and node.state == "queued"]
        return _node(row, started[0], state="running") if started else row
    if isinstance(e, R.NodeFailed):
        if e.state == "cancelled":
            return _node(row, e.node, state="cancelled", error="" if e.error == e.state else e.error)
        return _node(row, e.node, state="failed", error=f"{e.state}: {e.error}")
    if isinstance(e, R.NodeSkipped):
        return _node(row, e.node, state="skipped", error=e.reason)
    if isinstance(e, R.RunCancelRequested):
        return replace(row, cancel_requested=True)
    if isinstance(e, R.RunResumed):
        row = replace(row, state="running", finished_at=None, cancel_requested=False)
        for n in e.nodes:
            row = _node(row, n, state="pending", error="")
        return row
    if isinstance(e, R.RunFinished):
        return replace(row, state=e.state, finished_at=env.time)
    if isinstance(e, R.TrainingStarted):
        return replace(row, training={**row.training, e.job_id: msgspec.to_builtins(e)})
    return row


def evolve_cache(row: CacheRow | None, env: Stamped) -> CacheRow | None:
    e = env.event
    assert isinstance(e, R.NodeCompleted)
    return CacheRow(key=e.cache_key, outputs=e.outputs, job_id=e.job_id, run_id=e.run_id, node=e.node)


def _adapter_key(env: Stamped) -> str | None:
    e = env.event
    if isinstance(e, M.AdapterMerged):
        return e.output_sha256 if e.output_kind == "adapter" else None
    if isinstance(e, R.NodeCompleted):
        shas = [e.outputs.get(p) for p, t in e.output_types.items() if t == "adapter"]
        return shas[0] if shas and isinstance(shas[0], str) else None
    return None


def evolve_adapter(row: AdapterRow | None, env: Stamped) -> AdapterRow | None:
    e = env.event
    key = _adapter_key(env)
    if key is None:
        return row
    if row is not None:
        return row  # the first producer is the adapter's origin; equal content later is the same adapter
    if isinstance(e, M.AdapterMerged):
        return AdapterRow(key=key, sha256=key, source="merge", created_at=env.time,
                          created_position=env.position, base_model=e.base_model,
                          parents=[msgspec.to_builtins(i) for i in e.inputs], merge_type=e.merge_type,
                          exact=e.exact, job_id=e.job_id)
    assert isinstance(e, R.NodeCompleted)
    return AdapterRow(key=key, sha256=key, source="run", created_at=env.time, created_position=env.position,
                      run_id=e.run_id, node=e.node, job_id=e.job_id)


def evolve_model(row: ModelRow | None, env: Stamped) -> ModelRow | None:
    e = env.event
    if isinstance(e, R.ModelAdded):
        return ModelRow(key=e.name, name=e.name, ref=e.ref, note=e.note, added_at=env.time)
    return None  # ModelRemoved
