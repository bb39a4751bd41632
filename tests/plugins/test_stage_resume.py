"""Preference stages keep the SFT guarantees on CPU in deterministic mode: two runs give the same
bytes, a run stopped at step k and resumed from its checkpoint ends with the adapter and loss
curve of one never stopped, and DPO continues an SFT adapter with that adapter as reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.stages import curve, kto_rows, pairs, run_stage, write_records
from tests.support.trainer import run_train, write_dataset
from tunelog.events.errors import JobError
from tunelog.store.artifacts import sha256_file

torch.set_num_threads(1)
pytest.importorskip("trl")


def adapter_bytes(ctx: Any, outputs: dict[str, Any]) -> str:
    return sha256_file(ctx.artifact_path(outputs["adapter"]) / "adapter_model.safetensors")


def stop_at(step: int) -> Any:
    def hook(ctx: Any, kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and body.get("step") == step and "loss" in body:
            ctx.request_stop()
    return hook


@pytest.mark.parametrize("stage,settings,k", [
    # grad_accum 2: 6 steps of 2x4 rows over 16 rows cross two epoch boundaries of the data order
    pytest.param("dpo", {"grad_accum": 2, "max_steps": 6}, 2, id="dpo-accum-epochs"),
    pytest.param("kto", {"max_steps": 6, "scheduler": "cosine", "warmup_steps": 2}, 3, id="kto-cosine"),
    pytest.param("simpo", {"max_steps": 5, "beta": 2.0}, 3, id="simpo"),
    pytest.param("orpo", {"max_steps": 5}, 2, id="orpo"),
    pytest.param("dpo", {"precision": "bf16", "loss_type": "ipo", "max_steps": 4}, 2, id="dpo-ipo-bf16"),
])
def test_stop_then_resume_gives_the_bytes_of_an_uninterrupted_run(
        tmp_path: Path, tiny_model_dir: Path, stage: str, settings: dict[str, Any], k: int) -> None:
    rows = kto_rows(16) if stage == "kto" else pairs(16)
    data = write_records(tmp_path / "data", rows, kind="kto" if stage == "kto" else "preference")
    whole, whole_msgs, whole_ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="whole", stage=stage, **settings)
    again, _, again_ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="again", stage=stage, **settings)
    assert again["adapter"] == whole["adapter"]  # the whole folder, config included

    stopped, stopped_msgs, _ = run_stage(tmp_path, tiny_model_dir, data, job_id="stopped", stage=stage,
                                         on_message=stop_at(k), **settings)
    assert stopped["stopped_at"] == k and "adapter" not in stopped
    resumed, resumed_msgs, resumed_ctx = run_stage(
        tmp_path, tiny_model_dir, data, job_id="resumed", stage=stage,
        resume_from=whole_ctx.artifact_path(stopped["checkpoint"]), **settings)
    assert adapter_bytes(resumed_ctx, resumed) == adapter_bytes(whole_ctx, whole)
    assert curve(stopped_msgs) | curve(resumed_msgs) == curve(whole_msgs)
    assert curve(stopped_msgs, "rewards/chosen") | curve(resumed_msgs, "rewards/chosen") == \
        curve(whole_msgs, "rewards/chosen")
    assert min(curve(resumed_msgs)) == k + 1


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    """kill -9 leaves the checkpoints saved every save_every steps: resuming from one ends in the same bytes."""
    data = write_records(tmp_path / "data", pairs(16), kind="preference")
    settings = {"stage": "dpo", "max_steps": 6, "save_every": 2}
    whole, whole_msgs, ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="whole", **settings)
    saved = {b["step"]: b["sha256"] for kind, b in whole_msgs if kind == "checkpoint"}
    assert sorted(saved) == [2, 4]
    resumed, resumed_msgs, resumed_ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="resumed",
                                                   resume_from=ctx.artifact_path(saved[4]), **settings)
    assert adapter_bytes(resumed_ctx, resumed) == adapter_bytes(ctx, whole)
    assert curve(resumed_msgs) == {k: v for k, v in curve(whole_msgs).items() if k > 4}


def test_resume_refuses_a_checkpoint_of_another_stage_setting(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_records(tmp_path / "data", pairs(8), kind="preference")
    stopped, _, ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="a", stage="dpo", on_message=stop_at(1))
    with pytest.raises(JobError, match="different settings"):
        run_stage(tmp_path, tiny_model_dir, data, job_id="b", stage="dpo", beta=0.5,
                  resume_from=ctx.artifact_path(stopped["checkpoint"]))


def test_dpo_continues_an_sft_adapter_which_is_its_reference(tmp_path: Path, tiny_model_dir: Path) -> None:
    sft, _, sft_ctx = run_train(tmp_path, tiny_model_dir, write_dataset(tmp_path / "chat", n_train=8), job_id="sft",
                                max_steps=3)
    data = write_records(tmp_path / "pairs", pairs(16), kind="preference")
    dpo, messages, ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="dpo", stage="dpo", max_steps=6,
                                   adapter=sft["adapter"])
    # The first step compares the policy with the reference: both are the SFT adapter, so every reward is 0;
    # against the bare base the trained SFT adapter would give non-zero rewards.
    assert curve(messages, "rewards/chosen")[1] == 0.0 and curve(messages, "rewards/rejected")[1] == 0.0
    assert curve(messages, "rewards/margins")[6] > 0.1
    out = ctx.artifact_path(dpo["adapter"])
    assert dpo["adapter"] != sft["adapter"] and not (out / "ref").exists()
    start = sha256_file(sft_ctx.artifact_path(sft["adapter"]) / "adapter_model.safetensors")
    assert sha256_file(out / "adapter_model.safetensors") != start
    assert dpo["metrics"]["start_adapter"] == sft["adapter"]
