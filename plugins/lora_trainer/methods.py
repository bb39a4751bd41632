"""peft configurations for each training method: our parameters passed through to peft's configs.

peft does all the adapter work (we never reimplement LoRA); this module only maps names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

CONVERTED_INITS = ("pissa", "olora")
"""Methods whose initialisation rewrites the base weights: their adapter is saved converted to a
plain LoRA (rank 2r) against the ORIGINAL base with `path_initial_model_for_weight_conversion`,
so plain `PeftModel.from_pretrained` on the unmodified base loads it correctly (randomised PiSSA
included)."""

if TYPE_CHECKING:
    from .params import TrainParams


def target_modules(params: TrainParams) -> str | list[str]:
    """`"all-linear"` or the list of module names."""
    targets = list(params.target_modules or ["all-linear"])
    return "all-linear" if targets == ["all-linear"] else targets


def lora_init(params: TrainParams) -> bool | str:
    """peft's `init_lora_weights` for the method."""
    method = params.method
    if method == "pissa":
        return f"pissa_niter_{params.pissa_niter}" if params.pissa_niter else "pissa"
    if method in ("olora", "loftq"):
        return method
    return True


def peft_config(params: TrainParams, *, model: Any, total_steps: int, xlora_paths: list[Path]) -> Any:
    """The peft config for `params.method` (None for full fine-tuning)."""
    import peft

    method = params.method
    common = {"task_type": "CAUSAL_LM"}
    if method == "full":
        return None
    if method == "ia3":
        targets = target_modules(params)
        if targets == "all-linear":  # peft's per-architecture defaults know which modules are feed-forward
            return peft.IA3Config(**common)
        ff = peft.utils.constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(
            model.config.model_type, [])
        return peft.IA3Config(target_modules=targets, feedforward_modules=[m for m in targets if m in ff], **common)
    if method == "vera":
        return peft.VeraConfig(r=params.r, target_modules=target_modules(params),
                               vera_dropout=params.dropout, projection_prng_key=params.seed,
                               save_projection=True, **common)
    if method == "xlora":
        # peft loads the experts under the names "0", "1", ... whatever the keys; other names break it
        adapters = {str(i): str(path) for i, path in enumerate(xlora_paths)}
        return peft.XLoraConfig(hidden_size=model.config.hidden_size, adapters=adapters,
                                xlora_depth=params.xlora_depth, **common)
    lora = {"r": params.r, "lora_alpha": params.alpha, "lora_dropout": params.dropout,
            "target_modules": target_modules(params), **common}
    if method == "adalora":
        # peft's own ratio (init_r 12 for target_r 8); budget held for the first 10%, fixed for the last 20%
        return peft.AdaLoraConfig(init_r=max(params.r * 3 // 2, params.r + 1), target_r=params.r,
                                  tinit=total_steps // 10, tfinal=total_steps // 5, deltaT=1,
                                  total_step=total_steps, **lora)
    extra: dict[str, Any] = {"init_lora_weights": lora_init(params)}
    if method == "rslora":
        extra["use_rslora"] = True
    if method == "dora":
        extra["use_dora"] = True
    if method == "loftq":
        extra["loftq_config"] = peft.LoftQConfig(loftq_bits=4)
    return peft.LoraConfig(**lora, **extra)


def needs_conversion(params: TrainParams) -> bool:
    """True when the saved adapter must be converted against the initial one (see CONVERTED_INITS)."""
    return params.method in CONVERTED_INITS


def save_xlora_gate(model: Any, out: Path) -> bool:
    """Write the trained X-LoRA gate into the saved adapter when peft left it out; True if it did.

    peft 0.21.2 names the experts "0", "1", ... and, when saving, drops every key containing
    ".0." as belonging to another adapter, which includes the gate's `layers.0`: the saved
    adapter would reload with a random gate. The keys written are the ones peft's loader expects.
    """
    from safetensors.torch import load_file, save_file

    path = out / "adapter_model.safetensors"
    gate = {k: v.detach().contiguous() for k, v in model.state_dict().items() if "internal_xlora_classifier" in k}
    if set(gate) <= set(load_file(str(path))):
        return False
    save_file(gate, str(path), metadata={"format": "pt"})
    return True
