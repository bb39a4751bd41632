"""One run: state, actions, live metric charts per node, nodes, the recorded config, history.

The configuration shown is the graph exactly as the RunSubmitted event recorded it (parameters
resolved, plugin code pinned): a record, never a form. Changing it means a fork or a new run.
"""

from __future__ import annotations

from typing import Any

from reactpy import component, hooks, html

from tunelog.events import runs as R
from tunelog.events.errors import NotFoundError, TunelogError
from tunelog.events.jobs import progress_note
from tunelog.events.run_state import RunRow
from tunelog.events.streams import run_stream
from tunelog.frontends.data_counts import data_counts
from tunelog.frontends.web.charts import line_chart
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.pages.job_failure import failure_view
from tunelog.frontends.web.pages.run_actions import RunActions
from tunelog.frontends.web.pages.run_history import RunHistory
from tunelog.frontends.web.pages.runs import origin
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import badge, compact, json_block, link, short, table, when


def header(run: RunRow) -> Any:
    return html.div(
        html.h1("Run ", html.span({"className": "mono"}, run.run_id), " ", badge(run.state)),
        html.p(html.b(run.label or "(no label)"), "  ", origin(run)),
        html.p({"className": "muted"}, f"submitted {when(run.submitted_at)}",
               f" · finished {when(run.finished_at)}" if run.finished_at else "",
               " · cancel requested" if run.cancel_requested and run.state == "running" else ""),
    )


def node_cells(ui: Ui, run: RunRow, node_id: str) -> list[Any]:
    node, spec = run.nodes[node_id], run.graph["nodes"][node_id]
    job = ui.services.tables.jobs.get(node.job_id) if node.job_id else None
    progress = ""
    if job is not None:
        progress = f"step {job.step}/{job.total}" if job.total else (f"step {job.step}" if job.step else "")
        progress += f" {progress_note(job.message)}" if job.message and job.state == "running" else ""
    outputs = [html.div({"key": port}, f"{port}: ", html.span({"className": "mono"},
                        short(v) if isinstance(v, str) and len(v) == 64 else compact(v, 80)))
               for port, v in node.outputs.items()]
    return [html.b(node_id), spec["op"], badge(node.state),
            html.span({"className": "mono"},
                      *[html.span({"key": j}, link(f"/jobs/{j}", short(j, 14)), " ") for j in node.jobs] or "-"),
            progress, html.div(*outputs, html.div({"className": "error-text"}, node.error) if node.error else "")]


def failures(ui: Ui, run: RunRow) -> Any:
    """Why each failed node's job failed, whole (the table shows only its first line)."""
    shown = []
    for node_id in run.order:
        node = run.nodes[node_id]
        job = ui.services.tables.jobs.get(node.job_id) if node.state == "failed" and node.job_id else None
        if job is not None and job.state == "failed":
            shown.append(html.div({"key": node_id}, failure_view(job, node=node_id)))
    return html.section({"className": "panel", "id": "failures"}, html.h2("Why it failed"), shown) if shown else ""


def node_charts(ui: Ui, run: RunRow) -> list[Any]:
    """One panel of line charts per node that reported chart metrics."""
    out = []
    for node_id in run.order:
        jobs = ui.node_jobs(run, node_id)
        names = ui.metrics.metric_names(ui.services, jobs)
        if not names:
            continue
        charts = []
        for name in names:
            points, ts = ui.metrics.curve(ui.services, jobs, name)
            charts.append(line_chart(points, title=name, ts=ts, key=f"{node_id}-{name}"))
        out.append(html.section({"className": "panel", "key": node_id, "data-node": node_id},
                                html.h2(f"Metrics: {node_id}"), html.div({"className": "charts"}, charts)))
    return out


@component
def ConfigSnapshot(ui: Ui, run_id: str) -> Any:
    """The graph and plugin code as recorded when the run was submitted."""
    submitted = hooks.use_memo(lambda: next((e for e in ui.services.store.read(
        stream=run_stream(run_id), types=["run-submitted"], limit=1)), None), [run_id])
    if submitted is None or not isinstance(submitted.event, R.RunSubmitted):
        return html.p("No RunSubmitted event for this run.")
    e = submitted.event
    rows = [(n, [html.b(n), spec.get("op"), json_block(spec.get("params") or {}),
                 json_block(spec.get("inputs") or {}),
                 html.span({"className": "mono"}, f"{e.code.get(n, {}).get('plugin', '')} "
                           f"{e.code.get(n, {}).get('version', '')} {short(e.code.get(n, {}).get('code_hash'))}")])
            for n, spec in e.graph.get("nodes", {}).items()]
    flags = [f"log position {submitted.position}", f"recorded {when(submitted.time)}"]
    flags += ["no cache"] if e.no_cache else []
    flags += [f"forced: {', '.join(e.force)}"] if e.force else []
    return html.section(
        {"className": "panel", "id": "config"},
        html.h2("Recorded configuration"),
        html.p({"className": "muted"}, " · ".join(flags)),
        table(("NODE", "OP", "PARAMS", "INPUTS", "CODE"), rows),
    )


@component
def RunPage(ui: Ui, run_id: str, *, query: dict[str, str]) -> Any:
    """The run page; follows the log."""
    use_head(ui)
    try:
        run = ui.services.runs.find(run_id)
    except NotFoundError:
        return html.div(html.h1("Run not found"), html.p(f"No run {run_id!r}. "), link("/", "All runs"))
    except TunelogError as exc:
        return html.div(html.h1("Run"), html.p(str(exc)))
    return html.div(
        {"data-run": run.run_id, "data-state": run.state},
        header(run),
        RunActions(ui, run),
        *node_charts(ui, run),
        html.section({"className": "panel"}, html.h2("Nodes"),
                     table(("NODE", "OP", "STATE", "JOBS", "PROGRESS", "OUTPUTS"),
                           [(n, node_cells(ui, run, n)) for n in run.order], id="nodes"),
                     *[html.p({"className": "data-counts", "key": f"data-{i}"}, line) for i, line in
                       enumerate(data_counts(run.nodes[n].outputs for n in run.order))]),
        failures(ui, run),
        ConfigSnapshot(ui, run.run_id),
        RunHistory(ui, run),
    )
