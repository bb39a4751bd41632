"""Resumable checkpoints: everything needed to continue a run EXACTLY.

A checkpoint folder holds
    trainable.safetensors   the trainable weights (adapter, X-LoRA gate, or every weight for full)
    optimizer.pt            optimizer state (and BAdam's active block / master copies)
    scheduler.pt            learning-rate scheduler state
    rng.pt                  python, numpy, torch (and CUDA) generator states
    extra.pt                method state outside the weights (AdaLoRA's rank allocator)
    state.json              step, tokens, elapsed time, data-order position and generator state,
                            and fingerprints of the settings, data and base model it belongs to

The files are pickles of our own making (optimizers such as GaLore keep Python objects in their
state); they are read only from the content-addressed artifact store.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunelog.events.errors import JobError


class BatchOrder:
    """Which training rows each micro-batch holds: a fresh seeded permutation every epoch,
    consumed in order. Its state is (epoch, index, generator state at the epoch's start)."""

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        self.n_rows, self.batch_size = n_rows, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.index = 0, 0
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.epoch_generator_state = self.generator.get_state()
        perm = torch.randperm(self.n_rows, generator=self.generator).tolist()
        self.batches = [perm[i: i + self.batch_size] for i in range(0, self.n_rows, self.batch_size)]

    def next(self) -> list[int]:
        """Row indices of the next micro-batch."""
        if self.index == len(self.batches):
            self.epoch, self.index = self.epoch + 1, 0
            self._start_epoch()
        self.index += 1
        return self.batches[self.index - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "index": self.index,
                "epoch_generator_state": self.epoch_generator_state.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(torch.tensor(state["epoch_generator_state"], dtype=torch.uint8))
        self.epoch, self.index = state["epoch"], state["index"]
        self._start_epoch()


def trainable_state(model: torch.nn.Module, *, everything: bool) -> dict[str, torch.Tensor]:
    """Name -> tensor of what training changes (every parameter when `everything`)."""
    return {n: p.detach().contiguous().clone() for n, p in model.named_parameters() if everything or p.requires_grad}


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, *, model: torch.nn.Module, optimizer: Any, scheduler: Any, order: BatchOrder,
         state: dict[str, Any], everything: bool) -> Path:
    """Write a checkpoint of the run into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model, everything=everything), str(folder / "trainable.safetensors"))
    torch.save(_optimizer_state(optimizer), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    torch.save(_rng_state(), folder / "rng.pt")
    torch.save(_method_state(model), folder / "extra.pt")
    (folder / "state.json").write_text(json.dumps({**state, "order": order.state_dict()}, indent=1, sort_keys=True))
    return folder


def restore(folder: Path, *, model: torch.nn.Module, optimizer: Any, scheduler: Any, order: BatchOrder,
            fingerprints: dict[str, str]) -> dict[str, Any]:
    """Load a checkpoint into freshly built parts; returns the saved run state (step, tokens, ...)."""
    state = json.loads((folder / "state.json").read_text())
    changed = [k for k, v in fingerprints.items() if state.get("fingerprints", {}).get(k) != v]
    if changed:
        raise JobError(f"checkpoint {folder.name[:12]} belongs to a run with different {', '.join(changed)}",
                       hint="resume with the settings, data and base model the run started with")
    weights = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise JobError(f"checkpoint has weights the model lacks: {missing[:3]}")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    _set_method_state(model, torch.load(folder / "extra.pt", weights_only=False))
    _load_optimizer_state(optimizer, torch.load(folder / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    # A scheduler's state does not include the rate it set; wrappers (BAdam) keep their own groups.
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr
    order.load_state_dict(state.pop("order"))
    _set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
    return dict(state)


def _is_badam(optimizer: Any) -> bool:
    return type(optimizer).__name__ == "BlockOptimizer"


def _optimizer_state(optimizer: Any) -> dict[str, Any]:
    if not _is_badam(optimizer):
        return {"state": optimizer.state_dict()}
    # BAdam: which block is active, its fp32 master copies, and Adam's state over them.
    return {"state": optimizer.base_optimizer.state_dict(), "global_step": optimizer.global_step,
            "active_block": (optimizer.current_block_idx - 1) % optimizer.block_num,
            "masters": {i: p.detach().clone() for i, p in optimizer.param_idx2hp.items()}}


def _load_optimizer_state(optimizer: Any, saved: dict[str, Any]) -> None:
    if not _is_badam(optimizer):
        optimizer.load_state_dict(saved["state"])
        return
    optimizer.current_block_idx = saved["active_block"]
    optimizer.switch_trainable_params(verbose=0)
    with torch.no_grad():
        for i, master in saved["masters"].items():
            optimizer.param_idx2hp[i].copy_(master)
    optimizer.base_optimizer.load_state_dict(saved["state"])
    optimizer.global_step = saved["global_step"]


def _method_state(model: torch.nn.Module) -> dict[str, Any]:
    """AdaLoRA's importance statistics and rank pattern live outside the weights."""
    tuner = getattr(model, "base_model", None)
    allocator = getattr(tuner, "rankallocator", None)
    if allocator is None:
        return {}
    config = tuner.peft_config[tuner.trainable_adapter_name]
    return {"adalora": {"ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt,
                        "exp_avg_unc": allocator.exp_avg_unc, "rank_pattern": config.rank_pattern}}


def _set_method_state(model: torch.nn.Module, saved: dict[str, Any]) -> None:
    if "adalora" not in saved:
        return
    tuner = model.base_model
    allocator = tuner.rankallocator
    allocator.ipt, allocator.exp_avg_ipt = saved["adalora"]["ipt"], saved["adalora"]["exp_avg_ipt"]
    allocator.exp_avg_unc = saved["adalora"]["exp_avg_unc"]
    tuner.peft_config[tuner.trainable_adapter_name].rank_pattern = saved["adalora"]["rank_pattern"]
