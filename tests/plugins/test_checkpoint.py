"""The trainer's checkpoints on small real torch parts (a two-layer model, AdamW, a warm-up
scheduler), without training a language model: a restored run continues exactly where an
uninterrupted one goes (weights, optimizer moments, learning rate, data order, every random
generator), and a checkpoint of another run is refused with nothing changed.

The whole recipe's exact resume is proven on a tiny causal LM in test_trainer_resume.py; these are
fast enough for `make mutate` to run per mutant."""

from __future__ import annotations

import importlib.util
import json
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from peft import AdaLoraConfig, get_peft_model
from safetensors.torch import load_file

from tunelog.events.errors import JobError
from tunelog.plugins.lora_trainer import checkpoint
from tunelog.plugins.lora_trainer.checkpoint import BatchOrder

FINGERPRINTS = {"settings": "s1", "data": "d1", "model": "m1"}


class Parts:
    """A model whose first layer is frozen (like a base model under an adapter), its optimizer,
    scheduler and data order, all from one seed."""

    def __init__(self, seed: int = 0):
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        self.model[0].requires_grad_(False)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=0.1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: min(1.0, (step + 1) / 4))
        self.order = BatchOrder(10, 3, seed=7)
        self.data = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))

    def step(self) -> None:
        """One optimizer step on the next batch, with dropout-like noise from every generator."""
        rows = self.order.next()
        noise = torch.rand(1).item() + random.random() + float(np.random.rand())
        loss = (self.model(self.data[rows]) ** 2).mean() * noise
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()

    def save(self, folder: Path, *, everything: bool = False, **state: Any) -> Path:
        return checkpoint.save(folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                               order=self.order, state={"fingerprints": FINGERPRINTS, **state},
                               everything=everything)

    def restore(self, folder: Path, fingerprints: dict[str, str] = FINGERPRINTS) -> dict[str, Any]:
        return checkpoint.restore(folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                                  order=self.order, fingerprints=fingerprints)

    def weights(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters()}


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_batch_order_is_a_fresh_permutation_every_epoch_and_resumes_mid_epoch() -> None:
    order = BatchOrder(10, 3, seed=7)
    epochs = [[order.next() for _ in range(4)] for _ in range(3)]
    for batches in epochs:
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert sorted(r for b in batches for r in b) == list(range(10))
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    assert BatchOrder(10, 3, seed=7).next() == epochs[0][0] and BatchOrder(10, 3, seed=8).next() != epochs[0][0]

    for stop in (2, 4, 5, 9):  # mid-epoch, at an epoch's end, just past it, in the third epoch
        first = BatchOrder(10, 3, seed=7)
        for _ in range(stop):
            first.next()
        saved = json.loads(json.dumps(first.state_dict()))
        assert (saved["epoch"], saved["index"]) == ((stop - 1) // 4, (stop - 1) % 4 + 1)
        resumed = BatchOrder(10, 3, seed=99)  # another seed: everything comes from the state
        resumed.load_state_dict(saved)
        flat = [b for batches in epochs for b in batches]
        assert [resumed.next() for _ in range(12 - stop)] == flat[stop:]


def test_a_restored_run_continues_exactly_like_one_never_stopped(tmp_path: Path) -> None:
    seed_all(3)
    straight = Parts()
    for _ in range(6):
        straight.step()
    expected = straight.weights()

    seed_all(3)
    stopped = Parts()
    for _ in range(3):
        stopped.step()
    folder = stopped.save(tmp_path / "ckpt", step=3, tokens=123)
    seed_all(11)  # whatever ran in between
    resumed = Parts()  # freshly built parts: the same base, other trainable weights
    with torch.no_grad():
        resumed.model[2].weight.add_(1.0)
    state = resumed.restore(folder)
    assert state == {"fingerprints": FINGERPRINTS, "step": 3, "tokens": 123}
    assert resumed.scheduler.get_last_lr() == stopped.scheduler.get_last_lr()
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in stopped.optimizer.param_groups]
    for _ in range(3):
        resumed.step()
    got = resumed.weights()
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_the_learning_rate_the_scheduler_set_is_restored(tmp_path: Path) -> None:
    first = Parts()
    for _ in range(2):
        first.step()
    folder = first.save(tmp_path / "ckpt")
    resumed = Parts()  # its groups start at the initial warm-up rate
    assert resumed.optimizer.param_groups[0]["lr"] != first.optimizer.param_groups[0]["lr"]
    resumed.restore(folder)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 3 / 4)


def test_only_what_training_changes_is_saved_unless_everything(tmp_path: Path) -> None:
    parts = Parts()
    parts.step()
    trainable = load_file(str(parts.save(tmp_path / "a") / "trainable.safetensors"))
    assert sorted(trainable) == ["2.bias", "2.weight"]
    assert torch.equal(trainable["2.weight"], parts.model[2].weight.detach())
    everything = load_file(str(parts.save(tmp_path / "b", everything=True) / "trainable.safetensors"))
    assert sorted(everything) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "extra.pt", "optimizer.pt", "rng.pt", "scheduler.pt", "state.json", "trainable.safetensors"]
    saved = json.loads((tmp_path / "a" / "state.json").read_text())
    assert saved["order"] == parts.order.state_dict() and saved["fingerprints"] == FINGERPRINTS


def test_a_checkpoint_of_another_run_is_refused_naming_what_differs_and_nothing_changes(tmp_path: Path) -> None:
    folder = Parts().save(tmp_path / "ckpt-of-another-run")
    fresh = Parts(seed=5)
    before, lr = fresh.weights(), fresh.optimizer.param_groups[0]["lr"]
    with pytest.raises(JobError) as caught:
        fresh.restore(folder, {**FINGERPRINTS, "data": "d2", "model": "m2"})
    assert str(caught.value).startswith("checkpoint ckpt-of-anot belongs to a run with different data, model")
    assert caught.value.hint == "resume with the settings, data and base model the run started with"
    assert all(torch.equal(fresh.weights()[n], before[n]) for n in before)
    assert fresh.optimizer.param_groups[0]["lr"] == lr and fresh.optimizer.state_dict()["state"] == {}

    unstamped = Parts().save(tmp_path / "old")  # fingerprints recorded: an empty set refuses too
    state = json.loads((unstamped / "state.json").read_text())
    (unstamped / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "fingerprints"}))
    with pytest.raises(JobError, match="different settings, data, model"):
        fresh.restore(unstamped)


def test_weights_the_model_lacks_are_refused_naming_the_first_three(tmp_path: Path) -> None:
    bigger = Parts()
    bigger.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    folder = bigger.save(tmp_path / "ckpt", everything=True)
    smaller = Parts()
    smaller.model = torch.nn.Sequential(torch.nn.Linear(4, 8))
    with pytest.raises(JobError) as caught:
        smaller.restore(folder)
    lacking = [n for n in load_file(str(folder / "trainable.safetensors")) if not n.startswith("0.")]
    assert len(lacking) == 4 and str(caught.value) == f"checkpoint has weights the model lacks: {lacking[:3]}"


def test_a_checkpoint_folder_is_made_with_its_parents_and_may_be_written_again(tmp_path: Path) -> None:
    parts = Parts()
    folder = parts.save(tmp_path / "work" / "run" / "checkpoint-1", step=1)
    parts.step()
    assert parts.save(folder, step=2) == folder  # the same folder again (a retried save)
    assert Parts().restore(folder)["step"] == 2


def test_every_random_generator_continues_from_the_checkpoint(tmp_path: Path) -> None:
    seed_all(21)
    folder = Parts().save(tmp_path / "ckpt")
    expected = (random.random(), float(np.random.rand()), torch.rand(1).item())
    seed_all(0)
    Parts(seed=5).restore(folder)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == expected


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


def adalora_parts() -> Parts:
    """Parts around a real peft AdaLoRA model, whose rank allocator keeps state outside the weights."""
    parts = Parts()
    torch.manual_seed(0)
    parts.model = get_peft_model(Tiny(), AdaLoraConfig(target_modules=["a"], init_r=4, target_r=2, total_step=20,
                                                       tinit=1, tfinal=2, deltaT=1))
    parts.optimizer = torch.optim.AdamW([p for p in parts.model.parameters() if p.requires_grad], lr=0.1)
    parts.scheduler = torch.optim.lr_scheduler.LambdaLR(parts.optimizer, lambda step: 1.0)
    return parts


def adalora_step(parts: Parts, step: int) -> None:
    loss = (parts.model(parts.data[parts.order.next()]) ** 2).mean()
    loss.backward()
    parts.optimizer.step()
    parts.model.base_model.update_and_allocate(step)
    parts.optimizer.zero_grad()


def test_adaloras_rank_allocator_is_saved_and_restored(tmp_path: Path) -> None:
    straight = adalora_parts()
    for step in range(6):
        adalora_step(straight, step)

    stopped = adalora_parts()
    for step in range(3):
        adalora_step(stopped, step)
    folder = stopped.save(tmp_path / "ckpt")
    saved = stopped.model.base_model.rankallocator
    resumed = adalora_parts()
    resumed.restore(folder)
    tuner = resumed.model.base_model
    for stat_name in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
        mine, theirs = getattr(tuner.rankallocator, stat_name), getattr(saved, stat_name)
        assert mine.keys() == theirs.keys() and mine, stat_name
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), stat_name
    assert tuner.peft_config["default"].rank_pattern == stopped.model.base_model.peft_config["default"].rank_pattern
    for step in range(3, 6):
        adalora_step(resumed, step)
    ends = straight.weights()
    assert all(torch.equal(p, ends[n]) for n, p in resumed.weights().items())
    assert torch.load(Parts().save(tmp_path / "plain") / "extra.pt", weights_only=False) == {}


class Layers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def badam_parts(seed: int) -> Parts:
    """Parts around BAdam's BlockOptimizer (Adam on one block of layers at a time, its own master
    copies and active block), the full model trained."""
    from badam import BlockOptimizer

    parts = Parts()
    torch.manual_seed(seed)
    parts.model = Layers()
    base = torch.optim.AdamW(list(parts.model.parameters()), lr=0.05)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="BAdam expect model", category=UserWarning)
        parts.optimizer = BlockOptimizer(base_optimizer=base, named_parameters_list=list(parts.model.named_parameters()),
                                         switch_block_every=2, switch_mode="ascending", verbose=0)
    parts.scheduler = torch.optim.lr_scheduler.LambdaLR(parts.optimizer, lambda step: 1.0 / (step + 1))
    return parts


def badam_step(parts: Parts) -> None:
    loss = (parts.model(parts.data[parts.order.next()]) ** 2).mean()
    loss.backward()
    parts.optimizer.step()
    parts.scheduler.step()
    parts.optimizer.zero_grad()


@pytest.mark.skipif(importlib.util.find_spec("badam") is None, reason="badam is part of the set-up (make setup)")
def test_a_badam_run_resumes_mid_block_exactly(tmp_path: Path) -> None:
    straight = badam_parts(seed=0)
    for _ in range(7):
        badam_step(straight)

    stopped = badam_parts(seed=0)
    for _ in range(3):  # blocks switch every 2 steps: stopped inside the second block
        badam_step(stopped)
    folder = stopped.save(tmp_path / "ckpt", everything=True)
    resumed = badam_parts(seed=1)  # other initial weights: everything comes from the checkpoint
    resumed.restore(folder)
    assert resumed.optimizer.current_block_idx == stopped.optimizer.current_block_idx
    assert resumed.optimizer.global_step == stopped.optimizer.global_step == 3
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in stopped.optimizer.param_groups]
    for _ in range(4):
        badam_step(resumed)
    ends = straight.weights()
    assert all(torch.equal(p, ends[n]) for n, p in resumed.weights().items())
