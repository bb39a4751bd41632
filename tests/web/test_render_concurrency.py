"""Several connections render at once in one event loop (reactpy's real Layout, no browser): each
render has its own hook stack, so none corrupts another's."""

from __future__ import annotations

import asyncio
from typing import Any

from reactpy import component, hooks, html
from reactpy.core.layout import Layout

from tunelog.frontends.web.server import use_task_local_hook_stack


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
