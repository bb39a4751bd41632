"""Determinism and exact resume (CPU, deterministic mode): identical runs give identical bytes, and
a run stopped at step k and resumed from its checkpoint ends with the bytes of one never stopped."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.trainer import run_train, write_dataset
from tunelog.events.errors import JobError
from tunelog.store.artifacts import sha256_file

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), n_train=24, n_validation=4)


def weights_file(ctx: Any, outputs: dict[str, Any]) -> Path:
    folder = ctx.artifact_path(outputs.get("adapter") or outputs["model"])
    return next(folder.glob("*.safetensors"))


def losses(messages: list[tuple[str, dict[str, Any]]]) -> dict[int, float]:
    return {b["step"]: b["loss"] for kind, b in messages if kind == "metrics" and "loss" in b}


def stop_at(step: int) -> Any:
    """A message hook that asks the run to stop once `step` has been reported (like SIGTERM)."""
    def hook(ctx: Any, kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and body.get("step") == step and "loss" in body:
            ctx.request_stop()
    return hook


def test_two_identical_runs_give_identical_bytes(tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path) -> None:
    settings = {"dropout": 0.1, "max_steps": 5}
    first, _, ctx1 = run_train(tmp_path / "a", tiny_model_dir, dataset_dir, **settings)
    second, _, ctx2 = run_train(tmp_path / "b", tiny_model_dir, dataset_dir, **settings)
    assert sha256_file(weights_file(ctx1, first)) == sha256_file(weights_file(ctx2, second))
    assert first["adapter"] == second["adapter"]  # the whole folder, config and model card included
    other, _, ctx3 = run_train(tmp_path / "c", tiny_model_dir, dataset_dir, **{**settings, "seed": 1})
    assert sha256_file(weights_file(ctx3, other)) != sha256_file(weights_file(ctx1, first))


def needs(module: str) -> Any:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


RESUME_CASES = [
    # dropout uses the torch RNG; grad_accum 2 and 7 steps cross two epoch boundaries of the data order
    pytest.param({"dropout": 0.1, "grad_accum": 2, "max_steps": 7}, 4, id="lora-dropout-accum-epochs"),
    pytest.param({"method": "adalora", "lr": 0.002, "max_steps": 8}, 5, id="adalora-rank-allocator",
                 marks=pytest.mark.filterwarnings("ignore:The following rank_pattern keys:RuntimeWarning")),
    pytest.param({"precision": "bf16", "packing": True, "scheduler": "cosine", "warmup_steps": 2, "max_steps": 6},
                 3, id="bf16-packed-cosine-warmup"),
    pytest.param({"method": "full", "optimizer": "muon", "lr": 0.002, "max_steps": 5}, 2, id="full-muon"),
    pytest.param({"method": "full", "optimizer": "badam", "badam_switch_every": 2, "lr": 0.001, "max_steps": 6}, 3,
                 id="full-badam-block-switch", marks=needs("badam")),
    pytest.param({"method": "full", "optimizer": "galore", "galore_rank": 8, "galore_update_interval": 2,
                  "lr": 0.001, "max_steps": 5}, 3, id="full-galore-projection", marks=needs("galore_torch")),
]


@pytest.mark.parametrize("settings,k", RESUME_CASES)
def test_stop_then_resume_gives_the_bytes_of_an_uninterrupted_run(
        tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path, settings: dict[str, Any], k: int) -> None:
    whole, whole_msgs, whole_ctx = run_train(tmp_path, tiny_model_dir, dataset_dir, job_id="whole", **settings)

    stopped, stopped_msgs, _ = run_train(tmp_path, tiny_model_dir, dataset_dir, job_id="stopped",
                                         on_message=stop_at(k), **settings)
    assert stopped["stopped_at"] == k and "adapter" not in stopped
    assert [b["step"] for kind, b in stopped_msgs if kind == "checkpoint"] == [k]

    checkpoint = whole_ctx.artifact_path(stopped["checkpoint"])  # same artifact store
    resumed, resumed_msgs, resumed_ctx = run_train(tmp_path, tiny_model_dir, dataset_dir, job_id="resumed",
                                                   resume_from=checkpoint, **settings)
    assert sha256_file(weights_file(resumed_ctx, resumed)) == sha256_file(weights_file(whole_ctx, whole))
    assert losses(stopped_msgs) | losses(resumed_msgs) == losses(whole_msgs)
    assert min(losses(resumed_msgs)) == k + 1


def test_save_every_checkpoints_during_the_run(tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path) -> None:
    outputs, messages, ctx = run_train(tmp_path, tiny_model_dir, dataset_dir, max_steps=5, save_every=2)
    checkpoints = [b for kind, b in messages if kind == "checkpoint"]
    assert [c["step"] for c in checkpoints] == [2, 4]
    folder = ctx.artifact_path(checkpoints[0]["sha256"])
    assert {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json"} <= {
        p.name for p in folder.iterdir()}
    assert outputs["metrics"]["steps"] == 5


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path: Path, tiny_model_dir: Path,
                                                         dataset_dir: Path) -> None:
    stopped, _, ctx = run_train(tmp_path, tiny_model_dir, dataset_dir, job_id="a", on_message=stop_at(1))
    with pytest.raises(JobError, match="different settings"):
        run_train(tmp_path, tiny_model_dir, dataset_dir, job_id="b", lr=0.5,
                  resume_from=ctx.artifact_path(stopped["checkpoint"]))
