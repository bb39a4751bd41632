"""Optimizers by name. Each keeps its state in `state_dict()` so checkpoints resume exactly."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from tunelog.events.errors import ValidationError

if TYPE_CHECKING:
    from .params import TrainParams


def build_optimizer(params: TrainParams, model: torch.nn.Module, *, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer `params.optimizer` over the model's trainable parameters."""
    name = params.optimizer
    kw = {"lr": params.lr, "weight_decay": params.weight_decay}
    if params.method == "loraplus":
        from peft.optimizers import create_loraplus_optimizer  # not imported by `import peft`

        return create_loraplus_optimizer(model, _adamw_class(name), loraplus_lr_ratio=params.loraplus_lr_ratio,
                                         **kw, **_adamw_impl(params, device, name))
    if name in ("adamw", "adamw_8bit"):
        return _adamw_class(name)(_trainable(model), **kw, **_adamw_impl(params, device, name))
    if name in ("galore", "galore_8bit", "apollo"):
        return _low_rank(params, model, kw)
    if name == "badam":
        return _badam(params, model, kw, device)
    if name == "muon":
        return _muon(params, model, kw, device)
    raise ValidationError(f"unknown optimizer {name!r}")


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _adamw_class(name: str) -> type[torch.optim.Optimizer]:
    if name == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit  # type: ignore[no-any-return]
    return torch.optim.AdamW


def _adamw_impl(params: TrainParams, device: torch.device, name: str) -> dict[str, Any]:
    """Pin the implementation: fused, foreach and for-loop AdamW give different bits."""
    if name != "adamw":
        return {}
    fast = device.type == "cuda" and not params.deterministic
    return {"fused": fast, "foreach": False if not fast else None}


def _hidden_matrices(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(2-D weights of hidden linear layers, every other trainable parameter)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    matrices: list[torch.nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not output and module.weight.requires_grad:
            matrices.append(module.weight)
    chosen = {id(p) for p in matrices}
    return matrices, [p for p in _trainable(model) if id(p) not in chosen]


def _low_rank(params: TrainParams, model: torch.nn.Module, kw: dict[str, Any]) -> torch.optim.Optimizer:
    """GaLore / APOLLO: gradient projection on the hidden matrices, plain Adam on the rest."""
    matrices, rest = _hidden_matrices(model)
    name = params.optimizer
    group = {"params": matrices, "rank": params.galore_rank, "update_proj_gap": params.galore_update_interval,
             "scale": params.galore_scale, "proj_type": "std"}
    if name == "apollo":
        from apollo_torch import APOLLOAdamW

        group.update({"proj": "random", "scale_type": "channel"})
        return APOLLOAdamW([{"params": rest}, group], **kw)  # type: ignore[no-any-return]
    from galore_torch import GaLoreAdamW, GaLoreAdamW8bit

    if name == "galore_8bit":
        return GaLoreAdamW8bit([{"params": rest}, group], **kw)  # type: ignore[no-any-return]
    return GaLoreAdamW([{"params": rest}, group], **kw, no_deprecation_warning=True)  # type: ignore[no-any-return]


def _badam(params: TrainParams, model: torch.nn.Module, kw: dict[str, Any], device: torch.device) -> Any:
    """BAdam: Adam on one block of layers at a time, switching blocks in ascending order."""
    from badam import BlockOptimizer

    base = torch.optim.AdamW(_trainable(model), **kw, **_adamw_impl(params, device, "adamw"))
    with warnings.catch_warnings():
        # BAdam warns that fp32 weights cost memory; fp32 is our deliberate CPU default.
        warnings.filterwarnings("ignore", message="BAdam expect model", category=UserWarning)
        return BlockOptimizer(base_optimizer=base, named_parameters_list=list(model.named_parameters()),
                              switch_block_every=params.badam_switch_every, switch_mode="ascending", verbose=0)


class MultiOptimizer(torch.optim.Optimizer):
    """Several optimizers stepped as one, sharing their param_groups so one scheduler drives them."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers
        self.defaults = {}
        self.param_groups = [g for opt in optimizers for g in opt.param_groups]
        self.state = {}  # type: ignore[assignment]
        self._optimizer_step_pre_hooks = {}  # type: ignore[assignment]
        self._optimizer_step_post_hooks = {}  # type: ignore[assignment]
        self._optimizer_state_dict_pre_hooks = {}  # type: ignore[assignment]
        self._optimizer_state_dict_post_hooks = {}  # type: ignore[assignment]
        self._optimizer_load_state_dict_pre_hooks = {}  # type: ignore[assignment]
        self._optimizer_load_state_dict_post_hooks = {}  # type: ignore[assignment]

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {str(i): opt.state_dict() for i, opt in enumerate(self.optimizers)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        for i, opt in enumerate(self.optimizers):
            opt.load_state_dict(state_dict[str(i)])
        self.param_groups = [g for opt in self.optimizers for g in opt.param_groups]  # loading made new groups


def _muon(params: TrainParams, model: torch.nn.Module, kw: dict[str, Any], device: torch.device) -> MultiOptimizer:
    """torch.optim.Muon on 2-D hidden matrices (what it is defined for), AdamW on the rest."""
    matrices, rest = _hidden_matrices(model)
    muon = torch.optim.Muon(matrices, lr=kw["lr"], weight_decay=kw["weight_decay"],
                            adjust_lr_fn="match_rms_adamw")
    if not rest:
        return MultiOptimizer(muon)
    return MultiOptimizer(muon, torch.optim.AdamW(rest, **kw, **_adamw_impl(params, device, "adamw")))

