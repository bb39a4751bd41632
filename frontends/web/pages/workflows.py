"""Workflows: the saved workflows, and the workflow editor.

The editor (react-flow, bundled offline) lives in `frontends/web/editor/` and is mounted here
as `WorkflowEditor(services=..., workflow=name)`; until that package exists the page says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from typing import Any

from reactpy import component, html

from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import link, table, when

EDITOR_MODULE = "tunelog.frontends.web.editor.component"


def editor_component() -> tuple[Any, str]:
    """(WorkflowEditor, '') when the editor package is installed, else (None, why not)."""
    try:
        if importlib.util.find_spec("tunelog.frontends.web.editor") is None or \
                importlib.util.find_spec(EDITOR_MODULE) is None:
            return None, ""
        return importlib.import_module(EDITOR_MODULE).WorkflowEditor, ""
    except Exception:  # a broken editor must not take the other pages down
        return None, traceback.format_exc()


def editor_view(ui: Ui, name: str | None) -> Any:
    """The editor for a workflow (None: a new one), or a placeholder while it is not there."""
    editor, error = editor_component()
    if editor is not None:
        return html.div({"id": "editor"}, editor(services=ui.services, workflow=name))
    if error:
        return html.div({"id": "editor-error", "className": "notice notice-error"},
                        "The workflow editor failed to load:", html.pre(error))
    return html.div({"id": "editor-placeholder", "className": "panel"},
                    html.h2("Workflow editor: coming soon"),
                    html.p("The graph editor (react-flow, served from this daemon, no CDN) is being built. "
                           "Meanwhile: `tunectl workflow validate|submit FILE` and `tunectl workflow show NAME`."))


@component
def WorkflowList(ui: Ui) -> Any:
    """The saved workflows; follows the log (on its own, so the editor is not re-rendered with it)."""
    use_head(ui)
    flows = sorted(ui.services.store.rows("workflows"), key=lambda w: w.name)
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
        editor_view(ui, name),
    )
