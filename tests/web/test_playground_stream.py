"""The playground's streamed answers, rendered by reactpy's real Layout over real services on a real
SQLite log (no browser; tests/web/test_ui_merge.py streams a real job in Chromium): while the job
runs, its latest progress message fills the columns, the one generating marked; the report replaces
them when the run ends; the job page and `tunectl` show only the message's first line."""

from __future__ import annotations

import json
from typing import Any

from tests.web.test_runs_page import render_page, text, walk
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.frontends.cli.follow import PlainView
from tunelog.frontends.web.pages.job import JobPage
from tunelog.frontends.web.pages.playground import PlaygroundPage, generate_graph, streamed
from tunelog.frontends.web.ui import Ui

PROMPT = "what is the river"
ADAPTER = "ab" * 32
NAME = f"a{ADAPTER[:12]}"


def message(answers: dict[str, str], generating: str | None) -> str:
    body = {"prompt": 0, "variants": ["base", NAME], "answers": answers, "generating": generating}
    return f"generating {generating} (answer 1 of 2)\n{json.dumps(body)}"


def columns(model: Any) -> dict[str, tuple[str, str]]:
    """data-answer -> (data-state, text) of each column."""
    return {d["attributes"]["data-answer"]: (d["attributes"]["data-state"], text(walk(d, "pre")[0]))
            for d in walk(model, "div") if "data-answer" in d.get("attributes", {})}


def final(model: Any) -> str:
    [answers] = [d for d in walk(model, "div") if d.get("attributes", {}).get("id") == "answers"]
    return str(answers["attributes"]["data-final"])


def test_streamed_answers_fill_their_columns_until_the_report_replaces_them(services: Any) -> None:
    graph = generate_graph("m", PROMPT, [ADAPTER], max_new_tokens="8")
    store, page = services.store, lambda: render_page(PlaygroundPage(Ui(services), query={"run": "r1"}))
    store.append("run-r1", [R.RunSubmitted(run_id="r1", graph=graph, order=["generate"], code={}),
                            R.NodeQueued(run_id="r1", node="generate", job_id="j1", cache_key="k", inputs={})])
    store.append("job-j1", [J.JobQueued(job_id="j1", plugin="evaluate", operation="generate", params={},
                                        code_hash="c", plugin_version="0", run_id="r1"),
                            J.JobStarted(job_id="j1", pid=1, slot="cpu0", log_path="", run_id="r1"),
                            J.JobProgress(job_id="j1", step=0, total=2, message="loading")])
    assert columns(page()) == {}  # nothing streamed yet

    store.append("job-j1", [J.JobProgress(job_id="j1", step=0, total=2, message=message({"base": "the ri"}, "base"))])
    assert columns(page()) == {"base": ("generating", "the ri"), NAME: ("waiting", "")} and final(page()) == "false"
    store.append("job-j1", [J.JobProgress(job_id="j1", step=1, total=2,
                                          message=message({"base": "the river", NAME: "a"}, NAME))])
    assert columns(page()) == {"base": ("done", "the river"), NAME: ("generating", "a")}
    job = render_page(JobPage(Ui(services), "j1", query={}))
    assert f"step 1/2 generating {NAME} (answer 1 of 2)" in text(job) and "variants" not in text(job)

    store.append("job-j1", [J.JobProgress(job_id="j1", step=2, total=2,
                                          message=message({"base": "the river", NAME: "a lake"}, None))])
    assert columns(page()) == {"base": ("done", "the river"), NAME: ("done", "a lake")} and final(page()) == "false"

    report = {PROMPT: {"base": "the river", NAME: "a lake"}}
    store.append("job-j1", [J.JobSucceeded(job_id="j1", outputs={"report": report}, duration_s=1.0)])
    store.append("run-r1", [R.NodeCompleted(run_id="r1", node="generate", job_id="j1", cache_key="k",
                                            outputs={"report": report})])
    assert columns(page()) == {"base": ("done", "the river"), NAME: ("done", "a lake")} and final(page()) == "true"


def test_a_message_without_answers_is_no_stream_and_the_cli_shows_only_its_note(capsys: Any) -> None:
    assert streamed("generating base") is None and streamed("note\n{not json") is None
    assert streamed("note\n" + json.dumps({"prompt": "x"})) is None
    assert streamed(message({"base": "x"}, "base")) is not None
    view = PlainView()
    view.progress("j1", "generate", 1, 2, message({"base": "the river"}, "base"))
    view.done("j1")
    assert capsys.readouterr().out.strip().endswith("generating base (answer 1 of 2)")
