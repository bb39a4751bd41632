"""A trained adapter does not depend on where its base model lies on disk: the same training on a
copy of the base in another folder gives the same bytes, and plain peft loads the folder onto a
base the user loaded themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.support.trainer import run_train, write_dataset

pytestmark = pytest.mark.slow


def test_the_adapter_hash_is_the_same_wherever_the_base_model_lies(tmp_path: Path, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    dataset = write_dataset(tmp_path / "data")
    here = shutil.copytree(tiny_model_dir, tmp_path / "one" / "tiny-base")
    there = shutil.copytree(tiny_model_dir, tmp_path / "two" / "deeper" / "tiny-base")
    first, _, ctx = run_train(tmp_path / "a", here, dataset, max_steps=2)
    second, _, _ = run_train(tmp_path / "b", there, dataset, max_steps=2)
    assert first["adapter"] == second["adapter"]

    folder = Path(ctx.artifact_path(first["adapter"]))
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-base"
    for file in folder.rglob("*"):
        if file.is_file():
            assert str(tmp_path).encode() not in file.read_bytes(), f"{file.name} names a local path"
    assert "base_model: tiny-base" in (folder / "README.md").read_text()

    base = AutoModelForCausalLM.from_pretrained(there)
    model = PeftModel.from_pretrained(base, folder)
    saved = load_file(folder / "adapter_model.safetensors")
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert saved and len(loaded) == len(saved)
    for name, tensor in saved.items():
        key = name.replace(".weight", ".default.weight")
        assert torch.equal(loaded[key], tensor), name
