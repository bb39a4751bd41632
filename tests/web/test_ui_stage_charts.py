"""The run page charts each stage's own metrics, in headless Chromium against a real daemon: a DPO node
(loss, chosen and rejected rewards, margin, accuracy) and a GRPO node (mean reward, the reward
function's mean, KL, completion length) trained on a tiny Llama, one chart per series with a point
per step."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stages import pairs
from tests.web.conftest import Browsing, UiDaemon, start_ui_daemon

pytestmark = [pytest.mark.browser, pytest.mark.slow]
pytest.importorskip("trl")

STEPS = 3
SMALL = {"max_steps": STEPS, "batch_size": 2, "threads": 1, "max_length": 64, "pad_to_multiple": 16, "lr": 0.01}
DPO = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
GRPO = ("loss", "reward", "rewards/regex_format/mean", "kl", "completions/mean_length")


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDaemon]:
    """A daemon with the built-in plugins (datasets, lora_trainer, rewards), once they are loaded."""
    u = start_ui_daemon(tmp_path_factory.mktemp("ui-stages") / "home", builtins=True)
    deadline = time.monotonic() + 120
    while {"datasets", "lora_trainer", "rewards"} - {p["name"] for p in u.daemon.get("/v1/plugins").json()["plugins"]
                                                     if p["status"] == "loaded"}:
        assert time.monotonic() < deadline, "the built-in plugins did not load"
        time.sleep(0.2)
    yield u
    u.daemon.stop()


def jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def charts(page: Any, node: str) -> dict[str, int]:
    """Chart title -> points drawn from, for one node's metrics panel."""
    found = page.eval_on_selector_all(f'section[data-node="{node}"] figure.chart',
                                      "els => els.map(e => [e.dataset.metric, e.dataset.points])")
    return {name: int(n) for name, n in found}


def test_the_run_page_charts_dpo_and_grpo_metrics(browsing: Browsing, ui_daemon: UiDaemon, tiny_model_dir: Path,
                                                  tmp_path: Path) -> None:
    prefs = jsonl(tmp_path / "pairs.jsonl", [{"prompt": p["prompt"][0]["content"], "chosen": p["chosen"],
                                              "rejected": p["rejected"]} for p in pairs(8)])
    prompts = jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"what is the {w}"} for w in ("river", "stone")])
    model = str(tiny_model_dir)
    graph = {"description": "stage charts", "nodes": {
        "prefs": {"op": "datasets.prepare", "inputs": {"source": prefs}},
        "prompts": {"op": "datasets.prepare", "inputs": {"source": prompts}},
        "dpo": {"op": "lora_trainer.train", "params": {**SMALL, "stage": "dpo"},
                "inputs": {"model": model, "dataset": {"node": "prefs", "output": "dataset"}}},
        "grpo": {"op": "lora_trainer.train",
                 "params": {**SMALL, "stage": "grpo", "rewards": ["rewards.regex_format"], "beta": 0.1,
                            "reward_params": {"rewards.regex_format": {"pattern": "blue|green"}},
                            "num_generations": 4, "max_completion_length": 6},
                 "inputs": {"model": model, "dataset": {"node": "prompts", "output": "dataset"}}}}}
    run_id = ui_daemon.submit(graph, label="stage charts")
    ui_daemon.wait_success(run_id, timeout=300)
    page = browsing.open(browsing.login(), f"/runs/{run_id}", 'section[data-node="grpo"] figure.chart')
    dpo, grpo = charts(page, "dpo"), charts(page, "grpo")
    assert [m for m in dpo if m in DPO] == list(DPO), dpo  # in this order, before lr and tokens/s
    assert all(dpo[m] == STEPS for m in DPO), dpo
    assert [m for m in grpo if m in GRPO] == list(GRPO), grpo
    assert all(grpo[m] == STEPS for m in GRPO), grpo
    browsing.shot(page, "run-stage-charts")
