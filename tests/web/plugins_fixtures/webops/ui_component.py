"""A page this plugin contributes to the web UI (`component(services)`)."""

from __future__ import annotations

from typing import Any


def component(services: Any) -> Any:
    from reactpy import html

    runs = services.store.rows("runs")
    return html.div({"id": "webops-panel"}, html.p(f"webops sees {len(runs)} runs"))
