"""The preference stages (DPO, KTO, ORPO, SimPO) on a tiny Llama on CPU: each stage's own metric
moves the right way against the first step's value, measured in the run, on a synthetic signal
(the preferred answer is the other one plus a fixed sign-off, several epochs over 16 rows)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.support.stages import curve, kto_rows, pairs, run_stage, write_records

torch.set_num_threads(1)
pytest.importorskip("trl")


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_records(tmp_path_factory.mktemp("pairs"), pairs(16), kind="preference")


@pytest.fixture(scope="module")
def kto_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_records(tmp_path_factory.mktemp("kto"), kto_rows(16), kind="kto")


def test_dpo_margin_rises_and_every_metric_is_reported(tmp_path: Path, tiny_model_dir: Path, pair_data: Path) -> None:
    outputs, messages, ctx = run_stage(tmp_path, tiny_model_dir, pair_data, stage="dpo", max_steps=8, run_id="r1")
    started = [b["event"] for kind, b in messages if kind == "event"]
    assert [type(e).__name__ for e in started] == ["TrainingStarted"]
    assert started[0].params["stage"] == "dpo" and started[0].libraries["trl"] == "1.16.0"
    margins, accuracy = curve(messages, "rewards/margins"), curve(messages, "rewards/accuracies")
    assert margins[1] == 0.0  # the first step: policy == reference (the base with the adapter disabled)
    assert margins[8] > 0.3 and accuracy[8] == 1.0
    assert curve(messages)[8] < curve(messages)[1]
    for name in ("rewards/chosen", "rewards/rejected", "lr", "grad_norm", "tokens_per_s"):
        assert len(curve(messages, name)) == 8, name
    assert outputs["metrics"]["stage"] == "dpo" and outputs["metrics"]["dataset"]["encoding"]["train"]["used"] == 16
    folder = ctx.artifact_path(outputs["adapter"])
    assert {p.name for p in folder.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert not (folder / "ref").exists()


@pytest.mark.parametrize("stage,settings", [
    pytest.param("kto", {}, id="kto"),
    pytest.param("orpo", {}, id="orpo"),
    pytest.param("simpo", {"beta": 2.0}, id="simpo"),
    pytest.param("dpo", {"loss_type": "ipo"}, id="dpo-ipo"),
    pytest.param("dpo", {"loss_type": "robust", "label_smoothing": 0.1}, id="dpo-robust"),
])
def test_stage_loss_falls(tmp_path: Path, tiny_model_dir: Path, pair_data: Path, kto_data: Path, stage: str,
                          settings: dict) -> None:
    data = kto_data if stage == "kto" else pair_data
    _, messages, _ = run_stage(tmp_path, tiny_model_dir, data, stage=stage, max_steps=8, **settings)
    loss = curve(messages)
    assert loss[8] < loss[1] - 0.02, loss
    assert {"rewards/chosen", "rewards/margins"} <= {k for kind, b in messages if kind == "metrics" for k in b}
    if stage == "kto":
        assert len(curve(messages, "kl")) == 8


def test_dpo_with_the_sft_term_adds_the_chosen_nll_and_lifts_the_chosen_answers(
        tmp_path: Path, tiny_model_dir: Path, pair_data: Path) -> None:
    """`sigmoid+sft` (RPO): TRL sums the two losses. At the first step the policy is the reference,
    so the sigmoid part is ln 2 and the rest is the chosen answers' NLL; the NLL term lifts the chosen
    answers' reward above what plain DPO reaches in the same steps from the same start."""
    _, plain, _ = run_stage(tmp_path / "plain", tiny_model_dir, pair_data, stage="dpo", max_steps=8)
    _, rpo, _ = run_stage(tmp_path / "rpo", tiny_model_dir, pair_data, stage="dpo", max_steps=8,
                          loss_type="sigmoid+sft")
    assert abs(curve(plain)[1] - math.log(2)) < 1e-4
    assert curve(rpo)[1] > math.log(2) + 1.0  # + the NLL of the chosen answers under the untrained model
    assert curve(rpo)[8] < curve(rpo)[1] - 0.5
    assert curve(rpo, "rewards/chosen")[8] > curve(plain, "rewards/chosen")[8] + 0.05


def test_dpo_counts_rows_whose_prompt_fills_max_length(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = pairs(8)
    rows[3]["prompt"] = [{"role": "user", "content": " ".join(["what is the river"] * 30)}]
    data = write_records(tmp_path / "data", rows, kind="preference")
    outputs, messages, _ = run_stage(tmp_path, tiny_model_dir, data, stage="dpo", max_steps=2, max_length=40)
    counts = outputs["metrics"]["dataset"]["encoding"]["train"]
    assert counts["records"] == 8 and counts["dropped_no_target"] == 1 and counts["used"] == 7
    lines = [b["line"] for kind, b in messages if kind == "log"]
    assert "train: 8 records: 7 used · 1 dropped (no response token within max_length)" in lines
    # the line `tunectl runs show` and the run page print, from prepare's report and the trainer's counts
    from tunelog.frontends.data_counts import data_counts

    shown = data_counts([{"report": {"rows": 8, "used": 8, "format": "preference"}}, {"metrics": outputs["metrics"]}])
    assert shown == ["8 preference rows: 7 used · 1 dropped (no response token within max_length 40)"]
