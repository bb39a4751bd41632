"""A run's history: checkpoints, the timeline of its events, and its lineage tree."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from reactpy import component, hooks, html

from tunelog.daemon.runs.facts import checkpoints, lineage_rows
from tunelog.daemon.runs.lineage import lineage
from tunelog.events.run_state import RunRow
from tunelog.events.streams import job_stream, run_stream
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import badge, compact, link, short, table, when

JOB_LIFECYCLE = ("job-queued", "job-started", "job-checkpointed", "job-artifact", "job-cancel-requested",
                 "job-succeeded", "job-failed", "job-cancelled", "job-interrupted", "training-started")
"""Job events worth a line in a run's timeline (metrics, progress and log lines are not)."""
TIMELINE_SHOWN = 200
LINEAGE_REFRESH_S = 2.0


def timeline(ui: Ui, run: RunRow) -> list[Any]:
    """The run's own events and its jobs' lifecycle events, in log order (the newest last)."""
    store = ui.services.store
    envs = list(store.read(stream=run_stream(run.run_id)))
    for job_id in ui.run_jobs(run):
        envs += store.read(stream=job_stream(job_id), types=JOB_LIFECYCLE)
    envs.sort(key=lambda e: e.position)
    return envs[-TIMELINE_SHOWN:]


def event_summary(env: Any) -> str:
    """The interesting fields of an event in one line (bulky ones left out)."""
    data = msgspec.to_builtins(env.event)
    for bulky in ("graph", "traceback", "last_lines", "params", "libraries", "device", "model", "dataset",
                  "determinism", "order", "code"):
        data.pop(bulky, None)
    for implied in ("run_id", "type"):  # the run is the page's, the type has its own column
        data.pop(implied, None)
    return compact(data, 160)


def tree_view(entry: dict[str, Any]) -> Any:
    """A lineage entry and its children as nested lists; the focused run is outlined."""
    if entry["kind"] == "run":
        name: Any = link(f"/runs/{entry['id']}", entry["id"], className="mono")
    elif entry["kind"] == "adapter":
        name = link(f"/adapters#{entry['id']}", f"adapter {short(entry['id'])}", className="mono")
    else:
        name = html.span({"className": "mono"}, short(entry["id"], 24) if entry["kind"] == "job" else entry["kind"])
    kids = [html.li({"key": c["id"]}, tree_view(c)) for c in entry.get("children") or []]
    return html.div(
        html.span({"className": "focus" if entry.get("focus") else ""}, f"{entry['relation']}: ", name),
        " ", entry.get("label") or "", " ", badge(entry["state"]) if entry.get("state") else "",
        html.ul({"className": "tree"}, kids) if kids else "",
    )


@component
def Lineage(ui: Ui, run: RunRow) -> Any:
    """Where the run sits among replays, forks, resumes, adapters and merges (refreshed every ~2 s)."""
    tick = int(time.monotonic() / LINEAGE_REFRESH_S)

    def build() -> dict[str, Any]:
        rows = lineage_rows(ui.services.store)
        return lineage(run.run_id, rows["runs"], resumes=rows["resumes"], jobs=rows["jobs"],
                       adapters=rows["adapters"])

    tree = hooks.use_memo(build, [run.run_id, run.state, tick])
    return html.section({"className": "panel", "id": "lineage"}, html.h2("Lineage"), tree_view(tree))


@component
def RunHistory(ui: Ui, run: RunRow) -> Any:
    """Checkpoints, timeline and lineage of a run."""
    saved = [(f"{c['job']}-{c['position']}", [c["step"], html.span({"className": "mono"}, short(c["job"], 14)),
                                                html.span({"className": "mono"}, short(c["sha256"]))])
             for node in run.order for c in checkpoints(ui.services.store, ui.node_jobs(run, node))]
    events = [(str(e.position), [e.position, when(e.time), html.span({"className": "mono"}, e.type),
                                 html.span({"className": "mono"}, event_summary(e))]) for e in timeline(ui, run)]
    return html.div(
        html.section({"className": "panel", "id": "checkpoints"}, html.h2("Checkpoints"),
                     table(("STEP", "JOB", "ARTIFACT"), saved) if saved else html.p({"className": "muted"}, "none")),
        html.section({"className": "panel", "id": "timeline"}, html.h2("Events"),
                     table(("POS", "TIME", "TYPE", "DETAILS"), events, className="grid events")),
        Lineage(ui, run),
    )
