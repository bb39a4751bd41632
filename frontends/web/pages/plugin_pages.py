"""Pages that plugins contribute: a plugin folder with `ui_component.py` defining
`component(services)` (returning ReactPy VDOM or a component) gets an entry here.

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
from typing import Any

from reactpy import component, html

from tunelog.events.state import PluginRow
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import link, short, table

UI_MODULE = "ui_component"
_loaded: dict[Path, ModuleType] = {}
"""Imported ui_component modules by snapshot folder (a snapshot never changes: its name is its hash)."""


def snapshot_dir(ui: Ui, row: PluginRow) -> Path | None:
    """The snapshot of the plugin's serving code, if it has a UI module."""
    if not row.code_hash or row.status == "removed":
        return None
    folder = ui.services.paths.plugin_code / row.code_hash
    return folder if (folder / f"{UI_MODULE}.py").is_file() else None


def contributing(ui: Ui) -> list[tuple[PluginRow, Path]]:
    """Plugins that contribute a page, by name."""
    rows = sorted(ui.services.tables.plugins.all(), key=lambda p: p.name)
    return [(p, d) for p in rows if (d := snapshot_dir(ui, p)) is not None]


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


def plugin_view(ui: Ui, name: str) -> Any:
    """The plugin's page, or why it cannot be shown."""
    found = {p.name: (p, d) for p, d in contributing(ui)}
    if name not in found:
        return html.p(f"Plugin {name!r} contributes no page (it needs `{UI_MODULE}.py` with `component(services)`).")
    row, folder = found[name]
    try:
        module = load(folder, row.name, row.code_hash)
        return html.div({"id": f"plugin-page-{name}", "className": "plugin-page"}, module.component(ui.services))
    except Exception:
        return html.div({"className": "notice notice-error"}, f"The page of plugin {name} failed to load:",
                        html.pre(traceback.format_exc()))


@component
def PluginPageList(ui: Ui) -> Any:
    """Plugins with a page; follows the log (a plugin may appear or reload)."""
    use_head(ui)
    rows = [(p.name, [link(f"/plugin-pages/{p.name}", p.name), p.version, html.span({"className": "mono"},
                      short(p.code_hash))]) for p, _ in contributing(ui)]
    return table(("PLUGIN", "VERSION", "CODE"), rows, id="plugin-pages") if rows else html.p(
        {"className": "muted"}, f"No plugin contributes a page. A plugin adds one with `{UI_MODULE}.py` "
                                "defining `component(services)`.")


@component
def PluginPagesPage(ui: Ui, name: str | None = None, *, query: dict[str, str]) -> Any:
    """The list of plugin pages, or one of them."""
    if name:
        return html.div(html.h1(f"Plugin page: {name}"), plugin_view(ui, name))
    return html.div(html.h1("Plugin pages"), PluginPageList(ui))
