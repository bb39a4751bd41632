"""Helpers for plugin tests: real peft adapters on the tiny model, and calling an operation in-process
after the daemon's own parameter and input checks."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_lora(base_dir: Path, out: Path, *, r: int, seed: int, strength: float = 1.0, **config: Any) -> Path:
    """Save a LoRA adapter with random non-zero A and B (so it changes logits); `strength` scales B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    settings = {"r": r, "lora_alpha": 2 * r, "target_modules": TARGETS, "init_lora_weights": False,
                "task_type": "CAUSAL_LM", **config}
    model = get_peft_model(base, LoraConfig(**settings))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(strength)
    model.save_pretrained(out)
    return Path(out)


def manifest(plugin: str) -> Any:
    """The plugin's manifest, decoded with the real schema."""
    import msgspec

    from tunelog.plugins.api import Manifest

    return msgspec.yaml.decode((PLUGINS / plugin / "manifest.yaml").read_bytes(), type=Manifest)


def call(plugin: str, operation: str, ctx: Any, *, inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
    """Run `backend.<operation>` in this process after the daemon's own checks of params and inputs
    (defaults applied), as a job would get them."""
    from tunelog.daemon.plugin_host.params import validate_inputs, validate_params

    spec = manifest(plugin).operations[operation]
    checked = validate_params(spec, params)
    ports = validate_inputs(spec, inputs)
    backend = importlib.import_module(f"tunelog.plugins.{plugin}.backend")
    return backend.__dict__[operation](ctx, checked, ports)  # type: ignore[no-any-return]
