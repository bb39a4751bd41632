"""Several browser tabs on live pages at once, through a whole job: every tab keeps its websocket,
shows the live node state and ends with the complete loss curve; the daemon logs no render error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Browsing, UiDaemon
from tests.web.test_ui_browser import LOSS, ticker

pytestmark = pytest.mark.browser

RENDER_ERRORS = ("Hook stack is in an invalid state", "Failed to render", "Traceback", " ERROR ")


def logged_points(ui: UiDaemon, job_id: str, metric: str) -> int:
    """How many points of `metric` the job's JobMetrics events hold (the truth the chart draws)."""
    r = ui.daemon.get("/v1/events", params={"stream": f"job-{job_id}", "type": "job-metrics", "limit": 10_000})
    assert r.status_code == 200, r.text
    return sum(1 for e in r.json()["events"] for p in e["event"]["points"] if metric in p)


def node_state(page: Any, node: str) -> str:
    return str(page.inner_text(f"#nodes tr:has(b:text-is('{node}')) .state"))


def test_three_tabs_follow_a_whole_job_without_a_render_error(browsing: Browsing, ui_daemon: UiDaemon) -> None:
    log_file = ui_daemon.daemon.paths.log_file
    log_before = log_file.read_text()
    run_id = ui_daemon.submit(ticker(80, 0.25), label="three tabs")
    first = browsing.login()
    tabs = [browsing.open(first, f"/runs/{run_id}", LOSS),
            *(browsing.open(browsing.new_page(), f"/runs/{run_id}", LOSS) for _ in range(2))]
    for tab in tabs:  # the node's job is running: the page says so while it runs
        tab.wait_for_selector("#nodes tr:has(b:text-is('tick')) .state-running", timeout=20_000)
    browsing.shot(tabs[0], "run-three-tabs-running")

    ui_daemon.wait_success(run_id, timeout=120)
    job_id = ui_daemon.run(run_id)["nodes"]["tick"]["job_id"]
    expected = logged_points(ui_daemon, job_id, "loss")
    assert expected == 80
    for tab in tabs:
        tab.wait_for_selector(f'[data-run][data-state="succeeded"] {LOSS}[data-points="{expected}"]',
                              timeout=20_000)
        assert node_state(tab, "tick") == "completed"
    browsing.shot(tabs[1], "run-three-tabs-done")
    new_lines = log_file.read_text()[len(log_before):]
    assert [line for line in new_lines.splitlines() if any(e in line for e in RENDER_ERRORS)] == []


# Something drawn inside the chart besides its background: the largest drawn area of its shapes.
DRAWN_AREA = """(sel) => Math.max(0, ...[...document.querySelectorAll(sel + ' svg > :not(rect):not(text)')]
  .map(e => { const b = e.getBBox(); return b.width * b.height; }))"""


def test_a_one_point_loss_chart_is_visible(browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit(ticker(1, 0.0), label="one step")
    ui_daemon.wait_success(run_id)
    page = browsing.open(browsing.login(), f"/runs/{run_id}", f'{LOSS}[data-points="1"]')
    assert page.evaluate(DRAWN_AREA, LOSS) > 0
    spark = f'#runs tr:has(a[href="/runs/{run_id}"])'
    browsing.open(page, "/", f'{spark} svg.spark[data-points="1"]')
    assert page.evaluate(DRAWN_AREA, spark) > 0
    browsing.shot(page, "runs-one-point")


ROWS_MATCH = """([col, how, s]) => {
  const cells = [...document.querySelectorAll(`#events tbody tr td:nth-child(${col})`)].map(td => td.textContent);
  return cells.length > 0 && cells.every(t => how === 'prefix' ? t.startsWith(s) : how === 'exact' ? t === s
                                          : t.toLowerCase().includes(s.toLowerCase()));
}"""


def test_events_filter_by_stream_prefix_part_and_any_text(browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit(ticker(2, 0.0), label="needle-in-the-log")
    ui_daemon.wait_success(run_id)
    page = browsing.open(browsing.login(), "/events", "#events tbody tr")
    other = browsing.open(browsing.new_page(), "/events", "#events tbody tr")  # a second tab, filters its own

    page.fill("#events-stream", "job-")  # "starts with" is the default
    page.wait_for_function(ROWS_MATCH, arg=[3, "prefix", "job-"])
    assert other.locator("#events tbody tr td:nth-child(3)", has_text="run-").count() > 0
    page.select_option("#events-stream-match", "contains")
    part = run_id[3:12]
    page.fill("#events-stream", part)
    page.wait_for_function(ROWS_MATCH, arg=[3, "contains", part])
    page.select_option("#events-stream-match", "exact")
    page.fill("#events-stream", f"run-{run_id}")
    page.wait_for_function(ROWS_MATCH, arg=[3, "exact", f"run-{run_id}"])
    browsing.shot(page, "events-filtered")

    page.fill("#events-stream", "")
    page.fill("#events-text", "NEEDLE-in-the")
    page.wait_for_function(ROWS_MATCH, arg=[5, "contains", "needle-in-the-log"])
    assert page.inner_text("#events tbody tr td:nth-child(4)") == "run-submitted"


def logged_lines(ui: UiDaemon, job_id: str) -> int:
    r = ui.daemon.get("/v1/events", params={"stream": f"job-{job_id}", "type": "job-log", "limit": 10_000})
    return sum(len(e["event"]["lines"]) for e in r.json()["events"])


def test_a_job_page_follows_its_log_and_shows_its_history(browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit(ticker(50, 0.25), label="job page")
    page = browsing.open(browsing.login(), f"/runs/{run_id}", "#nodes a[href^='/jobs/']")
    page.click("#nodes a[href^='/jobs/']")
    page.wait_for_selector('[data-job][data-state="running"]', timeout=20_000)
    seen = int(page.get_attribute("#job-log-count", "data-lines") or 0)
    page.wait_for_function("(n) => parseInt(document.querySelector('#job-log-count').dataset.lines) > n", arg=seen)
    ui_daemon.wait_success(run_id)
    job_id = ui_daemon.run(run_id)["nodes"]["tick"]["job_id"]
    page.wait_for_selector(f'[data-job="{job_id}"][data-state="succeeded"]'
                           f' #job-log-count[data-lines="{logged_lines(ui_daemon, job_id)}"]')
    assert "step 50 loss 0.1400" in page.inner_text("#job-log")
    types = page.locator("#job-history tbody tr td:nth-child(3)").all_inner_texts()
    assert types == ["job-queued", "job-started", "job-succeeded"]
    browsing.shot(page, "job")


def test_a_failed_jobs_page_shows_the_whole_error(browsing: Browsing, ui_daemon: UiDaemon) -> None:
    run_id = ui_daemon.submit({"nodes": {"f": {"op": "testops.fail"}}}, label="failing job")
    assert ui_daemon.wait_run(run_id)["state"] == "failed"
    job_id = ui_daemon.run(run_id)["nodes"]["f"]["job_id"]
    page = browsing.open(browsing.login(), f"/jobs/{job_id}", "#job-error")
    assert "boom" in page.inner_text("#job-error .error-text")
    assert 'raise ValueError("boom")' in page.inner_text("#job-traceback")
    assert "job-failed" in page.locator("#job-history tbody tr td:nth-child(3)").all_inner_texts()
    browsing.shot(page, "job-failed")
    browsing.open(page, "/jobs/j-no-such-job", "main h1")
    assert page.inner_text("main h1") == "Job not found"
