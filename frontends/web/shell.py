"""The page frame: navigation, and which page a URL shows (pages are real URLs, one module each).

ReactPy's client opens its websocket at `/_reactpy/stream<path>`, so the root component knows
the page's path from its connection; a link is an ordinary page load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from reactpy import component, html, use_location

from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.style import CSS
from tunelog.frontends.web.ui import Ui

NAV = (("/", "Runs"), ("/workflows", "Workflows"), ("/adapters", "Adapters"), ("/playground", "Playground"),
       ("/plugins", "Plugins"), ("/events", "Events"), ("/plugin-pages", "Plugin pages"))


def head() -> Any:
    """Elements of the page <head>: title, icon and the inline stylesheet."""
    return html.head(
        html.title("tunelog"),
        html.meta({"name": "viewport", "content": "width=device-width, initial-scale=1"}),
        html.link({"rel": "icon", "href": "/_reactpy/assets/reactpy-logo.ico", "type": "image/x-icon"}),
        html.style(CSS),
    )


def route(path: str) -> tuple[str, list[str]]:
    """(page name, URL parameters) for a path, e.g. `/runs/r01` -> ("run", ["r01"])."""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if not parts:
        return "runs", []
    first, rest = parts[0], parts[1:]
    if first == "runs":
        return ("run", rest[:1]) if rest else ("runs", [])
    if first == "jobs" and len(rest) == 1:
        return "job", rest
    if first in ("workflows", "plugin-pages") and len(rest) <= 1:
        return first, rest
    if first in ("adapters", "playground", "plugins", "events") and not rest:
        return first, []
    return "not-found", parts


def _page(name: str) -> Callable[..., Any] | None:
    """The page component for a route name (imported on first use)."""
    from tunelog.frontends.web.pages import (
        adapters,
        events,
        job,
        playground,
        plugin_pages,
        plugins,
        run,
        runs,
        workflows,
    )

    return {"runs": runs.RunsPage, "run": run.RunPage, "job": job.JobPage, "workflows": workflows.WorkflowsPage,
            "adapters": adapters.AdaptersPage, "playground": playground.PlaygroundPage,
            "plugins": plugins.PluginsPage, "events": events.EventsPage,
            "plugin-pages": plugin_pages.PluginPagesPage}.get(name)


@component
def HeadBadge(ui: Ui) -> Any:
    """The log position, live: shows that the page is connected and following."""
    head = use_head(ui)
    return html.span({"className": "head", "id": "log-head", "title": "events in the log"},
                     f"tunelog {ui.services.version} · log position {head}")


@component
def PluginNav(ui: Ui, active: str) -> Any:
    """Links to the pages of the plugins loaded now (a plugin's page leaves with the plugin)."""
    use_head(ui)
    from tunelog.frontends.web.pages.plugin_pages import nav_entries

    return html.span({"className": "plugin-nav", "id": "plugin-nav"},
                     [html.a({"key": href, "href": href, "className": "active" if href == active else "",
                              "data-plugin": name}, title) for name, href, title in nav_entries(ui)])


@component
def Root(ui: Ui) -> Any:
    """Navigation plus the page the URL names."""
    location = use_location()
    name, params = route(location.pathname)
    query = {k: v[-1] for k, v in parse_qs(location.search.lstrip("?")).items()}
    page = _page(name)
    active = "/" + location.pathname.strip("/").split("/")[0] if location.pathname.strip("/") else "/"
    nav = html.nav({"className": "top"}, html.span({"className": "brand"}, "tunelog"),
                   [html.a({"key": href, "href": href, "className": "active" if href == active else ""}, text)
                    for href, text in NAV],
                   PluginNav(ui, location.pathname.rstrip("/")),
                   HeadBadge(ui))
    body = page(ui, *params, query=query) if page is not None else html.div(
        html.h1("Not found"), html.p(f"No page at {location.pathname}."))
    return html.div({"className": "app", "data-page": name}, nav, html.main(body))
