"""Plugins: version, code hash, status and the error of a failed load; reload one or all."""

from __future__ import annotations

from typing import Any

from reactpy import component, hooks, html

from tunelog.events.errors import TunelogError
from tunelog.events.state import PluginRow
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import (
    badge,
    button,
    error_notice,
    notice_view,
    ok_notice,
    short,
    table,
    use_notice,
    when,
)


def problem_view(p: PluginRow) -> Any:
    """Why the last change of a plugin did not load (the previous good code still serves)."""
    if not p.error:
        return ""
    problems = [html.li({"key": str(i)}, f"{x.get('where', '')}: {x.get('message', '')}")
                for i, x in enumerate(p.problems)]
    return html.div({"className": "error-text"}, p.error, html.ul(problems) if problems else "",
                    html.details(html.summary("traceback"), html.pre(p.traceback)) if p.traceback else "")


@component
def PluginsPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """The plugin list with reload buttons; follows the log."""
    use_head(ui)
    notice, set_notice = use_notice()
    busy, set_busy = hooks.use_state(False)
    plugins = sorted(ui.services.tables.plugins.all(), key=lambda p: p.name)

    async def reload(name: str | None) -> None:
        set_busy(True)
        try:
            rows = await ui.services.plugins.reload(name)
        except TunelogError as exc:
            set_notice(error_notice(exc))
        else:
            states = ", ".join(f"{r.name} {r.status}" for r in rows) or "nothing to reload"
            set_notice(ok_notice(f"reloaded: {states}"))
        finally:
            set_busy(False)

    def on_reload(name: str | None) -> Any:
        async def handle(_: Any) -> None:  # an async handler: reactpy awaits it
            await reload(name)

        return handle

    rows = [(p.name, [html.b(p.name), p.version or "-", p.source, badge(p.status),
                      html.span({"className": "mono", "title": p.code_hash}, short(p.code_hash)),
                      str(len(p.manifest.get("operations") or {})), when(p.updated_at), problem_view(p),
                      button("Reload", on_reload(p.name), disabled=busy, id=f"reload-{p.name}")])
            for p in plugins]
    return html.div(
        html.h1("Plugins"),
        html.div({"className": "row"}, button("Reload all", on_reload(None), disabled=busy, id="reload-all")),
        notice_view(notice),
        table(("PLUGIN", "VERSION", "SOURCE", "STATUS", "CODE", "OPS", "UPDATED", "ERROR", ""), rows, id="plugins"),
        html.p({"className": "muted"}, "Plugins are code and run with your rights. A failed change keeps the last "
                                       "good version serving; fix the folder and it reloads by itself."),
    )
