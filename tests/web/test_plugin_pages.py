"""Plugin pages in headless Chromium: a page gets the narrow UiApi (not the daemon's services),
sits in the navigation only while its plugin is loaded, follows a reload without losing what the
user typed, and shows a broken `ui_component.py`'s error in place."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.daemon_proc import FIXTURES
from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon

pytestmark = pytest.mark.browser

MANIFEST = """name: pagey
version: 0.1.0
description: A plugin whose page the tests edit.
operations:
  noop:
    description: Does nothing.
    resource: cpu
"""
PAGE = '''"""A page that says VERSION."""
from reactpy import component as reactpy_component, html

TITLE = "Pagey"


def component(api):
    return Panel(api)


@reactpy_component
def Panel(api):
    text, set_text = api.use_form("text", "")
    return html.div({"id": "pagey", "data-version": "VERSION"},
                    html.p(f"VERSION of {api.manifest.name}; services: {hasattr(api, 'services')}"),
                    html.input({"id": "pagey-text", "value": text,
                                "onChange": lambda e: set_text(e["target"]["value"])}))
'''


def write_plugin(folder: Path, *, version: str, page: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.yaml").write_text(MANIFEST)
    (folder / "backend.py").write_text("def noop(ctx, params, inputs):\n    return {}\n")
    (folder / "ui_component.py").write_text(page if page is not None else PAGE.replace("VERSION", version))


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("page-plugins")


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path) -> Iterator[UiDaemon]:
    write_plugin(plugin_dir / "pagey", version="v1")
    u = start_ui_daemon(tmp_path_factory.mktemp("pages-home"),
                        env={"TUNELOG_PLUGIN_DIRS": os.pathsep.join([str(FIXTURES), str(plugin_dir)])})
    yield u
    u.daemon.stop()


def reload(ui_daemon: UiDaemon) -> dict[str, Any]:
    r = ui_daemon.daemon.post("/v1/plugins/reload", json={"name": "pagey"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_plugin_page_follows_reloads_keeps_the_form_and_shows_a_broken_page_in_place(
        browsing: Browsing, ui_daemon: UiDaemon, plugin_dir: Path) -> None:
    page = browsing.login()
    nav = page.locator('#plugin-nav a[data-plugin="pagey"]')
    nav.wait_for()
    assert nav.inner_text() == "Pagey"
    nav.click()
    page.wait_for_selector('#pagey[data-version="v1"]')
    assert "v1 of pagey; services: False" in page.inner_text("#pagey")
    page.fill("#pagey-text", "typed before the reload")
    page.wait_for_function("() => document.querySelector('#pagey-text').value === 'typed before the reload'")

    other = browsing.open(browsing.new_page(), "/plugin-pages/pagey", '#pagey[data-version="v1"]')  # a second tab
    write_plugin(plugin_dir / "pagey", version="v2")
    reload(ui_daemon)
    page.wait_for_selector('#pagey[data-version="v2"]', timeout=20_000)
    assert page.input_value("#pagey-text") == "typed before the reload"
    other.wait_for_selector('#pagey[data-version="v2"]', timeout=20_000)
    assert other.input_value("#pagey-text") == ""  # each tab has its own form
    browsing.shot(page, "plugin-page-reloaded")

    write_plugin(plugin_dir / "pagey", version="v3", page=PAGE.replace("VERSION", "v3") + "\nthis is not python\n")
    reload(ui_daemon)
    page.wait_for_selector("#plugin-page-error-pagey", timeout=20_000)
    assert "NameError" in page.inner_text("#plugin-page-error-pagey")
    browsing.shot(page, "plugin-page-broken")

    write_plugin(plugin_dir / "pagey", version="v4", page=PAGE.replace("VERSION", "v4").replace(
        "    text, set_text", "    1 / 0\n    text, set_text"))  # imports, fails while rendering
    reload(ui_daemon)
    page.wait_for_selector("#plugin-page-error-pagey:has-text('ZeroDivisionError')", timeout=20_000)

    shutil.rmtree(plugin_dir / "pagey")
    reload(ui_daemon)
    page.wait_for_selector("#plugin-page-missing", timeout=20_000)
    assert page.locator('#plugin-nav a[data-plugin="pagey"]').count() == 0
