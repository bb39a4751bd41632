"""The WorkflowEditor component rendered by ReactPy's own Layout over real Services (no browser):
it mounts the bundled canvas with the graph as props, offers the loaded operations, and says
how to build the bundle when it is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from reactpy.core.layout import Layout

from tests.daemon.daemon_proc import FIXTURES
from tests.web.conftest import unavailable
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events.runs import WorkflowSaved
from tunelog.frontends.web.editor import bundle
from tunelog.frontends.web.editor.component import WorkflowEditor


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    s = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                       builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    store, plugins = s.store, s.plugins
    in_thread(plugins.scan)
    store.append("workflow-w", [WorkflowSaved(name="w", version=1, graph={"nodes": {
        "a": {"op": "testops.outputs", "position": [0, 0]},
        "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}}}})],
                 expected_version=0)
    yield s
    store.close()


def in_thread(fn: Any) -> Any:
    """anyio.run(fn) on a thread of its own: a session's browser may hold this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn).result()


def first_render(component: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with Layout(component) as layout:
            update = await layout.render()
        return update["model"]  # type: ignore[return-value]

    return in_thread(go)  # type: ignore[no-any-return]


def find(model: Any, pred: Any) -> list[dict[str, Any]]:
    """Every VDOM element for which `pred` holds."""
    if not isinstance(model, dict):
        return []
    found = [model] if pred(model) else []
    for child in model.get("children", []):
        found += find(child, pred)
    return found


def test_a_missing_bundle_shows_how_to_build_it(services: Services, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "BUNDLE", tmp_path / "not-built.js")
    model = first_render(WorkflowEditor(services=services, workflow="w"))
    text = json.dumps(model)
    assert "Error: " in text and "make web" in text and "npm ci && npm run build" in text
    assert find(model, lambda m: m.get("attributes", {}).get("id") == "editor-missing")


def test_the_canvas_gets_the_graph_and_the_palette_the_loaded_operations(services: Services) -> None:
    if not bundle.BUNDLE.is_file():
        unavailable(f"the editor bundle is not built: {bundle.BUILD_HINT}")
    model = first_render(WorkflowEditor(services=services, workflow="w"))
    canvas = find(model, lambda m: "importSource" in m)
    assert len(canvas) == 1 and canvas[0]["tagName"] == "WorkflowCanvas"
    assert canvas[0]["importSource"]["source"].startswith(bundle.MODULE_NAME)
    props = canvas[0]["attributes"]
    assert [n["id"] for n in props["nodes"]] == ["a", "b"] and props["nodes"][1]["x"] is None
    assert [e["id"] for e in props["edges"]] == ["a.report->b.data"]
    assert set(canvas[0]["eventHandlers"]) == {"onConnect", "onMove", "onDelete", "onEdit"}
    ops = {m["attributes"]["data-op"] for m in find(model, lambda m: "data-op" in m.get("attributes", {}))}
    assert {"testops.outputs", "testops.read_file", "testops.curve"} <= ops


def test_a_new_workflow_starts_empty_and_asks_for_a_name(services: Services) -> None:
    if not bundle.BUNDLE.is_file():
        unavailable(f"the editor bundle is not built: {bundle.BUILD_HINT}")
    model = first_render(WorkflowEditor(services=services, workflow=None))
    name = find(model, lambda m: m.get("attributes", {}).get("id") == "editor-name")
    assert name[0]["tagName"] == "input"
    canvas = find(model, lambda m: "importSource" in m)
    assert canvas[0]["attributes"]["nodes"] == []
