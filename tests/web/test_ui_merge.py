"""Merging and prompting from the browser, on a tiny model trained through the real daemon: the
merge form makes a new adapter (with its lineage), and the playground, with its generation
controls checked as they are typed, shows the base model's answer next to the adapters' answers
(the same settings and seed for each), and they differ; each answer streams into its column while it
is generated, in every tab following the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_training_runs import ref, write_data
from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN = {"max_steps": 8, "batch_size": 4, "max_length": 64, "pad_to_multiple": 16, "threads": 1, "lr": 0.05,
         "deterministic": True}


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[UiDaemon]:
    """A daemon with the built-in plugins, and two adapters trained on the tiny model."""
    home = tmp_path_factory.mktemp("ui-merge")
    u = start_ui_daemon(home / "home", builtins=True)
    data = write_data(home / "train.jsonl")
    model = str(tiny_model_dir)
    try:
        run_id = u.submit({"description": "two adapters", "nodes": {
            "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "messages"}},
            "t1": {"op": "lora_trainer.train", "params": TRAIN,
                   "inputs": {"model": model, "dataset": ref("data", "dataset")}},
            "t2": {"op": "lora_trainer.train", "params": {**TRAIN, "seed": 1},
                   "inputs": {"model": model, "dataset": ref("data", "dataset")}}}})
        u.wait_success(run_id, timeout=600)
        yield u
    finally:
        u.daemon.stop()


def tick(page: Any, selector: str) -> None:
    """Tick a checkbox the server controls: its state changes when the server has re-rendered it."""
    page.click(selector)
    page.wait_for_selector(f"{selector}:checked")


def answers(page: Any) -> dict[str, str]:
    cells = page.query_selector_all("#answers [data-answer]")
    return {c.get_attribute("data-answer"): c.query_selector("pre").inner_text() for c in cells}


def test_the_merge_form_makes_an_adapter_and_the_playground_compares_answers(
        browsing: Browsing, ui_daemon: UiDaemon, tiny_model_dir: Path) -> None:
    page = browsing.open(browsing.login(), "/plugin-pages/adapter_merge", "#merge-pick-1")
    trained = [page.get_attribute(f"#merge-pick-{i}", "data-sha") for i in (0, 1)]
    for i in (0, 1):
        tick(page, f"#merge-pick-{i}")
        page.fill(f"#merge-weight-{i}", "0.5")
    assert page.get_attribute("#merge-model", "placeholder") == str(tiny_model_dir)  # from the adapters' run
    page.click("#merge-button")
    page.wait_for_selector("#merge-result", timeout=300_000)
    merged = page.get_attribute("#merge-result", "data-sha")
    assert merged and merged not in trained
    browsing.open(page, "/adapters", "#adapters")
    row = page.locator(f'#adapters tr:has(span[id="{merged}"])')
    row.wait_for()
    assert "cat merge (exact)" in row.inner_text() and row.inner_text().count("0.5 ×") == 2
    browsing.shot(page, "adapters-merged")

    browsing.open(page, "/playground", "#play-button")
    tick(page, f'input[data-sha="{merged}"]')
    tick(page, f'input[data-sha="{trained[0]}"]')
    page.fill("#play-prompt", "what is the river")
    page.fill("#play-tokens", "8")
    page.fill("#play-top_k", "many")  # checked as it is typed, by the daemon's parameter validation
    page.wait_for_selector('#play-problems[data-count="1"]')
    assert "top_k" in page.inner_text("#play-problems")
    for name, value in (("top_k", "5"), ("temperature", "0.9"), ("seed", "3"), ("system", "be brief")):
        page.fill(f"#play-{name}", value)
    page.select_option("#play-sample", "true")
    page.fill("#play-stop", "zzz\nqqq")
    page.wait_for_selector('#play-problems[data-count="0"]')
    page.click("#play-button")
    page.wait_for_function(
        "() => document.querySelectorAll('#answers[data-final=\"true\"] [data-answer]').length >= 3", timeout=300_000)
    params = ui_daemon.run(page.locator(".run-outcome a").first.inner_text())["graph"]["nodes"]["generate"]["params"]
    assert {k: params[k] for k in ("top_k", "temperature", "seed", "system", "greedy", "stop", "max_new_tokens")} == {
        "top_k": 5, "temperature": 0.9, "seed": 3, "system": "be brief", "greedy": False, "stop": ["zzz", "qqq"],
        "max_new_tokens": 8}
    got = answers(page)
    assert set(got) == {"base", f"a{merged[:12]}", f"a{trained[0][:12]}"}
    assert len(set(got.values())) >= 2, got
    browsing.shot(page, "playground-answers")


PARTIAL = """() => {
    const cols = [...document.querySelectorAll('#answers[data-final="false"] [data-answer]')];
    const busy = cols.find(c => c.dataset.state === "generating" && c.querySelector("pre").textContent);
    return busy ? {name: busy.dataset.answer, text: busy.querySelector("pre").textContent,
                   states: cols.map(c => [c.dataset.answer, c.dataset.state])} : null;
}"""
"""The streamed column being generated, read in one go (the view changes under the test), or null."""


def test_the_playground_streams_each_answer_into_its_column_in_two_tabs(browsing: Browsing,
                                                                       ui_daemon: UiDaemon) -> None:
    page = browsing.open(browsing.login(), "/playground", "#play-pick-0")
    adapter = page.get_attribute("#play-pick-0", "data-sha")
    tick(page, "#play-pick-0")
    page.fill("#play-prompt", "what is the river")
    page.fill("#play-tokens", "230")  # seconds per answer on the tiny model (it has 256 positions)
    page.wait_for_selector('#play-problems[data-count="0"]')
    page.click("#play-button")
    run_id = page.locator(".run-outcome a").first.inner_text()
    other = browsing.open(browsing.new_page(), f"/playground?run={run_id}", ".run-outcome")  # a second tab
    seen = {}
    for name, tab in (("first", page), ("second", other)):
        # shown only while the job runs: the report replaces the streamed view when it ends
        seen[name] = tab.wait_for_function(PARTIAL, timeout=120_000).json_value()
    browsing.shot(other, "playground-streaming")
    for tab in (page, other):
        tab.wait_for_selector('#answers[data-final="true"]', timeout=120_000)
    report = ui_daemon.run(run_id)["nodes"]["generate"]["outputs"]["report"]["what is the river"]
    columns = ["base", f"a{adapter[:12]}"]
    assert list(report) == columns and answers(page) == answers(other) == report
    for partial in seen.values():
        assert [n for n, _ in partial["states"]] == columns
        assert [n for n, state in partial["states"] if state == "generating"] == [partial["name"]]
        assert report[partial["name"]].startswith(partial["text"]), partial


def test_a_refused_or_failed_export_shows_its_whole_error(browsing: Browsing, ui_daemon: UiDaemon,
                                                           tiny_model_dir: Path, tmp_path: Path) -> None:
    """An adapter folder given as the model is refused at submit; a model folder without a tokenizer
    passes the submit checks and the export job fails: the page shows each error whole, and no result."""
    page = browsing.open(browsing.login(), "/plugin-pages/export", "#export-button")
    sha = page.locator("#export-adapter option").nth(1).get_attribute("value")
    page.fill("#export-model", str(ui_daemon.daemon.home / "artifacts" / "sha256" / sha[:2] / sha))
    page.wait_for_selector('#export-problems[data-count="0"]')
    page.click("#export-button")
    page.wait_for_selector("#export .notice-error")
    assert "the run cannot start" in page.inner_text("#export .notice-error")
    assert "no config.json" in page.inner_text("#export .notice-error")

    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tiny_model_dir / name).read_bytes())
    page.fill("#export-model", str(bare))
    page.click("#export-button")
    page.wait_for_selector('.run-outcome[data-state="failed"], #export .notice-error >> text=no-tokenizer',
                           timeout=120_000)
    shown = page.inner_text(".run-outcome")
    assert f"{bare} is not a full model folder: no tokenizer" in shown, shown
    assert "ValidationError" in shown and page.locator("#export-result").count() == 0
    assert page.locator('#export-progress [data-node="export"][data-state="failed"]').count() == 1
    browsing.shot(page, "export-failed")
