"""Runs: every run, newest first, with its state, progress and a live loss sparkline."""

from __future__ import annotations

from typing import Any

from reactpy import component, html

from tunelog.events.run_state import NODE_ENDED, RunRow
from tunelog.frontends.web.charts import fmt, sparkline
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.paging import newest_page
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import badge, link, run_link, table, when

SHOWN = 50
"""Runs on one page, newest first; `?before=N` pages to the runs submitted before log position N.
A page is read through the runs table's index, so it costs the same with 10 runs or 10 k."""


def progress(ui: Ui, run: RunRow) -> str:
    """`nodes done/total`, plus the running job's step and latest loss."""
    done = sum(1 for n in run.nodes.values() if n.state in NODE_ENDED)
    text = f"{done}/{len(run.nodes)} nodes"
    for node_id in run.order:
        node = run.nodes[node_id]
        job = ui.services.tables.jobs.get(node.job_id) if node.state == "running" and node.job_id else None
        if job is not None and job.state == "running":
            step = f"{job.step}/{job.total}" if job.total else str(job.step)
            loss = job.metrics.get("loss")
            text += f" · {node_id} step {step}" + (f" loss {fmt(loss)}" if isinstance(loss, int | float) else "")
            break
    return text


def origin(run: RunRow) -> Any:
    """Where a run came from: a workflow, a replay or a fork."""
    if run.replay_of:
        return html.span("replay of ", run_link(run.replay_of))
    if run.forked_from:
        return html.span("fork of ", run_link(run.forked_from.get("run")))
    if run.workflow:
        return link(f"/workflows/{run.workflow}", f"{run.workflow} v{run.workflow_version}")
    return ""


def run_cells(ui: Ui, run: RunRow) -> list[Any]:
    points, ts = ui.metrics.curve(ui.services, ui.run_jobs(run), "loss")
    return [run_link(run.run_id), run.label, badge(run.state), progress(ui, run), sparkline(points, ts=ts),
            origin(run), when(run.submitted_at)]


@component
def RunsPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """One page of the runs list; follows the log."""
    use_head(ui)
    page = newest_page(ui.services.tables.runs, query, position="submitted_position", shown=SHOWN, path="/",
                       what="runs")
    if page.error is not None:
        return html.div(html.h1("Runs"), page.error, page.links)
    if not page.rows:
        return html.div(html.h1("Runs"), html.p({"className": "muted"}, "No runs before this one." if "before" in query
                        else "No runs yet. Start one with `tunectl train`, `tunectl workflow submit`, or the workflow editor."),
                        page.links)
    return html.div(
        html.h1("Runs"),
        table(("RUN", "LABEL", "STATE", "PROGRESS", "LOSS", "FROM", "SUBMITTED"),
              [(r.run_id, run_cells(ui, r)) for r in page.rows], id="runs"),
        page.links,
    )
