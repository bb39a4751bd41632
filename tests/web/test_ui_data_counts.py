"""The run page shows what happened to the data rows (counts per reason, placeholder warning),
in headless Chromium against a real daemon running the built-in datasets plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDaemon]:
    """A daemon with the built-in plugins (the datasets plugin prepares the data)."""
    u = start_ui_daemon(tmp_path_factory.mktemp("ui-data") / "home", builtins=True)
    yield u
    u.daemon.stop()


def test_run_page_shows_the_data_counts_and_warnings(browsing: Browsing, ui_daemon: UiDaemon, tmp_path: Path) -> None:
    rows = [{"instruction": "Greet {{name}}." if i < 3 else f"Greet person {i}.", "output": "Hello!"} for i in range(6)]
    data = tmp_path / "greet.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_id = ui_daemon.submit({"nodes": {"data": {"op": "datasets.prepare", "inputs": {"source": str(data)},
                                                  "params": {"max_rows": 5}}}})
    ui_daemon.wait_success(run_id)
    page = browsing.open(browsing.login(), f"/runs/{run_id}", ".data-counts")
    assert page.locator(".data-counts").all_inner_texts() == [
        "6 alpaca rows: 5 used · 1 left out (max_rows)",
        "warning: 3 rows still hold a template placeholder such as {{name}} (greet.jsonl row 1, greet.jsonl row 2, "
        "greet.jsonl row 3)"]
