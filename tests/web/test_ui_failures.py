"""In the browser: the run page shows a failed job's whole error and true node states, and the
merge form shows why a merge failed (real daemon with the built-in plugins, real Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDaemon]:
    """A daemon with the built-in plugins (adapter_merge) and the test plugins."""
    u = start_ui_daemon(tmp_path_factory.mktemp("ui-failures") / "home", builtins=True)
    yield u
    u.daemon.stop()


def node_state(page: Any, node: str) -> str:
    return str(page.inner_text(f'#nodes tr:has(td:first-child b:text-is("{node}")) .state'))


def test_the_run_page_shows_the_whole_error_and_running_then_cancelled_nodes(
        browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit({"nodes": {"bad": {"op": "testops.invalid", "params": {"rows": 25}},
                                         "slow": {"op": "testops.sleep", "params": {"seconds": 120}}}})
    page = browsing.open(browsing.login(), f"/runs/{run_id}", '.job-failure[data-node="bad"]')
    failure = page.locator('.job-failure[data-node="bad"]')
    assert "ValidationError: data: 25 problems; nothing was stored" in failure.inner_text()
    assert failure.locator(".failure-message").inner_text() == "the rows were read from data.jsonl"
    assert failure.locator(".hint").inner_text().startswith("Hint: fix the rows named below")
    rows = failure.locator(".problems li").all_inner_texts()
    assert rows == [f"row {i}: field 'response' is missing (reason {i})" for i in range(1, 21)]
    assert failure.locator(".more-problems").inner_text().startswith("… and 5 more")
    # the hint comes before the rows it names
    assert failure.inner_text().index("Hint: fix the rows") < failure.inner_text().index("row 1: field")

    page.wait_for_function("() => [...document.querySelectorAll('#nodes tr')].some(tr => "
                           "tr.innerText.startsWith('slow') && tr.querySelector('.state').innerText === 'running')")
    assert node_state(page, "slow") == "running"
    assert ui_daemon.daemon.post(f"/v1/runs/{run_id}/cancel", json={}).status_code == 202
    page.wait_for_selector("[data-run][data-state=cancelled]", timeout=60_000)
    assert node_state(page, "slow") == "cancelled"
    assert "cancelled: cancelled" not in page.inner_text("#nodes")
    browsing.shot(page, "run-failed-whole-error")


def test_the_merge_form_shows_why_a_merge_failed(browsing: Browsing, ui_daemon: UiDaemon, tiny_model_dir: Path) -> None:
    run_id = ui_daemon.submit({"nodes": {"a4": {"op": "testops.fake_adapter", "params": {"r": 4}},
                                         "a8": {"op": "testops.fake_adapter", "params": {"r": 8}}}})
    ui_daemon.wait_success(run_id)
    page = browsing.open(browsing.login(), "/plugin-pages/adapter_merge", "#merge-pick-1")
    for i in (0, 1):
        page.click(f"#merge-pick-{i}")
        page.wait_for_selector(f"#merge-pick-{i}:checked")
    assert "cat (exact)" in page.inner_text("#merge-exactness")
    page.select_option("#merge-method", "linear")
    page.wait_for_selector("#merge-exactness:has-text(\"linear (approximate)\")")
    page.fill("#merge-model", str(tiny_model_dir))
    page.click("#merge-button")
    page.wait_for_selector(".run-outcome .job-failure", timeout=120_000)
    text = page.inner_text(".run-outcome .job-failure")
    assert "ValidationError: cannot combine these adapters with 'linear'" in text
    problems = page.locator(".run-outcome .job-failure .problems li").all_inner_texts()
    assert any(p.startswith("params.combination_type: 'linear' adds the A and B factors") and "got ranks [" in p
               for p in problems), problems
    browsing.shot(page, "merge-failed")
