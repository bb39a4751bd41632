"""The whole job from the browser, in headless Chromium against a real daemon with the built-in
plugins and the tiny model: upload a small file, map its columns and render it through the
model's chat template on the Data page, train on it from the Train page (a bad parameter is
refused as it is typed, the estimate follows the settings), follow the run in a second tab, merge
the adapter on the Merge page in a third, and export the merged adapter from the adapters page in
a fourth. Every step is photographed (the README's web UI section shows these screenshots).

The walk takes about a minute: six jobs (prepare, render, train, combine, merge_and_unload,
export.hf) each start a worker that imports torch; splitting it would train the adapter twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.trainer import chat_records
from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon
from tunelog.frontends.cli.cmd_export import export_graph
from tunelog.frontends.cli.cmd_train import train_graph

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MAX_LENGTH = 24
"""Short enough that the tiny chat template cuts some of the uploaded records."""
SETTINGS = {"max_steps": "4", "batch_size": "4", "max_length": "64", "pad_to_multiple": "16", "threads": "1",
            "lr": "0.05"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding one file, and (elsewhere) the file the test uploads: question/answer
    columns, which auto-detection cannot place until they are mapped."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "kept.jsonl").write_text(json.dumps({"text": "a kept file"}) + "\n")
    rows = [{"question": r["messages"][0]["content"], "answer": r["messages"][1]["content"]}
            for r in chat_records(12)]
    (folder.parent / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def qa_rows(data_dir: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (data_dir.parent / "qa.jsonl").read_text().splitlines()]


def too_long(model: Path, data_dir: Path) -> int:
    """Records of the upload longer than MAX_LENGTH through the model's chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    chats = [[{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]
             for r in qa_rows(data_dir)]
    return sum(len(tok.apply_chat_template(c, tokenize=True)["input_ids"]) > MAX_LENGTH for c in chats)


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[UiDaemon]:
    u = start_ui_daemon(tmp_path_factory.mktemp("whole-job") / "home", builtins=True,
                        env={"TUNELOG_DATA_DIRS": str(data_dir), "TUNELOG_UPLOAD_MAX_MB": "1"})
    yield u
    u.daemon.stop()


def test_data_train_follow_merge_export_from_the_browser(browsing: Browsing, ui_daemon: UiDaemon, data_dir: Path,
                                                  tiny_model_dir: Path) -> None:
    # 1. Data: the data folder's file is offered; upload another; map its columns; see the records.
    data = browsing.login()
    data.click('#plugin-nav a[data-plugin="datasets"]')
    data.wait_for_selector("#data-upload")
    assert str(data_dir / "kept.jsonl") in data.inner_text("#data-pick")
    data.set_input_files("#data-file", str(data_dir.parent / "qa.jsonl"))
    data.click("#data-upload-button")
    data.wait_for_selector("#data .notice-error")  # question/answer: no format fits until mapped
    assert "cannot tell the format" in data.inner_text("#data .notice-error")
    uploaded = data.input_value("#data-source")
    assert uploaded.endswith("/qa.jsonl") and "/artifacts/" in uploaded
    events = ui_daemon.daemon.get("/v1/events", params={"type": "file-uploaded"}).json()
    assert [e["event"]["name"] for e in events["events"] if e["type"] == "file-uploaded"] == ["qa.jsonl"]
    data.select_option("#data-format", "alpaca")
    data.wait_for_selector("#data-col-instruction")
    data.fill("#data-col-instruction", "question")
    data.fill("#data-col-output", "answer")
    data.wait_for_selector('#data-counts[data-used="12"]')
    assert data.get_attribute("#data-counts", "data-left-out") == "0"
    trained = data.locator('#data-records .turn[data-trained="true"]')
    assert trained.count() == 5 and all(t.startswith("assistant:") for t in trained.all_inner_texts())
    assert data.locator('#data-records .turn[data-trained="false"]').count() == 5
    assert data.inner_text("#plugin-page-title").startswith("Data")

    # ... and through the tiny model's chat template: the trained tokens are the answers with their
    # end of turn, and the records max_length cuts are counted as the trainer's encoding counts them.
    data.fill("#data-model", str(tiny_model_dir))
    data.fill("#data-max-length", str(MAX_LENGTH))
    data.click("#data-render")
    data.wait_for_selector("#data-rendered", timeout=120_000)
    pieces = data.locator('#data-rendered .record').first.locator(".tok")
    assert pieces.first.inner_text().startswith("<|im_start|>")
    answers = [r["answer"] for r in qa_rows(data_dir)]
    trained = data.locator('#data-rendered .tok[data-trained="true"]').all_inner_texts()
    assert trained and all(t.endswith("<|im_end|>") and t.removesuffix("<|im_end|>").strip() in answers
                           for t in trained if "<|im_end|>" in t)
    cut = too_long(tiny_model_dir, data_dir)
    assert 0 < cut < 12 and data.get_attribute("#data-rendered", "data-truncated") == str(cut)
    assert "truncated" in data.inner_text("#data-encoding")
    data.fill("#data-max-length", str(MAX_LENGTH + 1))  # the shown render no longer fits the form
    data.wait_for_selector("#data-rendered", state="detached")
    data.fill("#data-max-length", str(MAX_LENGTH))
    data.wait_for_selector("#data-rendered")
    browsing.shot(data, "whole-job-1-data", full_page=True)

    # 2. Train: the Data page hands over the file, format and mapping.
    data.click("#data-train")
    data.wait_for_selector("#train-start")
    train = data
    assert train.input_value("#train-data") == uploaded
    assert train.input_value("#train-model") == str(tiny_model_dir)  # handed over with the data
    assert train.input_value("#train-param-max_length") == str(MAX_LENGTH)  # as rendered
    assert train.inner_text("#plugin-page-title").startswith("Train")
    assert {"sft", "dpo", "kto", "orpo", "simpo", "grpo"} <= set(
        train.locator("#train-stage option").all_inner_texts())
    train.wait_for_selector('#train-estimate[data-steps="3"]')  # 12 rows, batch 4, one epoch
    assert int(train.get_attribute("#train-estimate", "data-memory") or 0) > 0
    train.select_option("#train-preset", "demo-facts")
    train.wait_for_selector("#train-preset-values")
    assert "lr" in train.inner_text("#train-preset-values")
    train.select_option("#train-preset", "")
    train.wait_for_selector("#train-preset-values", state="detached")
    train.click("#train-params summary")
    train.fill("#train-param-lr", "fast")
    train.wait_for_selector("#train-problem-lr")
    assert "expected number" in train.inner_text("#train-problem-lr")
    assert train.is_disabled("#train-start")
    for name, value in SETTINGS.items():
        train.fill(f"#train-param-{name}", value)
    train.wait_for_selector('#train-problems[data-count="0"]')
    train.wait_for_selector('#train-estimate[data-steps="4"]')  # max_steps
    train.evaluate("() => window.scrollTo(0, 0)")
    browsing.shot(train, "whole-job-2-train", full_page=False)
    train.click("#train-start")
    train.wait_for_url("**/runs/*", timeout=60_000)
    run_id = train.url.rsplit("/", 1)[-1]
    graph = ui_daemon.run(run_id)["graph"]
    params = {k: json.loads(v) for k, v in SETTINGS.items()}
    expected = train_graph(model=str(tiny_model_dir), data=uploaded, params=params,
                           data_params={"format": "alpaca", "columns": {"instruction": "question", "output": "answer"}})
    assert {n: {k: graph["nodes"][n][k] for k in ("op", "inputs")} for n in graph["nodes"]} == {
        n: {k: v for k, v in node.items() if k in ("op", "inputs")} for n, node in expected["nodes"].items()}
    assert graph["nodes"]["data"]["params"]["columns"] == {"instruction": "question", "output": "answer"}
    assert {k: graph["nodes"]["train"]["params"][k] for k in params} == params

    # 3. Follow, in a second tab, while the first stays on the run page.
    follow = browsing.open(browsing.new_page(), f"/runs/{run_id}", "[data-run]")
    follow.wait_for_selector('[data-run][data-state="succeeded"]', timeout=600_000)
    train.wait_for_selector('[data-run][data-state="succeeded"]', timeout=60_000)
    browsing.shot(follow, "whole-job-3-run", full_page=False)
    adapter = ui_daemon.run(run_id)["nodes"]["train"]["outputs"]["adapter"]

    # 4. Merge, in a third tab.
    merge = browsing.open(browsing.new_page(), "/plugin-pages/adapter_merge", f'input[data-sha="{adapter}"]')
    merge.click(f'input[data-sha="{adapter}"]')
    merge.wait_for_selector(f'input[data-sha="{adapter}"]:checked')
    assert merge.get_attribute("#merge-model", "placeholder") == str(tiny_model_dir)
    assert "cat (exact)" in merge.inner_text("#merge-exactness")
    merge.click("#merge-button")
    merge.wait_for_selector("#merge-result", timeout=300_000)
    merged = merge.get_attribute("#merge-result", "data-sha")
    assert merged and merged != adapter
    browsing.shot(merge, "whole-job-4-merged", full_page=False)

    # 5. Export the merged adapter from the adapters page, in a fourth tab, while the others follow.
    adapters = browsing.open(browsing.new_page(), "/adapters", f'span[id="{merged}"]')
    assert "merge" in adapters.locator(f'#adapters tr:has(span[id="{merged}"])').inner_text()
    adapters.click(f'a.export-link[data-sha="{merged}"]')
    export = adapters
    export.wait_for_selector("#export-button")
    assert export.input_value("#export-adapter") == merged
    assert export.get_attribute("#export-model", "placeholder") == str(tiny_model_dir)
    export.select_option("#export-format", "hf")
    export.wait_for_selector('#export-problems[data-count="0"]')
    export.click("#export-button")
    export.wait_for_selector("#export-progress [data-node=merge]")
    export.wait_for_selector("#export-result", timeout=300_000)
    sha, folder = export.get_attribute("#export-result", "data-sha"), export.get_attribute("#export-result", "data-path")
    run = ui_daemon.run(export.locator(".run-outcome a").first.inner_text())
    wanted = export_graph(merged, fmt="hf", base=str(tiny_model_dir), params={})["nodes"]
    assert {n: (node["op"], node["inputs"]) for n, node in run["graph"]["nodes"].items()} == {
        n: (node["op"], node["inputs"]) for n, node in wanted.items()}
    assert sha == run["nodes"]["export"]["outputs"]["model"] and sha in (folder or "")
    assert (Path(folder or "") / "config.json").is_file() and list(Path(folder or "").glob("*.safetensors"))
    assert export.locator('#export-progress [data-state="completed"]').count() == 2
    browsing.shot(export, "whole-job-5-export", full_page=False)
    assert merge.get_attribute("#merge-result", "data-sha") == merged  # the other tabs still live
    maps = Path(f"/proc/{ui_daemon.daemon.proc.pid}/maps").read_text()  # the pages ran in the daemon
    assert "libtorch" not in maps and "/torch/" not in maps and "/transformers/" not in maps


def test_an_upload_over_the_limit_is_refused_and_stores_nothing(browsing: Browsing, ui_daemon: UiDaemon,
                                                               tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"text": "' + b"x" * (1024 * 1024 + 10) + b'"}\n')
    before = len(list((ui_daemon.daemon.home / "artifacts" / "sha256").rglob("*")))
    uploads = ui_daemon.daemon.get("/v1/events", params={"type": "file-uploaded"}).json()
    page = browsing.open(browsing.login(), "/plugin-pages/datasets", "#data-upload")
    page.set_input_files("#data-file", str(big))
    page.click("#data-upload-button")
    page.wait_for_selector("#data-upload-error")
    assert "more than the 1 MB allowed (TUNELOG_UPLOAD_MAX_MB)" in page.inner_text("#data-upload-error")
    assert len(list((ui_daemon.daemon.home / "artifacts" / "sha256").rglob("*"))) == before
    assert ui_daemon.daemon.get("/v1/events", params={"type": "file-uploaded"}).json() == uploads

