"""The web runs and adapters lists page through their tables' indexes (reactpy's real Layout over real
services on a real SQLite log, no browser): newest first, `older runs`/`older adapters` to the next
page, a bad cursor named; the playground offers the newest adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from reactpy.core.layout import Layout

from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events import runs as R
from tunelog.events.runs import NodeCompleted
from tunelog.frontends.web.pages.adapters import SHOWN as ADAPTERS_SHOWN
from tunelog.frontends.web.pages.adapters import AdaptersPage
from tunelog.frontends.web.pages.playground import PlaygroundPage
from tunelog.frontends.web.pages.runs import SHOWN, RunsPage
from tunelog.frontends.web.server import use_task_local_hook_stack
from tunelog.frontends.web.ui import Ui


def submit(s: Services, n: int) -> None:
    graph = {"nodes": {"a": {"op": "testops.env", "params": {}}}}
    for i in range(n):
        s.store.append(f"run-r{i:04d}", [R.RunSubmitted(run_id=f"r{i:04d}", graph=graph, order=["a"], code={})])


def render(s: Services, query: dict[str, str]) -> Any:
    return render_page(RunsPage(Ui(s), query=query))


def render_page(component: Any) -> Any:
    async def once() -> Any:
        async with Layout(component) as layout:
            return (await layout.render())["model"]
    use_task_local_hook_stack()
    return asyncio.run(once())


def walk(model: Any, tag: str) -> list[Any]:
    if isinstance(model, str):
        return []
    found = [model] if model.get("tagName") == tag else []
    return found + [m for child in model.get("children", []) for m in walk(child, tag)]


def text(model: Any) -> str:
    return model if isinstance(model, str) else "".join(text(c) for c in model.get("children", []))


def shown_runs(model: Any) -> list[str]:
    return [text(a) for a in walk(model, "a") if a["attributes"]["href"].startswith("/runs/")]


def page_links(model: Any) -> dict[str, str]:
    return {text(a): a["attributes"]["href"] for a in walk(model, "a") if not a["attributes"]["href"].startswith("/runs/")}


def test_the_runs_page_shows_one_page_newest_first_and_links_the_older_ones(services: Services) -> None:
    submit(services, SHOWN + 7)
    first = render(services, {})
    assert shown_runs(first) == [f"r{i:04d}" for i in range(SHOWN + 6, 6, -1)]
    older = page_links(first)["older runs"]
    assert "newest runs" not in page_links(first)
    second = render(services, {"before": older.split("=", 1)[1]})
    assert shown_runs(second) == [f"r{i:04d}" for i in range(6, -1, -1)]
    assert page_links(second) == {"newest runs": "/"}


def test_a_cursor_that_is_not_a_position_is_named_and_nothing_is_listed(services: Services) -> None:
    submit(services, 3)
    model = render(services, {"before": "abc"})
    assert "before: must be a log position (a whole number), got 'abc'" in text(model)
    assert shown_runs(model) == []


def sha(i: int) -> str:
    return f"{i:04d}".ljust(64, "b")


def produce(s: Services, n: int) -> None:
    for i in range(n):
        s.store.append(f"run-r{i}", [NodeCompleted(run_id=f"r{i}", node="train", job_id=f"j{i}", cache_key=f"c{i}",
                                                   outputs={"adapter": sha(i)}, output_types={"adapter": "adapter"})])


def listed(model: Any) -> list[str]:
    return [m["attributes"]["id"][:4] for m in walk(model, "span") if len(m.get("attributes", {}).get("id", "")) == 64]


def test_the_adapters_page_shows_one_page_newest_first_and_links_the_older_ones(services: Services) -> None:
    produce(services, ADAPTERS_SHOWN + 3)
    first = render_page(AdaptersPage(Ui(services), query={}))
    assert listed(first) == [f"{i:04d}" for i in range(ADAPTERS_SHOWN + 2, 2, -1)]
    older = page_links(first)["older adapters"]
    assert "newest adapters" not in page_links(first)
    second = render_page(AdaptersPage(Ui(services), query={"before": older.split("=", 1)[1]}))
    assert listed(second) == ["0002", "0001", "0000"]
    assert page_links(second)["newest adapters"] == "/adapters" and "older adapters" not in page_links(second)


def test_an_adapters_cursor_that_is_not_a_position_is_named_and_nothing_is_listed(services: Services) -> None:
    produce(services, 2)
    model = render_page(AdaptersPage(Ui(services), query={"before": "-1"}))
    assert "before: must be a log position (a whole number), got '-1'" in text(model)
    assert listed(model) == []


def test_the_playground_offers_the_newest_adapters_and_a_button_for_older_ones(services: Services) -> None:
    produce(services, ADAPTERS_SHOWN + 1)
    model = render_page(PlaygroundPage(Ui(services), query={}))
    offered = [m["attributes"]["data-sha"][:4] for m in walk(model, "input") if "data-sha" in m["attributes"]]
    assert offered == [f"{i:04d}" for i in range(ADAPTERS_SHOWN, 0, -1)]
    assert [text(b) for b in walk(model, "button") if b["attributes"].get("id") == "play-older"] == ["older adapters"]


def test_the_export_page_offers_an_adapter_older_than_the_newest_listed(tmp_path: Path) -> None:
    """An adapter on a later adapters page links to the export page; its choice holds that adapter."""
    from tests.web.test_editor_page import in_thread
    from tunelog.frontends.web.pages.plugin_pages import PluginView

    s = build_services(Paths.from_env(tmp_path), version="test", plugin_dirs=[], slots=["cpu0"])
    try:
        in_thread(s.plugins.scan)
        produce(s, ADAPTERS_SHOWN + 1)
        model = render_page(PluginView(Ui(s), "export", {"adapter": sha(0)}))
        [choice] = [m for m in walk(model, "select") if m["attributes"].get("id") == "export-adapter"]
        options = [o["attributes"]["value"] for o in walk(choice, "option")]
        assert options == ["", *(sha(i) for i in range(ADAPTERS_SHOWN, 0, -1)), sha(0)]  # the newest 50, then it
    finally:
        s.store.close()
