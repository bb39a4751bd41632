"""Each stage's -small preset, with its own hyperparameters (only steps, batch and length shortened
for CPU), moves its stage's metric the right way on the tiny model; every stage preset is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.stages import curve, kto_rows, pairs, write_records
from tunelog.daemon.plugin_host.presets import apply_preset
from tunelog.daemon.plugin_host.presets import load_presets as load_presets_file
from tunelog.plugins.context import Context
from tunelog.plugins.lora_trainer import backend
from tunelog.plugins.lora_trainer.support import manifest_defaults, supported_problems

torch.set_num_threads(1)
PRESETS = Path(backend.__file__).with_name("presets.yaml")


def load_presets() -> dict:
    return load_presets_file(PRESETS)


def resolve_params(preset: str, given: dict, defaults: dict) -> dict:
    return apply_preset(preset, given, defaults, presets=load_presets())


SHORT = {"max_steps": 8, "batch_size": 4, "grad_accum": 1, "max_length": 64, "pad_to_multiple": 16, "threads": 1,
         "warmup_ratio": 0.0}


def test_every_stage_preset_resolves_to_settings_that_run_here() -> None:
    staged = {n: p for n, p in load_presets().items() if p["params"].get("stage", "sft") != "sft"}
    assert {"dpo-small", "kto-small", "orpo-small", "simpo-small", "dpo-7b", "kto-7b"} <= staged.keys()
    for name in staged:
        resolved = resolve_params(name, {}, manifest_defaults())
        assert supported_problems({**resolved, "precision": "fp32"}, cuda_available=False) == [], name


@pytest.mark.parametrize("preset", ["dpo-small", "kto-small", "orpo-small", "simpo-small"])
def test_small_preset_moves_its_metric(tmp_path: Path, tiny_model_dir: Path, preset: str) -> None:
    pytest.importorskip("trl")
    params = resolve_params(preset, SHORT, manifest_defaults())
    rows = kto_rows(16) if params["stage"] == "kto" else pairs(16)
    data = write_records(tmp_path / "d", rows, kind="kto" if params["stage"] == "kto" else "preference")
    ctx, messages = Context.local(tmp_path)
    backend.train(ctx, params, {"model": str(tiny_model_dir), "dataset": ctx.artifacts.put_dir(data).sha256})
    if params["stage"] == "dpo":
        margins = curve(messages, "rewards/margins")
        assert margins[8] > margins[1], margins
    else:
        loss = curve(messages)
        assert loss[8] < loss[1], loss
