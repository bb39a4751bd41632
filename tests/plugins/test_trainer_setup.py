"""The pieces around the recipe: presets, the multi-GPU launch command, the manifest schema, the
optimizers for full fine-tuning, and importing the backend without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import torch
import yaml

from tests.plugins.test_trainer_methods import load_base, mean_loss, validation_batches
from tests.support.trainer import run_train, write_dataset
from tunelog.daemon.jobs import launch
from tunelog.daemon.plugin_host.presets import apply_preset
from tunelog.daemon.plugin_host.presets import load_presets as load_presets_file
from tunelog.events.errors import ValidationError
from tunelog.plugins.api import Manifest
from tunelog.plugins.lora_trainer import backend, support

torch.set_num_threads(1)
MANIFEST = Path(backend.__file__).with_name("manifest.yaml")


def load_presets() -> dict[str, Any]:
    return load_presets_file(Path(backend.__file__).with_name("presets.yaml"))


def resolve_params(preset: str | None, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return apply_preset(preset or "", given, defaults, presets=load_presets())


def train_params() -> dict[str, Any]:
    manifest = msgspec.convert(yaml.safe_load(MANIFEST.read_text()), Manifest)
    return {k: msgspec.to_builtins(v) for k, v in manifest.operations["train"].params.items()}


def test_manifest_is_valid_and_every_param_is_described() -> None:
    spec = train_params()
    assert all(p["description"].strip() for p in spec.values())
    assert spec["method"]["choices"] == [*support.PEFT_METHODS, "full"]
    for name in ("method", "quantization", "optimizer", "scheduler", "precision", "compute_dtype"):
        assert spec[name]["default"] in spec[name]["choices"], name


def test_importing_the_backend_does_not_import_torch() -> None:
    code = ("import sys, tunelog.plugins.lora_trainer.backend; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_preset_resolves_to_valid_choices_and_runs_somewhere() -> None:
    spec, defaults = train_params(), support.manifest_defaults()
    for name in load_presets():
        resolved = resolve_params(name, {}, defaults)
        assert resolved["preset"] == name and set(resolved) == set(defaults)
        for key, value in resolved.items():
            if spec[key].get("choices"):
                assert value in spec[key]["choices"], (name, key)
        support.check_supported(resolved, cuda_available=True)


def test_resolution_order_defaults_then_preset_then_user() -> None:
    defaults = support.manifest_defaults()
    resolved = resolve_params("qlora-7b", {"lr": 0.00042}, defaults)
    assert resolved["quantization"] == "nf4" and resolved["lr"] == 0.00042 and resolved["seed"] == defaults["seed"]
    with pytest.raises(ValidationError, match="unknown preset"):
        resolve_params("nope", {}, defaults)
    with pytest.raises(ValidationError) as info:
        resolve_params(None, {"learning_rate": 1}, defaults)
    assert info.value.problems[0]["where"] == "parameters: learning_rate"


def test_demo_facts_preset_is_the_measured_recipe() -> None:
    facts = load_presets()["demo-facts"]["params"]
    assert (facts["method"], facts["r"], facts["target_modules"], facts["lr"]) == ("lora", 8, ["all-linear"], 0.0005)
    support.check_supported(resolve_params("demo-facts", {}, support.manifest_defaults()), cuda_available=False)


def test_a_preset_resolved_at_submit_time_runs_as_resolved() -> None:
    """The daemon resolves presets (it knows what the user set); the backend only fills defaults."""
    defaults = support.manifest_defaults()
    resolved = resolve_params("demo-facts", {"seed": 7, "r": 8}, defaults)
    assert resolved["lr"] == 0.0005 and resolved["max_steps"] == 40 and resolved["seed"] == 7
    assert backend.resolve(resolved) == resolved
    assert backend.resolve({"lr": 0.1}) == {**defaults, "lr": 0.1}


def test_launch_command_for_ddp() -> None:
    params = {**support.manifest_defaults(), "precision": "bf16"}
    cmd = launch.launch_command(params, gpus=4, script_args=["-m", "tunelog.daemon.jobs.worker", "--job", "j1"])
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4" and "--multi_gpu" in cmd
    assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"
    assert cmd[-4:] == ["-m", "tunelog.daemon.jobs.worker", "--job", "j1"]
    single = launch.launch_command(support.manifest_defaults(), gpus=1, script_args=["train.py"])
    assert "--multi_gpu" not in single and single[single.index("--mixed_precision") + 1] == "no"


def test_launch_command_for_fsdp_and_deepspeed(tmp_path: Path) -> None:
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\n")
    params = {**support.manifest_defaults(), "distributed": "fsdp", "accelerate_config": str(config)}
    cmd = launch.launch_command(params, gpus=8, script_args=["x.py"], main_process_port=29600)
    assert cmd[cmd.index("--config_file") + 1] == str(config) and "--multi_gpu" not in cmd
    assert cmd[cmd.index("--main_process_port") + 1] == "29600"
    ds = launch.launch_command({**params, "distributed": "deepspeed", "accelerate_config": ""}, gpus=2,
                               script_args=["x.py"])
    assert "--use_deepspeed" in ds
    with pytest.raises(ValidationError):
        launch.launch_command({**params, "accelerate_config": str(tmp_path / "missing.yaml")}, gpus=2,
                              script_args=["x.py"])
    with pytest.raises(ValidationError):
        launch.launch_command(params, gpus=0, script_args=["x.py"])


@pytest.mark.parametrize("optimizer,module", [("galore", "galore_torch"), ("apollo", "apollo_torch"),
                                              ("badam", "badam"), ("muon", "torch")])
def test_full_fine_tuning_optimizers_train(tmp_path: Path, tiny_model_dir: Path, optimizer: str, module: str) -> None:
    pytest.importorskip(module)
    dataset = write_dataset(tmp_path / "data", n_validation=4)
    settings = {"galore_rank": 8, "galore_update_interval": 2, "badam_switch_every": 2}
    params = {"method": "full", "optimizer": optimizer, "lr": 0.002, **settings}
    outputs, messages, _ = run_train(tmp_path, tiny_model_dir, dataset, **params)
    losses = [b["loss"] for kind, b in messages if kind == "metrics" and "loss" in b]
    # The baseline is the untrained model's loss on the same validation batches (about 6.1 for the
    # tiny model): a constant bound would also pass with lr=0.
    untrained, _ = mean_loss(load_base(tiny_model_dir, params), validation_batches(tiny_model_dir, dataset, params))
    assert len(losses) == 4 and outputs["metrics"]["eval_loss"] < untrained - 0.05, (untrained, outputs["metrics"])
