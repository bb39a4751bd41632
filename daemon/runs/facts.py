"""Gathering what the verify, diff and lineage reports compare, from the log and its projections.

The reports themselves are pure (`daemon/runs/verify.py`, `daemon/runs/lineage.py`); this module is the
I/O side: it reads run, job, plugin and adapter rows and the few events projections do not keep
(per-step metric points, checkpoints, resumes) and hands them over as plain dicts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.run_state import NodeRow, RunRow
from tunelog.events.streams import job_stream
from tunelog.store.base import EventStore
from tunelog.store.tables import Tables


def node_jobs(node: NodeRow) -> list[str]:
    """Jobs whose work a node's outputs come from: its own, or the cached result's source job."""
    if node.jobs:
        return list(node.jobs)
    return [node.job_id] if node.job_id else []


def loss_curve(store: EventStore, jobs: list[str]) -> dict[int, float]:
    """Loss by step from the JobMetrics points of `jobs`; a later job (a resume) overrides a step."""
    curve: dict[int, float] = {}
    for job_id in jobs:
        for env in store.read(stream=job_stream(job_id), types=["job-metrics"]):
            points = env.event.points if isinstance(env.event, J.JobMetrics) else []
            for point in points:
                loss, step = point.get("loss"), point.get("step")
                if isinstance(loss, int | float) and isinstance(step, int | float) and not isinstance(loss, bool):
                    curve[int(step)] = float(loss)
    return curve


def checkpoints(store: EventStore, jobs: list[str]) -> list[dict[str, Any]]:
    """Every checkpoint the jobs saved, in log order: `{job, step, sha256}`."""
    out = []
    for job_id in jobs:
        for env in store.read(stream=job_stream(job_id), types=["job-checkpointed"]):
            e = env.event
            if isinstance(e, J.JobCheckpointed):
                out.append({"job": job_id, "step": e.step, "sha256": e.sha256, "position": env.position})
    return sorted(out, key=lambda c: c["position"])


def _provenance(tables: Tables, row: RunRow, jobs: list[str]) -> dict[str, Any] | None:
    """The first TrainingStarted record among the jobs (a cached job's lives in its own run)."""
    for job_id in jobs:
        if job_id in row.training:
            return dict(row.training[job_id])
        job = tables.jobs.get(job_id)
        other = tables.runs.get(job.run_id) if job is not None and job.run_id else None
        if other is not None and job_id in other.training:
            return dict(other.training[job_id])
    return None


def _input_types(plugins: dict[str, Any], op: str) -> dict[str, str]:
    plugin, _, operation = op.partition(".")
    row = plugins.get(plugin)
    spec = ((row.manifest.get("operations") or {}).get(operation) or {}) if row is not None else {}
    return {port: str(p.get("type", "any")) for port, p in (spec.get("inputs") or {}).items()}


def run_facts(store: EventStore, row: RunRow) -> dict[str, Any]:
    """The run row plus, per node, its loss curve, final metrics, provenance and input port types."""
    tables = Tables(store)
    plugins = {p.name: p for p in tables.plugins.all()}
    nodes = {}
    for node_id, node in row.nodes.items():
        jobs = node_jobs(node)
        job_rows = {j: tables.jobs.get(j) for j in jobs}
        nodes[node_id] = {
            "curve": loss_curve(store, jobs),
            "metrics": {j: r.metrics for j, r in job_rows.items() if r is not None},
            "provenance": _provenance(tables, row, jobs),
            "input_types": _input_types(plugins, row.graph["nodes"].get(node_id, {}).get("op", "")),
        }
    return {"run": msgspec.to_builtins(row), "nodes": nodes}


def lineage_rows(store: EventStore) -> dict[str, Any]:
    """Everything a lineage tree may show: runs, their resumes, the jobs of resumed nodes, adapters."""
    tables = Tables(store)
    runs = [msgspec.to_builtins(r) for r in tables.runs.all()]
    resumes: dict[str, list[list[str]]] = {}
    for env in store.read(types=["run-resumed"]):
        if isinstance(env.event, R.RunResumed):
            resumes.setdefault(env.event.run_id, []).append(list(env.event.nodes))
    chained = {j for r in runs for n in r["nodes"].values() if len(n["jobs"]) > 1 for j in n["jobs"]}
    jobs = {j: msgspec.to_builtins(row) for j in chained if (row := tables.jobs.get(j)) is not None}
    adapters = [msgspec.to_builtins(a) for a in tables.adapters.all()]
    return {"runs": runs, "resumes": resumes, "jobs": jobs, "adapters": adapters}
