"""Pages that plugins contribute: a plugin folder with `ui_component.py` defining
`component(api)` (returning ReactPy VDOM or a component) gets a page here and an entry in the
navigation while the plugin is loaded. `api` is the narrow `tunelog.plugins.api.UiApi`
(`WebUiApi`), never the daemon's services.

A reload of the plugin re-renders the open page with the new code; what the user typed survives
in the page's form memory (`UiApi.use_form`), which outlives the plugin's component. A plugin
whose latest version failed to load keeps serving its last good page, with the failure above it.

The module is imported lazily, when its page is first opened, from the plugin's code snapshot
(the exact code of the loaded version), into the daemon process: like every plugin, it is code
that runs with the user's rights. A failing import shows its traceback on the page.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import msgspec
from reactpy import component, hooks, html
from reactpy.core.component import Component

from tunelog.events.state import PluginRow
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.plugin_api import WebUiApi
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import link, short, table
from tunelog.plugins.api import Manifest

UI_MODULE = "ui_component"
_loaded: dict[Path, ModuleType] = {}
"""Imported ui_component modules by snapshot folder (a snapshot never changes: its name is its hash)."""


def snapshot_dir(ui: Ui, row: PluginRow) -> Path | None:
    """The snapshot of the plugin's serving code, if it has a UI module."""
    if not row.code_hash or row.status == "removed":  # removed: its page leaves the nav and the list
        return None
    folder = ui.services.paths.plugin_code / row.code_hash
    return folder if (folder / f"{UI_MODULE}.py").is_file() else None


def contributing(ui: Ui) -> list[tuple[PluginRow, Path]]:
    """Plugins that contribute a page, by name."""
    rows = sorted(ui.services.tables.plugins.all(), key=lambda p: p.name)
    return [(p, d) for p in rows if (d := snapshot_dir(ui, p)) is not None]


def nav_entries(ui: Ui) -> list[tuple[str, str, str]]:
    """(plugin, href, title) for each loaded plugin with a page, in the plugins' `NAV_ORDER`; the
    title is the module's `TITLE` (the plugin's name when it has none or does not import)."""
    entries = [(*page_title(row, folder), row.name) for row, folder in contributing(ui)]
    return [(name, f"/plugin-pages/{name}", title) for order, title, name in sorted(entries, key=lambda e: (e[0], e[2]))]


def page_title(row: PluginRow, folder: Path) -> tuple[int, str]:
    """(nav order, title) of a plugin's page: the module's `NAV_ORDER` and `TITLE`, else 100 and the
    plugin's name (also when the module does not import: the page shows why)."""
    try:
        module = load(folder, row.name, row.code_hash)
        return int(getattr(module, "NAV_ORDER", 100)), str(getattr(module, "TITLE", row.name))
    except Exception:
        return 100, row.name


def load(folder: Path, name: str, code_hash: str) -> ModuleType:
    """Import `ui_component` from a snapshot folder as part of a package private to that code."""
    if folder in _loaded:
        return _loaded[folder]
    package = "tunelog_ui_{}_{}".format(re.sub(r"\W", "_", name), code_hash[:12])
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    sys.modules[package] = importlib.util.module_from_spec(spec)
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # snapshots stay exactly the files that were hashed
    try:
        module = importlib.import_module(f"{package}.{UI_MODULE}")
    finally:
        sys.dont_write_bytecode = writes
    _loaded[folder] = module
    return module


def loaded_error(row: PluginRow) -> Any:
    """The failure of the plugin's latest version, shown above the page its last good one serves."""
    if row.status != "failed":
        return ""
    return html.div({"className": "notice notice-error", "id": f"plugin-failed-{row.name}"},
                    f"Plugin {row.name} failed to reload: {row.error} (this page still runs version "
                    f"{row.version}, code {short(row.code_hash)})", html.pre(row.traceback) if row.traceback else "")


def error_view(name: str) -> Any:
    return html.div({"className": "notice notice-error", "id": f"plugin-page-error-{name}"},
                    f"The page of plugin {name} failed:", html.pre(traceback.format_exc()))


@component
def Guarded(body: Any, name: str) -> Any:
    """Render a plugin's component here, so that an error while rendering it is shown in its place
    (reactpy would render nothing). Its hooks are this component's: it is mounted in its stead."""
    try:
        return body.render()
    except Exception:
        return error_view(name)


@component
def PluginView(ui: Ui, name: str, query: dict[str, str]) -> Any:
    """The plugin's page, or why it cannot be shown; follows the log, so a reload shows the new code."""
    use_head(ui)
    memory = hooks.use_ref(cast(dict[str, Any], {})).current
    found = {p.name: (p, d) for p, d in contributing(ui)}
    if name not in found:
        return html.p({"id": "plugin-page-missing"}, f"Plugin {name!r} contributes no page now (it needs to be "
                      f"loaded, with `{UI_MODULE}.py` defining `component(api)`).")
    row, folder = found[name]
    try:
        module = load(folder, row.name, row.code_hash)
        api = WebUiApi(ui, msgspec.convert(row.manifest, Manifest), memory=memory, query=query)
        body = module.component(api)
    except Exception:
        return error_view(name)
    if isinstance(body, Component):
        body = Guarded(body, name)
    return html.div({"id": f"plugin-page-{name}", "className": "plugin-page", "data-code": row.code_hash},
                    loaded_error(row), html.div({"key": row.code_hash}, body))


@component
def PluginPageList(ui: Ui) -> Any:
    """Plugins with a page; follows the log (a plugin may appear or reload)."""
    use_head(ui)
    rows = [(p.name, [link(f"/plugin-pages/{p.name}", p.name), p.version, html.span({"className": "mono"},
                      short(p.code_hash))]) for p, _ in contributing(ui)]
    return table(("PLUGIN", "VERSION", "CODE"), rows, id="plugin-pages") if rows else html.p(
        {"className": "muted"}, f"No plugin contributes a page. A plugin adds one with `{UI_MODULE}.py` "
                                "defining `component(api)`.")


@component
def PluginPagesPage(ui: Ui, name: str | None = None, *, query: dict[str, str]) -> Any:
    """The list of plugin pages, or one of them."""
    if name:
        found = {p.name: (p, d) for p, d in contributing(ui)}
        title = page_title(*found[name])[1] if name in found else name
        return html.div(html.h1({"id": "plugin-page-title"}, title, html.small({"className": "muted"}, f" · plugin {name}")),
                        PluginView(ui, name, query))
    return html.div(html.h1("Plugin pages"), PluginPageList(ui))
