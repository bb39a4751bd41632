"""A page this plugin contributes to the web UI (`component(api)`, api: tunelog.plugins.api.UiApi)."""

from __future__ import annotations

from typing import Any

from reactpy import component as reactpy_component
from reactpy import html


def component(api: Any) -> Any:
    return WebopsPanel(api)


@reactpy_component
def WebopsPanel(api: Any) -> Any:
    api.use_log_head()
    note, set_note = api.use_form("note", "")
    return html.div({"id": "webops-panel"},
                    html.p(f"webops sees {len(api.runs())} runs and {len(api.operations())} operations; "
                           f"manifest {api.manifest.name} {api.manifest.version}"),
                    html.input({"id": "webops-note", "value": note, "onChange": lambda e: set_note(e["target"]["value"])}),
                    html.p({"id": "webops-services"}, f"has services: {hasattr(api, 'services')}"))
