"""Two promises of the web UI in headless Chromium against a real daemon: the event log page's
follow mode (newest events appear as they are appended; paused, the page holds its position and
pages back; following again catches up), and resuming a cancelled run from its page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Browsing, UiDaemon
from tests.web.test_ui_browser import ticker
from tunelog.frontends.web.pages.events import SHOWN

pytestmark = pytest.mark.browser

TOP_POSITION = "#events tbody tr:first-child td:nth-child(1)"


def head(ui: UiDaemon) -> int:
    return int(ui.daemon.get("/v1/status").json()["head"])


def wait_top(page: Any, position: int, *, timeout: float = 20_000) -> None:
    """Wait until the newest event the page shows is at `position`."""
    page.wait_for_function("([sel, n]) => { const td = document.querySelector(sel);"
                           " return td && parseInt(td.textContent) === n; }",
                           arg=[TOP_POSITION, position], timeout=timeout)


def top(page: Any) -> int:
    return int(page.inner_text(TOP_POSITION))


def test_the_event_log_follows_new_events_pauses_pages_back_and_catches_up(
        browsing: Browsing, ui_daemon: UiDaemon) -> None:
    # More events than one page shows, so there is an older page to go back to (added before the
    # pages open: two pages re-rendering 200 rows after each would make it slow).
    for i in range(max(0, SHOWN + 1 - head(ui_daemon))):
        assert ui_daemon.daemon.post("/v1/models", json={"name": f"follow-{i}", "ref": "/nowhere"}).status_code == 201
    page = browsing.open(browsing.login(), "/events", "#events tbody tr")
    witness = browsing.open(browsing.new_page(), "/events", "#events tbody tr")  # stays in follow mode
    assert page.is_checked("#events-follow") and page.get_attribute("#events-range", "data-follow") == "true"
    wait_top(page, head(ui_daemon))

    run_id = ui_daemon.submit(ticker(2, 0.0), label="followed")
    ui_daemon.wait_success(run_id)
    followed = head(ui_daemon)
    wait_top(page, followed)  # appended after the page opened: shown without a reload
    newest = page.locator("#events tbody tr:first-child td").all_inner_texts()
    assert newest[2:4] == [f"run-{run_id}", "run-finished"]

    page.click("#events-follow")  # pause
    page.wait_for_selector('#events-range[data-follow="false"]')
    assert f"(up to {followed})" in page.inner_text("#events-range")
    paused = ui_daemon.submit(ticker(2, 0.0), label="while paused")
    ui_daemon.wait_success(paused)
    wait_top(witness, head(ui_daemon))  # a following tab has shown the new events: this one had the chance
    assert top(page) == followed and head(ui_daemon) > followed
    assert not page.is_checked("#events-follow")

    rows = page.locator("#events tbody tr").count()
    oldest = int(page.inner_text("#events tbody tr:last-child td:nth-child(1)"))
    page.click("#events-older")  # one page further back: the newest shown is just before the oldest
    wait_top(page, oldest - 1)
    assert page.locator("#events tbody tr").count() <= rows == SHOWN

    page.click("#events-follow")  # follow again: straight to the newest event
    page.wait_for_selector('#events-range[data-follow="true"]')
    wait_top(page, head(ui_daemon))
    browsing.shot(page, "events-follow")


def checkpointing(steps: int, step_s: float) -> dict[str, Any]:
    return {"nodes": {"count": {"op": "testops.checkpointing", "params": {"steps": steps, "step_s": step_s}}}}


def test_a_cancelled_run_resumes_from_its_checkpoint_from_the_run_page(
        browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit(checkpointing(150, 0.02), label="resume from the page")
    page = browsing.open(browsing.login(), f"/runs/{run_id}", "#resume-button")
    assert page.is_disabled("#resume-button")  # running: nothing to resume
    # Cancel once the job has counted steps, so its checkpoint is past step 0.
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('#nodes tbody').textContent)",
                           timeout=30_000)
    page.click("#cancel-button")
    page.wait_for_selector('[data-run][data-state="cancelled"]', timeout=30_000)
    first_job = ui_daemon.run(run_id)["nodes"]["count"]["job_id"]

    page.wait_for_selector("#resume-button:not([disabled])")
    page.click("#resume-button")
    page.wait_for_selector(".notice-ok, .notice", timeout=10_000)
    assert "resumed" in page.inner_text("#actions")
    page.wait_for_selector('[data-run][data-state="succeeded"]', timeout=60_000)

    node = ui_daemon.run(run_id)["nodes"]["count"]
    assert node["job_id"] != first_job and node["outputs"]["step"] == 150
    assert node["outputs"]["resumed_from"] > 0  # from the checkpoint, not from step 0
    assert f"resumed_from: {node['outputs']['resumed_from']}" in page.inner_text("#nodes")
    assert page.is_disabled("#resume-button")  # nothing left to resume
    browsing.shot(page, "run-resumed")
