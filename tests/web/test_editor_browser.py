"""The workflow editor in headless Chromium, served by the editor's test app over real Services
(SQLite file, plugin manager scanning tests/plugins_fixtures, job runner with worker processes,
run executor) on a local TCP port: it draws a saved workflow, refuses a connection between
ports of different types, saves a valid edit as a new version, shows node states live while a
run runs (and cached ones distinctly), lays out a graph saved without positions, and talks to
no host but the local server."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import uvicorn

from tests.daemon.daemon_proc import FIXTURES
from tests.web.conftest import report
from tests.web.editor_app import create_editor_app
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events.runs import WorkflowSaved
from tunelog.frontends.web.editor.bundle import BUILD_HINT, BUNDLE

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Services]]:
    if not BUNDLE.is_file():
        pytest.fail(f"the editor bundle {BUNDLE} is missing: {BUILD_HINT}")
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                       builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    store = services.store
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The daemon's loop is asyncio (anyio.run); uvloop's subprocess_exec refuses the workers' umask.
    config = uvicorn.Config(create_editor_app(services), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", loop="asyncio")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the editor app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", services
    srv.should_exit = True
    thread.join(15)
    store.close()


@pytest.fixture
def page(chromium: Any, server: tuple[str, Services]) -> Iterator[Any]:
    """A fresh page that fails its test on any request to another host, page error or console error
    (a Content-Security-Policy violation is one)."""
    base = urlparse(server[0])
    foreign: list[str] = []
    errors: list[str] = []
    pg = chromium.new_page(viewport={"width": 1440, "height": 860})
    pg.on("request", lambda r: foreign.append(r.url) if urlparse(r.url).scheme not in ("data", "blob") and (
        urlparse(r.url).hostname, urlparse(r.url).port) != (base.hostname, base.port) else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    pg.close()
    assert foreign == [], f"requests to other hosts: {foreign}"
    assert errors == [], f"errors in the page: {errors}"


def save_workflow(services: Services, name: str, graph: dict[str, Any]) -> None:
    services.store.append(f"workflow-{name}", [WorkflowSaved(name=name, version=1, graph=graph)], expected_version=0)


def until(page: Any, expr: str, timeout: int = 5000) -> None:
    """Wait until the JS expression holds (as a function: the page's CSP forbids eval)."""
    page.wait_for_function(f"() => ({expr})", timeout=timeout)


def notice_has(page: Any, text: str) -> None:
    until(page, f"document.querySelector('#editor-notice').textContent.includes({text!r})")


def version_is(page: Any, version: int) -> None:
    until(page, f"document.querySelector('#editor-version').textContent === 'v{version}'")


def open_editor(page: Any, base: str, name: str, nodes: int) -> None:
    page.goto(f"{base}/?workflow={name}")
    until(page, f"document.querySelectorAll('.react-flow__node').length === {nodes}", timeout=20000)
    page.wait_for_timeout(300)  # handles are measured after the first paint


def shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    report(f"screenshot {name}: {path}")


def center(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def handle(node: str, kind: str, port: str) -> str:
    return f'.react-flow__node[data-id="{node}"] .react-flow__handle.{kind}[data-handleid="{port}"]'


def drag(page: Any, a: tuple[float, float], b: tuple[float, float]) -> None:
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=12)
    page.mouse.up()


def timed(page: Any, action: Any, expr: str, timeout: int = 5000) -> float:
    """Milliseconds, measured in the page, from the user input `action` makes (its last pointerup or
    keydown) to the first DOM mutation after which the JS expression `expr` holds."""
    page.evaluate(f"""() => {{
      window.__t0 = 0; window.__t1 = 0;
      for (const t of ['pointerup', 'keydown'])
        document.addEventListener(t, () => {{ window.__t0 = performance.now(); }}, {{capture: true, once: true}});
      const mo = new MutationObserver(() => {{
        if (window.__t0 && !window.__t1 && ({expr})) {{ window.__t1 = performance.now(); mo.disconnect(); }} }});
      mo.observe(document.body, {{subtree: true, childList: true, attributes: true, characterData: true}});
    }}""")
    action()
    until(page, "window.__t1 > 0", timeout)
    return float(page.evaluate("() => window.__t1 - window.__t0"))


GRAPH = {"nodes": {
    "a": {"op": "testops.outputs", "params": {"text": "hi"}, "position": [0, 0]},
    "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}, "position": [340, 0]},
    "r": {"op": "testops.read_file", "inputs": {"path": "/etc/hostname"}, "position": [340, 220]},
}}
EDGES = "document.querySelectorAll('.react-flow__edge').length"


def test_a_saved_workflow_is_drawn_with_its_nodes_ports_and_edges(page: Any, server: tuple[str, Services],
                                                                  screenshots: Path) -> None:
    base, services = server
    save_workflow(services, "drawn", GRAPH)
    open_editor(page, base, "drawn", 3)
    assert page.locator(".react-flow__edge").count() == 1
    assert page.inner_text("#editor-name") == "drawn" and page.inner_text("#editor-version") == "v1"
    assert page.locator(handle("r", "target", "path")).count() == 1
    assert "text = hi" in page.inner_text('.react-flow__node[data-id="a"]')
    assert page.locator('#editor-palette button[data-op="testops.curve"]').count() == 1
    shot(page, screenshots, "editor-drawn")


def test_a_connection_between_mismatched_port_types_is_refused(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    save_workflow(services, "mismatch", GRAPH)
    open_editor(page, base, "mismatch", 3)
    head = services.store.head()
    drag(page, center(page, handle("a", "source", "report")), center(page, handle("r", "target", "path")))
    page.wait_for_selector('.react-flow__node[data-id="r"] [data-errors="1"]', timeout=5000)
    assert "port type mismatch: a.report is 'report', r.path takes 'path'" in page.inner_text(
        '.react-flow__node[data-id="r"] .tl-errors')
    assert page.locator('.react-flow__node[data-id="r"] .tl-port.tl-bad[data-port="path"]').count() == 1
    assert "refused" in page.inner_text("#editor-notice")
    page.wait_for_timeout(300)
    assert page.evaluate(f"() => {EDGES}") == 1 and page.inner_text("#editor-dirty") == ""
    page.click("#editor-save")
    notice_has(page, "nothing to save")
    assert services.store.head() == head and services.store.get("workflows", "mismatch").version == 1


def test_a_valid_edit_is_saved_as_a_new_version(page: Any, server: tuple[str, Services], screenshots: Path) -> None:
    base, services = server
    save_workflow(services, "edited", GRAPH)
    open_editor(page, base, "edited", 3)
    page.click('.react-flow__node[data-id="a"] .tl-title')
    field = page.locator('[data-inspector="a"] input[name="text"]')
    field.fill("changed")
    param_ms = timed(page, lambda: field.press("Enter"),
                     "document.querySelector('.react-flow__node[data-id=\"a\"]').innerText.includes('text = changed')")
    connect_ms = timed(page, lambda: drag(page, center(page, handle("a", "source", "text")),
                                          center(page, handle("r", "target", "path"))), f"{EDGES} === 2")
    assert page.inner_text("#editor-dirty") == "unsaved changes"
    assert services.store.get("workflows", "edited").version == 1
    page.click("#editor-save")
    version_is(page, 2)
    row = services.store.get("workflows", "edited")
    assert row.version == 2 and row.graph["nodes"]["a"]["params"] == {"text": "changed"}
    assert row.graph["nodes"]["r"]["inputs"]["path"] == {"node": "a", "output": "text"}
    assert page.inner_text("#editor-dirty") == "" and "saved edited v2" in page.inner_text("#editor-notice")
    shot(page, screenshots, "editor-edited")
    report(f"editor: param edit -> DOM {param_ms:.0f} ms, connect -> edge drawn {connect_ms:.0f} ms")


def test_the_form_follows_the_schema_and_refuses_out_of_range_values(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    save_workflow(services, "ranged", {"nodes": {"c": {"op": "testops.curve", "position": [0, 0]},
                                                 "k": {"op": "testops.crash", "position": [0, 260]}}})
    open_editor(page, base, "ranged", 2)
    page.click('.react-flow__node[data-id="c"] .tl-title')
    field = page.locator('[data-inspector="c"] input[name="steps"]')
    assert field.get_attribute("type") == "number" and field.get_attribute("min") == "1"
    assert field.input_value() == "6"  # the default
    field.fill("0")
    field.press("Enter")
    page.wait_for_selector('[data-field="steps"].tl-bad', timeout=5000)
    assert "below the minimum 1" in page.inner_text('[data-field="steps"] .tl-error')
    assert page.inner_text("#editor-dirty") == ""
    page.click('.react-flow__node[data-id="k"] .tl-title')
    page.select_option('[data-inspector="k"] select[name="how"]', label="abort")
    until(page, "document.querySelector('.react-flow__node[data-id=\"k\"]').innerText.includes('how = abort')")
    page.click("#editor-validate")
    notice_has(page, "is valid")


def test_palette_adds_a_node_and_the_delete_key_removes_it(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    save_workflow(services, "palette", GRAPH)
    open_editor(page, base, "palette", 3)
    page.click('#editor-palette button[data-op="testops.sleep"]')
    page.wait_for_selector('.react-flow__node[data-id="sleep"]', timeout=5000)
    assert page.inner_text("#editor-dirty") == "unsaved changes"
    page.wait_for_timeout(300)
    page.click('.react-flow__node[data-id="sleep"] .tl-title')
    page.keyboard.press("Backspace")
    until(page, "document.querySelectorAll('.react-flow__node').length === 3")
    page.click('.react-flow__node[data-id="b"] .tl-title')
    page.keyboard.press("Backspace")  # takes its edge with it
    until(page, f"{EDGES} === 0")
    page.click("#editor-save")
    version_is(page, 2)
    assert set(services.store.get("workflows", "palette").graph["nodes"]) == {"a", "r"}


RECORD_STATES = """() => {
  window.__states = {};
  const seen = (el) => {
    const id = el.closest('.react-flow__node').getAttribute('data-id');
    const s = el.getAttribute('data-state') || '';
    const list = (window.__states[id] ||= []);
    if (!list.length || list[list.length - 1][0] !== s) list.push([s, performance.timeOrigin + performance.now()]);
  };
  document.querySelectorAll('.tl-node').forEach(seen);
  new MutationObserver((ms) => ms.forEach((m) => m.target.classList && m.target.classList.contains('tl-node')
      && seen(m.target))).observe(document.querySelector('.react-flow'),
      {attributes: true, attributeFilter: ['data-state'], subtree: true});
}"""
ALL_IN = "(states) => [...document.querySelectorAll('.tl-node')].every(n => states.includes(n.dataset.state))"


def test_running_shows_node_states_live_and_a_rerun_shows_them_cached(page: Any, server: tuple[str, Services],
                                                                       screenshots: Path) -> None:
    base, services = server
    save_workflow(services, "runme", {"nodes": {
        "a": {"op": "testops.outputs", "params": {"text": "run me"}, "position": [0, 0]},
        "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}, "position": [340, 0]},
        "c": {"op": "testops.curve", "params": {"steps": 4, "every": 1}, "position": [0, 200]},
    }})
    open_editor(page, base, "runme", 3)
    page.evaluate(RECORD_STATES)
    page.click("#editor-run")
    page.wait_for_function(ALL_IN, arg=["completed"], timeout=60000)
    until(page, "document.querySelector('#editor-run-state').dataset.state === 'succeeded'", timeout=10000)
    seen = page.evaluate("() => window.__states")
    for node in ("a", "b", "c"):
        states = [s for s, _ in seen[node]]
        assert states[-1] == "completed" and len(states) >= 3, (node, states)
        assert {"pending", "queued", "running"} & set(states[:-1]), (node, states)
    assert "running" in {s for n in seen.values() for s, _ in n}
    run = services.store.get("runs", page.eval_on_selector("#editor-run-state", "e => e.dataset.run"))
    assert run.workflow == "runme" and run.workflow_version == 1
    # commit -> DOM: when each node turned `completed` in the log, and in the page
    done = {env.event.node: env.time for env in services.store.read(stream=f"run-{run.run_id}")
            if env.type == "node-completed"}
    lags = [1000 * (next(t for s, t in seen[n] if s == "completed") / 1000 - done[n]) for n in done]
    shot(page, screenshots, "editor-run")

    page.evaluate(RECORD_STATES)
    page.click("#editor-run")
    page.wait_for_function(ALL_IN, arg=["cached"], timeout=30000)
    assert page.locator(".tl-node.tl-state-cached").count() == 3
    style = page.eval_on_selector(".tl-node.tl-state-cached", "e => getComputedStyle(e).borderStyle")
    assert style == "dashed"
    shot(page, screenshots, "editor-cached")
    report(f"editor: node completed in the log -> DOM: median {statistics.median(lags):.0f} ms, max {max(lags):.0f} ms")


def test_a_failing_node_is_shown_failed_and_its_dependents_skipped(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    save_workflow(services, "failing", {"nodes": {
        "f": {"op": "testops.fail", "position": [0, 0]},
        "o": {"op": "testops.outputs", "inputs": {"data": {"node": "f", "output": "nothing"}}, "position": [340, 0]},
    }})
    open_editor(page, base, "failing", 2)
    page.click("#editor-run")
    until(page, "document.querySelector('#editor-run-state').dataset.state === 'failed'", timeout=60000)
    # the canvas draws node states a React render after the toolbar shows the run's state
    failed = '.react-flow__node[data-id="f"] .tl-node[data-state="failed"]'
    page.wait_for_selector(failed, timeout=10000)
    assert "boom" in page.inner_text(f"{failed} .tl-detail")
    page.wait_for_selector('.react-flow__node[data-id="o"] .tl-node[data-state="skipped"]', timeout=10000)


def boxes(page: Any) -> dict[str, dict[str, float]]:
    return {n.get_attribute("data-id"): n.bounding_box() for n in page.locator(".react-flow__node").all()}


def overlapping(b: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    ids = sorted(b)
    return [(p, q) for i, p in enumerate(ids) for q in ids[i + 1:]
            if b[p]["x"] < b[q]["x"] + b[q]["width"] and b[q]["x"] < b[p]["x"] + b[p]["width"]
            and b[p]["y"] < b[q]["y"] + b[q]["height"] and b[q]["y"] < b[p]["y"] + b[p]["height"]]


def test_arrange_gives_positions_to_a_graph_saved_without_them(page: Any, server: tuple[str, Services],
                                                                screenshots: Path) -> None:
    base, services = server
    ref = {"node": "a", "output": "report"}
    save_workflow(services, "unplaced", {"nodes": {
        "a": {"op": "testops.outputs"},
        "b": {"op": "testops.outputs", "inputs": {"data": ref}},
        "c": {"op": "testops.outputs", "inputs": {"data": ref}},
        "d": {"op": "testops.outputs", "inputs": {"data": {"node": "c", "output": "report"}}},
        "e": {"op": "testops.sleep"},
    }})
    open_editor(page, base, "unplaced", 5)
    notice_has(page, "arranged")
    first = boxes(page)
    assert overlapping(first) == [], first
    assert first["a"]["x"] < first["b"]["x"] and first["a"]["x"] < first["c"]["x"] < first["d"]["x"]
    drag(page, center(page, '.react-flow__node[data-id="d"] .tl-title'),
         center(page, '.react-flow__node[data-id="a"] .tl-title'))
    notice_has(page, "moved d")
    assert overlapping(boxes(page)) != []
    page.click("#editor-arrange")
    notice_has(page, "arranged")
    page.wait_for_timeout(300)
    assert overlapping(boxes(page)) == []
    page.click("#editor-save")
    version_is(page, 2)
    saved = services.store.get("workflows", "unplaced").graph["nodes"]
    positions = {n: tuple(s["position"]) for n, s in saved.items()}
    assert len(set(positions.values())) == 5 and all(len(p) == 2 for p in positions.values())
    shot(page, screenshots, "editor-arranged")


def test_a_new_workflow_is_named_built_from_the_palette_and_saved(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    loaded: list[str] = []
    page.on("response", lambda r: loaded.append(r.url) if r.url.endswith(".js") and r.status == 200 else None)
    page.goto(base)
    page.wait_for_selector(".react-flow", timeout=20000)
    assert any("/_reactpy/modules/tunelog-workflow-editor-" in u for u in loaded), loaded
    assert "name it" in page.inner_text("#editor-notice")
    page.click("#editor-save")
    notice_has(page, "give the workflow a name")
    page.fill("#editor-name", "fresh")
    for expected in ("outputs", "outputs_2"):
        page.click('#editor-palette button[data-op="testops.outputs"]')
        page.wait_for_selector(f'.react-flow__node[data-id="{expected}"]', timeout=5000)
    page.wait_for_timeout(500)  # the view refits to the new nodes
    drag(page, center(page, handle("outputs", "source", "report")), center(page, handle("outputs_2", "target", "data")))
    until(page, f"{EDGES} === 1")
    page.click("#editor-save")
    version_is(page, 1)
    row = services.store.get("workflows", "fresh")
    assert row.version == 1 and row.graph["nodes"]["outputs_2"]["inputs"] == {
        "data": {"node": "outputs", "output": "report"}}
    assert page.locator("input#editor-name").count() == 0  # a saved workflow keeps its name


def test_a_layout_change_after_save_still_runs_the_saved_version(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    save_workflow(services, "laidout", GRAPH)
    open_editor(page, base, "laidout", 3)
    drag(page, center(page, '.react-flow__node[data-id="r"] .tl-title'),
         center(page, '.react-flow__node[data-id="a"] .tl-title'))
    notice_has(page, "moved r")
    assert page.inner_text("#editor-dirty") == "layout not saved"
    page.click("#editor-run")
    until(page, "document.querySelector('#editor-run-state').dataset.state === 'succeeded'", timeout=60000)
    first = services.store.get("runs", page.eval_on_selector("#editor-run-state", "e => e.dataset.run"))
    assert (first.workflow, first.workflow_version) == ("laidout", 1)

    page.click("#editor-save")  # the layout is kept as a new version
    version_is(page, 2)
    assert page.inner_text("#editor-dirty") == ""
    page.click("#editor-arrange")
    notice_has(page, "arranged")
    page.click("#editor-run")
    until(page, f"document.querySelector('#editor-run-state').dataset.run !== {first.run_id!r}"
                " && document.querySelector('#editor-run-state').dataset.state === 'succeeded'", timeout=60000)
    second = services.store.get("runs", page.eval_on_selector("#editor-run-state", "e => e.dataset.run"))
    assert (second.workflow, second.workflow_version) == ("laidout", 2)
    assert [n.state for n in second.nodes.values()] == ["cached"] * 3  # the same content as the first run


def test_the_canvas_fits_a_spread_out_graph_on_load(page: Any, server: tuple[str, Services]) -> None:
    base, services = server
    far = {"nodes": {
        "a": {"op": "testops.outputs", "position": [0, 0]},
        "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}, "position": [3000, 1800]},
        "c": {"op": "testops.sleep", "position": [-1500, 2600]},
    }}
    save_workflow(services, "spread", far)
    page.goto(f"{base}/?workflow=spread")
    page.wait_for_function("""() => {
      const pane = document.querySelector('.react-flow'); const nodes = [...document.querySelectorAll('.react-flow__node')];
      if (!pane || nodes.length !== 3) return false;
      const p = pane.getBoundingClientRect();
      return nodes.every(n => { const b = n.getBoundingClientRect();
        return b.width > 0 && b.left >= p.left && b.right <= p.right && b.top >= p.top && b.bottom <= p.bottom; });
    }""", timeout=20000)
