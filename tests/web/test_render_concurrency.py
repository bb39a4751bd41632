"""Several connections render at once in one event loop (reactpy's real Layout, no browser): each
render has its own hook stack, so none corrupts another's."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from reactpy import component, hooks, html
from reactpy.core.layout import Layout

from tunelog.daemon.paths import Paths
from tunelog.daemon.services import build_services
from tunelog.frontends.web.server import create_ui_app, use_task_local_hook_stack


@component
def Leaf(n: int) -> Any:
    value, _ = hooks.use_state(n)
    return html.span(str(value))


@component
def Page(n: int) -> Any:
    hooks.use_state(0)
    return html.div(*(Leaf(n * 10 + i, key=str(i)) for i in range(3)))


async def render_all(count: int) -> list[Any]:
    layouts = [Layout(Page(n)) for n in range(count)]
    for layout in layouts:
        await layout.__aenter__()
    try:
        return await asyncio.gather(*(layout.render() for layout in layouts))
    finally:
        for layout in layouts:
            await layout.__aexit__(None, None, None)


def texts(model: Any) -> list[str]:
    if isinstance(model, str):
        return [model]
    return [t for child in model.get("children", []) for t in texts(child)]


def test_three_layouts_render_at_once_each_with_its_own_hooks() -> None:
    use_task_local_hook_stack()
    updates = asyncio.run(render_all(3))
    assert [texts(u["model"]) for u in updates] == [["0", "1", "2"], ["10", "11", "12"], ["20", "21", "22"]]


def test_an_update_to_a_closing_tab_is_logged_at_info(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from reactpy.core import serve

    services = build_services(Paths.from_env(tmp_path), version="test", plugin_dirs=[],
                              builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    try:
        create_ui_app(services, token="t" * 32, port=1)
        with caplog.at_level(logging.INFO, logger="reactpy.core.serve"):
            serve.logger.error("Failed to send update. More info may be available if you enabling debug mode")
            serve.logger.error("something else")
    finally:
        services.store.close()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "update not sent: the page's websocket is closing"), ("ERROR", "something else")]
