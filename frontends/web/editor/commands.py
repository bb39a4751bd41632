"""What the editor asks of the daemon: open, save (a new WorkflowSaved version), validate
(parse_graph), run (submit_checked: the submit-time checks, then services.runs.submit), and the node states of a run. Each command takes
the Services and a Doc and returns the next Doc; failures become problems and a notice, never
an exception in the page.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tunelog.daemon.runs.graph import parse_graph
from tunelog.daemon.runs.preflight import submit_checked
from tunelog.events.errors import ConflictError, TunelogError, ValidationError
from tunelog.events.run_state import NODE_ACTIVE
from tunelog.events.runs import WorkflowSaved
from tunelog.events.state import JobState
from tunelog.events.streams import workflow_stream
from tunelog.frontends.web.editor.doc import Doc, new_doc, notify, valid_name
from tunelog.frontends.web.editor.model import normalize, strip_empty

RunStatus = dict[str, Any]
"""`{run, state, nodes: {id: {state, detail}}}`; node states are the run's (`pending`,
`queued`, `completed`, `cached`, `failed`, `skipped`) plus `running` while the node's job runs."""


def open_doc(services: Any, name: str | None) -> Doc:
    """The latest saved version of `name`, or an empty new workflow (named `name` if given)."""
    row = services.tables.workflows.get(name) if name else None
    if row is None:
        doc = new_doc(name or "", 0, None)
        return notify(doc, f"new workflow {name!r}: add nodes from the palette" if name else
                      "new workflow: name it, then add nodes from the palette")
    return new_doc(row.name, row.version, row.graph, run_id=latest_run(services, row.name))


def _problems(exc: TunelogError) -> tuple[dict[str, str], ...]:
    found = tuple({"where": str(p.get("where", "")), "message": str(p.get("message", ""))} for p in exc.problems)
    return found or ({"where": "", "message": exc.message + (f" ({exc.hint})" if exc.hint else "")},)


def _checked(services: Any, doc: Doc) -> tuple[dict[str, Any], Doc | None]:
    """The graph as it would be saved, or the doc with every problem parse_graph found."""
    graph = strip_empty(doc.graph)
    try:
        parse_graph(graph, services.plugins)
    except TunelogError as exc:
        return graph, replace(doc, problems=_problems(exc), notice=exc.message, tone="error")
    return graph, None


def validate(services: Any, doc: Doc) -> Doc:
    _, failed = _checked(services, doc)
    return failed or replace(doc, problems=(), notice="the workflow is valid", tone="ok")


def save(services: Any, doc: Doc) -> Doc:
    """Append WorkflowSaved version+1 on `workflow-<name>`, expecting the version being edited."""
    if not valid_name(doc.name):
        return notify(doc, "not saved: give the workflow a name (letters, digits, '-', '_' and '.')", "error")
    if doc.version and not doc.dirty and not doc.moved:
        return notify(doc, f"nothing to save: {doc.name} v{doc.version} is unchanged")
    graph, failed = _checked(services, doc)
    if failed:
        return replace(failed, notice=f"not saved: {failed.notice}")
    version = doc.version + 1
    try:
        services.store.append(workflow_stream(doc.name), [WorkflowSaved(name=doc.name, version=version, graph=graph)],
                              expected_version=doc.version)
    except ConflictError:
        now = services.store.stream_version(workflow_stream(doc.name))
        why = (f"a workflow named {doc.name!r} exists already" if doc.version == 0 else
               f"{doc.name} was saved elsewhere meanwhile (now v{now}); reload to edit the latest")
        return notify(doc, f"not saved: {why}", "error")
    g = normalize(graph)
    return replace(doc, version=version, graph=g, saved=g, problems=(), notice=f"saved {doc.name} v{version}",
                   tone="ok")


async def run(services: Any, doc: Doc) -> Doc:
    """Submit the graph: the saved version by name when there are no unsaved edits, else inline."""
    named = doc.version > 0 and not doc.dirty
    # The saved version as saved: a layout change since then is no part of what runs.
    graph, failed = _checked(services, replace(doc, graph=doc.saved) if named else doc)
    if failed:
        return replace(doc, problems=failed.problems, notice=f"not started: {failed.notice}", tone="error")
    label = "" if named else (f"unsaved edit of {doc.name}" if doc.name else "unsaved workflow")
    try:
        row, warnings = await submit_checked(services, graph, workflow=doc.name if named else None,
                                             workflow_version=doc.version if named else None, label=label)
    except ValidationError as exc:
        return replace(doc, problems=_problems(exc), notice=f"not started: {exc.message}", tone="error")
    except TunelogError as exc:
        return notify(doc, f"not started: {exc.message}", "error")
    warned = "; ".join(f"{w}: {m}" for w, m in warnings)
    return replace(doc, run_id=row.run_id, problems=(), tone="ok",
                   notice=f"run {row.run_id} started" + (f" (warnings: {warned})" if warned else ""))


def latest_run(services: Any, name: str) -> str | None:
    """The most recent run of a saved workflow, to show its node states on opening."""
    runs = [r for r in services.tables.runs.all() if r.workflow == name]
    return max(runs, key=lambda r: r.submitted_position).run_id if runs else None


def run_status(services: Any, run_id: str | None) -> RunStatus | None:
    """Where each node of a run stands (None when there is no such run)."""
    row = services.tables.runs.get(run_id) if run_id else None
    if row is None:
        return None
    nodes = {}
    for node_id, node in row.nodes.items():
        state, detail = node.state, node.error
        if state in NODE_ACTIVE and node.job_id:
            job = services.tables.jobs.get(node.job_id)
            # a job that already succeeded stays `running` until the executor records the node
            if job is not None and job.state in (JobState.RUNNING, JobState.SUCCEEDED):
                state = "running"
                detail = f"step {job.step}/{job.total}" if job.total else (f"step {job.step}" if job.step else "")
        nodes[node_id] = {"state": state, "detail": detail}
    return {"run": row.run_id, "state": row.state, "nodes": nodes}
