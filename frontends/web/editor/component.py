"""WorkflowEditor: the ReactPy component that edits, saves, validates and runs a workflow.

    WorkflowEditor(services=services, workflow="name")   # or workflow=None for a new one

The graph lives here (a `Doc`); the canvas (bundle.py) gets it as props and reports coarse
edits, each one plain JSON object, which reducers in doc.py apply. Node states of the shown run
follow the daemon's commit notifier, throttled, and re-render only when they change.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from reactpy import component, hooks, html

from tunelog.frontends.web.editor import commands
from tunelog.frontends.web.editor import doc as D
from tunelog.frontends.web.editor.bundle import BUILD_HINT, canvas_component
from tunelog.frontends.web.editor.catalog import browser_schemas, load_catalog, palette
from tunelog.frontends.web.editor.view import flow_edges, flow_nodes, split_problems

MIN_INTERVAL_S = 0.05
"""At most one node-state render per this many seconds (bursts of commits coalesce)."""
WAIT_S = 2.0
"""Longest wait for a commit before looking again anyway."""
CANVAS_HEIGHT = 600

CSS = """
.tl-wfe{font:13px system-ui,sans-serif;color:#e6e6e6;background:#12151c;border:1px solid #2b3140;border-radius:6px}
.tl-wfe-bar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;padding:8px 10px;border-bottom:1px solid #2b3140}
.tl-wfe-bar button{background:#2b3140;color:#e6e6e6;border:1px solid #4a5163;border-radius:4px;padding:4px 10px;cursor:pointer}
.tl-wfe-bar button:hover{background:#3b4252}
.tl-wfe-bar input{background:#10131a;color:#eee;border:1px solid #4a5163;border-radius:3px;padding:3px 6px}
.tl-wfe-dirty{color:#f0b429}.tl-wfe-muted{color:#8fa1b3}
.tl-wfe-notice{padding:4px 10px;min-height:18px;font-size:12px}
.tl-wfe-notice.ok{color:#8ce99a}.tl-wfe-notice.error{color:#ff8787}.tl-wfe-notice.info{color:#a9b4c6}
.tl-wfe-problems{margin:0;padding:2px 10px 6px 28px;color:#ff8787;font-size:12px}
.tl-wfe-body{display:flex}
.tl-wfe-palette{width:180px;flex:none;overflow:auto;border-right:1px solid #2b3140;padding:6px}
.tl-wfe-palette summary{cursor:pointer;font-weight:600;margin:4px 0}
.tl-wfe-palette button{display:block;width:100%;text-align:left;margin:2px 0;background:#1f2430;color:#e6e6e6;border:1px solid #333a48;border-radius:4px;padding:3px 6px;cursor:pointer;font-size:12px}
.tl-wfe-main{flex:1;min-width:0}
.tl-wfe-missing{padding:16px;color:#ffb3b3}
"""


def use_run_status(services: Any, run_id: str | None) -> commands.RunStatus | None:
    """The node states of a run, following the commit notifier while the run is running."""
    status, set_status = hooks.use_state(lambda: commands.run_status(services, run_id))

    @hooks.use_effect(dependencies=[run_id])
    async def follow() -> None:
        last = commands.run_status(services, run_id)
        set_status(last)
        next_at = 0.0
        while last is not None and last["state"] == "running":
            await services.notifier.wait(WAIT_S)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = commands.run_status(services, run_id)
            if now != last:
                set_status(now)
                last, next_at = now, time.monotonic() + MIN_INTERVAL_S

    return status


def _button(label: str, key: str, on_click: Callable[[Any], None], title: str = "") -> Any:
    return html.button({"id": f"editor-{key}", "type": "button", "title": title, "onClick": on_click}, label)


def _toolbar(doc: D.Doc, status: commands.RunStatus | None, act: Callable[[Callable[[D.Doc], D.Doc]], Any],
             services: Any) -> Any:
    if doc.version:
        name = html.b({"id": "editor-name"}, doc.name)
    else:
        name = html.input({"id": "editor-name", "placeholder": "workflow name", "defaultValue": doc.name,
                           "onChange": lambda e: act(lambda d: D.on_rename(d, str(e["target"]["value"])))})
    version = f"v{doc.version}" if doc.version else "never saved"
    run = (f"run {status['run']}: {status['state']}" if status else "")
    return html.div(
        {"className": "tl-wfe-bar"},
        name,
        html.span({"id": "editor-version", "className": "tl-wfe-muted", "data-version": doc.version}, version),
        html.span({"id": "editor-dirty", "className": "tl-wfe-dirty"},
                  "unsaved changes" if doc.dirty else "layout not saved" if doc.moved else ""),
        _button("Save", "save", lambda e: act(lambda d: commands.save(services, d)), "save as a new version"),
        _button("Validate", "validate", lambda e: act(lambda d: commands.validate(services, d))),
        _button("Run", "run", functools.partial(_run, services, doc, act),
                "run the saved version (or the edited graph when it has unsaved changes)"),
        _button("Arrange", "arrange", lambda e: act(D.on_arrange), "lay the graph out again"),
        html.span({"id": "editor-run-state", "className": "tl-wfe-muted",
                   "data-run": status["run"] if status else "", "data-state": status["state"] if status else ""}, run),
    )


async def _run(services: Any, doc: D.Doc, act: Callable[[Callable[[D.Doc], D.Doc]], Any], _: Any) -> None:
    """Run the doc as shown when clicked (the checks run in a throwaway process: awaited, not blocking)."""
    done = await commands.run(services, doc)
    act(lambda d: done)


def _palette(catalog: Any, act: Callable[[Callable[[D.Doc], D.Doc]], Any]) -> Any:
    groups = [html.details(
        {"key": plugin, "open": True},
        html.summary(plugin),
        *[html.button({"key": op.name, "type": "button", "data-op": op.name, "title": op.spec.description,
                       "onClick": lambda e, name=op.name: act(lambda d: D.on_add(d, name))},
                      op.name.split(".", 1)[1]) for op in ops],
    ) for plugin, ops in palette(catalog)]
    return html.div({"id": "editor-palette", "className": "tl-wfe-palette"},
                    *(groups or [html.p({"className": "tl-wfe-muted"}, "No plugin is loaded.")]))


@component
def WorkflowEditor(services: Any, workflow: str | None = None) -> Any:
    """Edit the saved workflow `workflow` (latest version), or a new one when None."""
    doc, set_doc = hooks.use_state(lambda: commands.open_doc(services, workflow))
    opened = hooks.use_ref(workflow)

    @hooks.use_effect(dependencies=[workflow])
    def reopen() -> None:
        if opened.current != workflow:
            opened.current = workflow
            set_doc(commands.open_doc(services, workflow))

    status = use_run_status(services, doc.run_id)
    canvas = canvas_component()
    if canvas is None:
        return html.div({"className": "tl-wfe tl-wfe-missing notice notice-error", "id": "editor-missing"},
                        html.style(CSS), "Error: the workflow editor's browser code (frontends/web/static/bundle/"
                                         f"editor.js) is not built: {BUILD_HINT}.")

    def act(step: Callable[[D.Doc], D.Doc]) -> None:
        set_doc(step)  # functional update: applied at once to the latest doc

    catalog = load_catalog(services.tables.plugins)
    by_node, general = split_problems(doc.graph, list(doc.problems))
    states = (status or {}).get("nodes", {}) if status and status["run"] == doc.run_id else {}
    props = {
        "nodes": flow_nodes(doc.graph, catalog, problems=by_node, states=states),
        "edges": flow_edges(doc.graph, states),
        "operations": browser_schemas(catalog),
        "arrange": doc.arrange,
        "height": CANVAS_HEIGHT,
        "onConnect": lambda ev: act(lambda d: D.on_connect(d, catalog, ev)),
        "onMove": lambda ev: act(lambda d: D.on_move(d, ev)),
        "onDelete": lambda ev: act(lambda d: D.on_delete(d, ev)),
        "onEdit": lambda ev: act(lambda d: D.on_edit(d, catalog, ev)),
    }
    return html.div(
        {"className": "tl-wfe", "id": "workflow-editor"},
        html.style(CSS),
        _toolbar(doc, status, act, services),
        html.div({"id": "editor-notice", "className": f"tl-wfe-notice {doc.tone}"}, doc.notice),
        html.ul({"id": "editor-problems", "className": "tl-wfe-problems"},
                *[html.li({"key": str(i)}, m) for i, m in enumerate(general)]),
        html.div({"className": "tl-wfe-body", "style": {"height": f"{CANVAS_HEIGHT}px"}},
                 _palette(catalog, act),
                 html.div({"className": "tl-wfe-main"}, canvas(props))),
    )
