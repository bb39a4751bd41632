"""Settings that cannot run here are refused up front, with the reason, before anything trains."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.trainer import run_train, write_dataset
from tunelog.events.errors import ValidationError
from tunelog.plugins.lora_trainer.backend import check_supported, manifest_defaults
from tunelog.plugins.lora_trainer.support import sharding_problem


def params(**overrides: Any) -> dict[str, Any]:
    return {**manifest_defaults(), **overrides}


def problems(p: dict[str, Any], *, cuda: bool = False) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        check_supported(p, cuda_available=cuda)
    got: dict[str, str] = {}
    for problem in info.value.problems:
        got[problem["where"]] = " | ".join(filter(None, [got.get(problem["where"]), problem["message"]]))
    return got


def test_defaults_run_on_cpu() -> None:
    check_supported(params(), cuda_available=False)


def test_loftq_without_cuda_is_refused() -> None:
    assert "CUDA" in problems(params(method="loftq"))["method"]
    check_problem = problems(params(method="loftq", quantization="nf4"), cuda=True)
    assert "quantization" in check_problem


@pytest.mark.skipif(importlib.util.find_spec("scipy") is not None, reason="scipy is installed here")
def test_loftq_names_scipy_when_it_is_missing() -> None:
    with pytest.raises(ValidationError, match="pip install scipy"):
        check_supported(params(method="loftq"), cuda_available=True)


def test_fp16_on_cpu_is_refused_and_bf16_is_not() -> None:
    assert "silently" in problems(params(precision="fp16"))["precision"]
    check_supported(params(precision="bf16"), cuda_available=False)


@pytest.mark.parametrize("optimizer", ["adamw_8bit", "galore_8bit"])
def test_8bit_optimizers_without_cuda_are_refused(optimizer: str) -> None:
    method = "full" if optimizer == "galore_8bit" else "lora"
    assert "CUDA" in problems(params(optimizer=optimizer, method=method))["optimizer"]


@pytest.mark.parametrize("optimizer,package", [("galore", "galore-torch"), ("apollo", "apollo-torch"),
                                               ("badam", "badam")])
def test_missing_optimizer_package_is_named(monkeypatch: pytest.MonkeyPatch, optimizer: str, package: str) -> None:
    # Boundary fake: hide the installed package from import lookups (we do not own the environment).
    real = importlib.util.find_spec
    hidden = {"galore-torch": "galore_torch", "apollo-torch": "apollo_torch", "badam": "badam"}[package]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == hidden else real(name, *a))
    assert f"pip install {package}" in problems(params(method="full", optimizer=optimizer))["optimizer"]


def test_low_rank_optimizers_need_full_fine_tuning() -> None:
    assert "method=full" in problems(params(optimizer="galore"))["optimizer"]


def test_gpu_only_kernels_are_refused_on_cpu() -> None:
    got = problems(params(liger=True, attn_implementation="flash_attention_2"))
    assert "CUDA" in got["liger"] and "CUDA" in got["attn_implementation"]


def test_sharding_that_would_not_happen_is_refused_not_run_as_ddp() -> None:
    """accelerate shards (FSDP, DeepSpeed) only over CUDA devices, and one process shards nothing."""
    cpu = problems(params(devices=2, distributed="fsdp", accelerate_config="fsdp.yaml"))
    assert "CUDA only" in cpu["distributed"] and "leave distributed=ddp" in cpu["distributed"]
    assert "torchrun" in cpu["accelerate_config"]
    assert "devices=1 runs one process" in problems(params(distributed="fsdp"), cuda=True)["distributed"]
    check_supported(params(devices=2), cuda_available=False)  # DDP over CPU processes
    check_supported(params(devices=2, distributed="fsdp", accelerate_config="fsdp.yaml"), cuda_available=True)


@pytest.mark.parametrize(("asked", "running", "refused"), [
    ("ddp", "MULTI_CPU", False), ("ddp", "MULTI_GPU", False), ("fsdp", "FSDP", False),
    ("deepspeed", "DEEPSPEED", False), ("fsdp", "MULTI_GPU", True), ("fsdp", "MULTI_CPU", True),
    ("deepspeed", "MULTI_GPU", True), ("deepspeed", "FSDP", True)])
def test_a_worker_that_runs_other_than_the_sharding_asked_stops(asked: str, running: str, refused: bool) -> None:
    """The recipe's check once the Accelerator exists (a launcher that starts plain DDP, as a Ray
    Train worker does, must not train an FSDP run unsharded)."""
    problem = sharding_problem(asked, running)
    assert (problem is not None) == refused
    if problem is not None:
        assert f"distributed={asked} was asked but the processes run {running}" in problem


def test_quantised_full_fine_tuning_and_converted_inits_are_refused() -> None:
    assert "full fine-tuning" in problems(params(method="full", quantization="nf4"))["quantization"]
    assert "rewrites the base" in problems(params(method="pissa", quantization="nf4"))["quantization"]


def test_xlora_without_experts_is_refused() -> None:
    assert "at least one" in problems(params(method="xlora"))["xlora_adapters"]


def test_every_problem_is_reported_at_once() -> None:
    got = problems(params(method="loftq", precision="fp16", optimizer="adamw_8bit"))
    assert {"method", "precision", "optimizer"} <= set(got)


@pytest.mark.parametrize("settings,where", [({"method": "loftq"}, "method"), ({"precision": "fp16"}, "precision"),
                                            ({"method": "full", "optimizer": "galore_8bit"}, "optimizer")])
def test_train_refuses_before_loading_or_training(tmp_path: Path, tiny_model_dir: Path, settings: dict[str, Any],
                                                  where: str) -> None:
    dataset = write_dataset(tmp_path / "data")
    seen: list[str] = []
    start = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        run_train(tmp_path, tiny_model_dir, dataset, on_message=lambda ctx, kind, body: seen.append(kind), **settings)
    assert where in {p["where"] for p in info.value.problems}
    assert seen == [] and time.perf_counter() - start < 5  # nothing logged, loaded or trained
