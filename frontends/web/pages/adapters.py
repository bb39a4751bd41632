"""Adapters: every adapter with where it came from (a run's node, or a merge of others), and an
Export action per adapter. Merging them is the adapter_merge plugin's page, exporting one the
export plugin's (`plugins/*/ui_component.py`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from reactpy import component, html

from tunelog.events.run_state import AdapterRow
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.pages.plugin_pages import nav_entries
from tunelog.frontends.web.paging import newest_page
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import link, run_link, short, table, when


def origin(a: AdapterRow) -> Any:
    """`run R, node N`, or the merged parents with their weights."""
    if a.source == "merge":
        parents = [html.li({"key": f"{i}"}, f"{p.get('weight', 1):g} × ",
                           link(f"#{p.get('sha256')}", short(p.get("sha256")), className="mono"))
                   for i, p in enumerate(a.parents)]
        return html.div("merge of", html.ul({"className": "tree"}, parents))
    return html.span("run ", run_link(a.run_id), f", node {a.node}")


def kind(a: AdapterRow) -> str:
    if a.source != "merge":
        return "trained"
    exact = {True: "exact", False: "approximate", None: ""}[a.exact]
    return f"{a.merge_type} merge" + (f" ({exact})" if exact else "")


def actions(a: AdapterRow, pages: set[str]) -> Any:
    """Links to the plugin pages that act on one adapter (export), while their plugin is loaded."""
    if "export" not in pages:
        return ""
    return link(f"/plugin-pages/export?{urlencode({'adapter': a.sha256})}", "Export",
                className="export-link", **{"data-sha": a.sha256})


SHOWN = 50
"""Adapters on one page, newest first."""


@component
def AdaptersPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """One page of the adapter list with lineage (`?before=` a log position for older ones); follows the log."""
    use_head(ui)
    page = newest_page(ui.services.tables.adapters, query, position="created_position", shown=SHOWN,
                       path="/adapters", what="adapters")
    if page.error is not None:
        return html.div(html.h1("Adapters"), page.error, page.links)
    pages = {name for name, _, _ in nav_entries(ui)}
    rows = [(a.sha256, [html.span({"className": "mono", "id": a.sha256}, short(a.sha256)), kind(a), origin(a),
                        html.span({"className": "mono"}, ui.adapter_base(a) or "-"), when(a.created_at),
                        actions(a, pages)])
            for a in page.rows]
    return html.div(
        html.h1("Adapters"),
        table(("ADAPTER", "KIND", "FROM", "BASE MODEL", "CREATED", ""), rows, id="adapters")
        if rows else html.p({"className": "muted"}, "No adapters before this one." if "before" in query else
                            "No adapters yet: train one (`tunectl train`)."),
        page.links,
        html.p(link("/plugin-pages/adapter_merge", "Merge adapters", id="merge-link"),
               " (the adapter_merge plugin's page)"),
    )
