"""Stage requests that cannot run are refused before anything loads, naming the field and what to do;
the optional input adapter continues training in the SFT stage too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.stages import curve, kto_rows, pairs, run_stage, write_records
from tests.support.trainer import run_train, write_dataset
from tunelog.events.errors import ValidationError
from tunelog.plugins.lora_trainer import backend, checks
from tunelog.plugins.lora_trainer.support import supported_problems

torch.set_num_threads(1)


def problems(**given: object) -> dict[str, str]:
    return dict(supported_problems(backend.resolve(given), cuda_available=False))


def test_stage_settings_that_cannot_run_are_named() -> None:
    assert "method" in problems(stage="dpo", method="full")
    assert "method" in problems(stage="kto", method="pissa")  # the disabled adapter would not be the base
    assert "packing" in problems(stage="orpo", packing=True)
    assert "devices" in problems(stage="simpo", devices=2)
    bad = problems(stage="dpo", loss_type="kto")
    assert "'kto' is not a loss of stage dpo" in bad["loss_type"] and "sigmoid" in bad["loss_type"]
    assert "loss_type" in problems(stage="orpo", loss_type="ipo")
    assert "loss_type" in problems(loss_type="ipo")  # sft has none
    assert problems(stage="dpo", loss_type="robust", label_smoothing=0.1) == {}
    assert problems(stage="dpo", loss_type="sigmoid+sft") == {}
    assert "'kto+nope' is not a loss of stage dpo" in problems(stage="dpo", loss_type="sigmoid+kto+nope")["loss_type"]
    assert "names a loss twice" in problems(stage="dpo", loss_type="sft+sft")["loss_type"]
    assert "is not a loss of stage kto" in problems(stage="kto", loss_type="kto+kto")["loss_type"]
    assert problems(stage="kto", loss_type="apo_zero_unpaired") == {}
    assert "rewards" in problems(stage="grpo")  # needs at least one reward operation
    assert "rewards" in problems(stage="dpo", rewards=["rewards.regex_format"])
    assert problems(stage="grpo", rewards=["rewards.regex_format"], loss_type="dr_grpo") == {}


def test_submit_check_refuses_continuing_an_adapter_with_full_fine_tuning() -> None:
    found, _ = checks.train(backend.resolve({"method": "full"}), {"adapter": "a" * 64}, {})
    assert [where for where, _ in found] == ["inputs.adapter"]
    assert checks.train(backend.resolve({"stage": "dpo"}), {"adapter": "a" * 64}, {})[0] == []


@pytest.mark.parametrize("stage,kind,rows,hint", [
    ("dpo", "chat", None, "--stage sft"),
    ("kto", "preference", pairs(4), "--stage dpo, orpo or simpo"),
    ("orpo", "kto", kto_rows(4), "--stage kto"),
])
def test_a_dataset_of_the_wrong_kind_is_refused_naming_the_stage(
        tmp_path: Path, tiny_model_dir: Path, stage: str, kind: str, rows: list | None, hint: str) -> None:
    pytest.importorskip("trl")
    data = write_dataset(tmp_path / "d", n_train=4) if rows is None else write_records(tmp_path / "d", rows, kind=kind)
    with pytest.raises(ValidationError, match=f"stage {stage} trains on") as raised:
        run_stage(tmp_path, tiny_model_dir, data, stage=stage, max_steps=1)
    assert raised.value.hint == f"use {hint}"
    assert not list((tmp_path / "artifacts").glob("**/adapter_model.safetensors"))


def test_sft_continues_an_input_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "chat", n_train=8)
    first, first_msgs, _ = run_train(tmp_path, tiny_model_dir, data, job_id="first", max_steps=4)
    fresh, fresh_msgs, _ = run_stage(tmp_path, tiny_model_dir, data, job_id="fresh", max_steps=2)
    more, more_msgs, _ = run_stage(tmp_path, tiny_model_dir, data, job_id="more", max_steps=2,
                                   adapter=first["adapter"])
    # The same first batch: from the trained adapter its loss is the one the first run reached, not a fresh start.
    assert curve(more_msgs)[1] < curve(fresh_msgs)[1] - 0.1
    assert abs(curve(more_msgs)[1] - curve(first_msgs)[4]) < abs(curve(fresh_msgs)[1] - curve(first_msgs)[4])
    assert more["adapter"] not in (first["adapter"], fresh["adapter"])
