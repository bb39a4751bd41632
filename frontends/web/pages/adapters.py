"""Adapters: every adapter with where it came from (a run's node, or a merge of others). Merging
them is the adapter_merge plugin's page (`plugins/adapter_merge/ui_component.py`)."""

from __future__ import annotations

from typing import Any

from reactpy import component, html

from tunelog.events.run_state import AdapterRow
from tunelog.frontends.web.live import use_head
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


@component
def AdaptersPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """The adapter list with lineage, and the merge form; follows the log."""
    use_head(ui)
    adapters = sorted(ui.services.tables.adapters.all(), key=lambda a: a.created_at, reverse=True)
    rows = [(a.sha256, [html.span({"className": "mono", "id": a.sha256}, short(a.sha256)), kind(a), origin(a),
                        html.span({"className": "mono"}, ui.adapter_base(a) or "-"), when(a.created_at)])
            for a in adapters]
    return html.div(
        html.h1("Adapters"),
        table(("ADAPTER", "KIND", "FROM", "BASE MODEL", "CREATED"), rows, id="adapters")
        if rows else html.p({"className": "muted"}, "No adapters yet: train one (`tunectl train`)."),
        html.p(link("/plugin-pages/adapter_merge", "Merge adapters", id="merge-link"),
               " (the adapter_merge plugin's page)"),
        html.section({"id": "export-slot", "className": "muted"}),  # issue 12: export from here
    )
