"""Workflows: the saved workflows, and the workflow editor.

The editor (react-flow, bundled offline) lives in `frontends/web/editor/` and is mounted here
as `WorkflowEditor(services=..., workflow=name)`; without its browser bundle it says how to build it.
"""

from __future__ import annotations

from typing import Any

from reactpy import component, html

from tunelog.frontends.web.editor.component import WorkflowEditor
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import link, table, when


@component
def WorkflowList(ui: Ui) -> Any:
    """The saved workflows; follows the log (on its own, so the editor is not re-rendered with it)."""
    use_head(ui)
    flows = sorted(ui.services.tables.workflows.all(), key=lambda w: w.name)
    rows = [(w.name, [link(f"/workflows/{w.name}", w.name), str(w.version), str(len(w.graph.get("nodes") or {})),
                      w.graph.get("description") or "", when(w.saved_at)]) for w in flows]
    return table(("NAME", "VERSION", "NODES", "DESCRIPTION", "SAVED"), rows, id="workflows") \
        if rows else html.p({"className": "muted"}, "No saved workflows yet.")


@component
def WorkflowsPage(ui: Ui, name: str | None = None, *, query: dict[str, str]) -> Any:
    """Saved workflows, with the editor below (for `name`, or a new workflow)."""
    return html.div(
        html.h1(f"Workflow {name}" if name else "Workflows"),
        WorkflowList(ui),
        html.p(link("/workflows", "new workflow")) if name else "",
        html.div({"id": "editor"}, WorkflowEditor(services=ui.services, workflow=name)),
    )
