"""What the trainer can run where: checked by the daemon at submit time (through checks.py) and
again by the recipe before anything is loaded, with the same rules, so an impossible request is
refused in a second with every reason, not after minutes of loading. Imports no torch."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError

MANIFEST = Path(__file__).with_name("manifest.yaml")
PEFT_METHODS = ("lora", "rslora", "dora", "pissa", "olora", "loftq", "loraplus", "adalora", "xlora", "vera", "ia3")
LOW_RANK_OPTIMIZERS = ("galore", "galore_8bit", "apollo", "badam")
OPTIMIZER_PACKAGES = {  # optimizer -> (module to import, package to pip install)
    "galore": ("galore_torch", "galore-torch"),
    "galore_8bit": ("galore_torch", "galore-torch"),
    "apollo": ("apollo_torch", "apollo-torch"),
    "badam": ("badam", "badam"),
    "adamw_8bit": ("bitsandbytes", "bitsandbytes"),
}
CUDA_ONLY_OPTIMIZERS = ("adamw_8bit", "galore_8bit")
PREFERENCE_METHODS = ("lora", "rslora", "dora", "loraplus", "vera", "ia3")
"""Methods the preference stages train: adapters whose disabled state is the untouched base (the
DPO/KTO reference). PiSSA/OLoRA rewrite the base, full fine-tuning would need a second copy."""
LOSS_TYPES = {
    "dpo": ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
            "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "sft"),
    "kto": ("kto", "apo_zero_unpaired"),
    "grpo": ("dapo", "grpo", "dr_grpo", "bnpo"),
}
"""TRL 1.16's loss variants per stage (DPOConfig / KTOConfig `loss_type`). DPO sums several, written
`sigmoid+sft` (TRL's list form, each weighted 1): `sft` is the chosen answers' NLL (RPO)."""


def manifest_defaults() -> dict[str, Any]:
    """The `train` operation's parameter defaults, read from manifest.yaml."""
    import yaml

    spec = yaml.safe_load(MANIFEST.read_text())["operations"]["train"]["params"]
    return {name: p.get("default") for name, p in spec.items()}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def supported_problems(params: dict[str, Any], *, cuda_available: bool) -> list[tuple[str, str]]:
    """Every (parameter, reason) that keeps `params` from running here; empty when they can."""
    return [*_method_problems(params, cuda_available), *_precision_problems(params, cuda_available),
            *_optimizer_problems(params, cuda_available), *_schedule_problems(params), *_stage_problems(params)]


def check_supported(params: dict[str, Any], *, cuda_available: bool) -> None:
    """Raise ValidationError listing every reason `params` cannot run here; return if it can."""
    problems = supported_problems(params, cuda_available=cuda_available)
    if problems:
        where = "a GPU" if cuda_available else "this machine (no CUDA GPU)"
        raise ValidationError.collect(f"lora_trainer cannot run these settings on {where}", problems)


def _method_problems(p: dict[str, Any], cuda: bool) -> list[tuple[str, str]]:
    method, quant = p.get("method", "lora"), p.get("quantization", "none")
    out = []
    if method == "loftq":
        if not cuda:
            out.append(("method", "loftq initialises with CUDA kernels (peft asserts CUDA); run it on a GPU "
                                  "or use quantization=nf4 with method=lora (QLoRA)"))
        if not _installed("scipy"):
            out.append(("method", "loftq needs scipy: pip install scipy"))
        if quant != "none":
            out.append(("quantization", "loftq quantises the base itself; set quantization to none"))
    if quant != "none":
        if not _installed("bitsandbytes"):
            out.append(("quantization", f"quantization={quant} needs bitsandbytes: pip install bitsandbytes"))
        if method == "full":
            out.append(("quantization", "full fine-tuning cannot update quantised weights; use a peft method"))
        if method in ("pissa", "olora"):
            out.append(("quantization", f"{method} rewrites the base weights; with a quantised base the saved "
                                        "adapter would not match the original model. Use quantization=none"))
    if method == "xlora" and not p.get("xlora_adapters"):
        out.append(("xlora_adapters", "xlora trains a gate over existing LoRA experts: give at least one "
                                      "adapter (artifact hash or folder) trained on this base model"))
    if method != "pissa" and p.get("pissa_niter", 0):
        out.append(("pissa_niter", "only used with method=pissa"))
    targets = p.get("target_modules") or ["all-linear"]
    if "all-linear" in targets and len(targets) > 1:
        out.append(("target_modules", "use either [all-linear] or a list of module names, not both"))
    return out


def _precision_problems(p: dict[str, Any], cuda: bool) -> list[tuple[str, str]]:
    out = []
    if not cuda:
        if p.get("precision") == "fp16":
            out.append(("precision", "fp16 needs a GPU; use bf16 or fp32 (on CPU accelerate would silently "
                                     "train in fp32)"))
        if p.get("liger"):
            out.append(("liger", "Liger kernels are Triton kernels and need a CUDA GPU"))
        if p.get("attn_implementation") == "flash_attention_2":
            out.append(("attn_implementation", "flash_attention_2 needs a CUDA GPU; use sdpa"))
    if p.get("liger") and not _installed("liger_kernel"):
        out.append(("liger", "liger=true needs liger-kernel: pip install liger-kernel"))
    if p.get("attn_implementation") == "flash_attention_2" and not _installed("flash_attn"):
        out.append(("attn_implementation", "flash_attention_2 needs flash-attn: pip install flash-attn"))
    if p.get("distributed") == "deepspeed" and not _installed("deepspeed"):
        out.append(("distributed", "deepspeed needs the deepspeed package: pip install deepspeed"))
    devices = int(p.get("devices") or 1)
    if devices == 1 and p.get("distributed", "ddp") != "ddp":
        out.append(("distributed", f"distributed={p['distributed']} splits training over several devices and "
                                   "devices=1 runs one process, unsharded: set devices to the GPUs to use, or "
                                   "leave distributed=ddp"))
    if not cuda and devices > 1:
        if p.get("distributed", "ddp") != "ddp":
            out.append(("distributed", f"distributed={p['distributed']} shards the model over GPUs (accelerate runs "
                                       "FSDP and DeepSpeed on CUDA only); CPU processes train with DDP: leave "
                                       "distributed=ddp"))
        if p.get("accelerate_config"):
            out.append(("accelerate_config", "an accelerate config file is read by `accelerate launch`, which "
                                             "starts GPU jobs; CPU processes start under torchrun: leave it empty"))
    return out


def sharding_problem(asked: str, running: str) -> str | None:
    """Why a run that asked for `asked` (ddp, fsdp, deepspeed) must not go on as `running`
    (accelerate's DistributedType name), or None when they agree. A launcher that does not pass the
    sharding on (a Ray Train worker starts DDP) would otherwise train unsharded without a word."""
    wanted = {"fsdp": "FSDP", "deepspeed": "DEEPSPEED"}.get(asked)
    if wanted is None or running == wanted:
        return None
    return (f"distributed={asked} was asked but the processes run {running} (this launcher does not set up "
            f"{asked}): run the job on a daemon of the GPU machine itself (accelerate launch), or use "
            "distributed=ddp")


def _optimizer_problems(p: dict[str, Any], cuda: bool) -> list[tuple[str, str]]:
    opt, method = p.get("optimizer", "adamw"), p.get("method", "lora")
    out = []
    if opt in CUDA_ONLY_OPTIMIZERS and not cuda:
        out.append(("optimizer", f"{opt} uses bitsandbytes 8-bit optimizer kernels, which need CUDA; use adamw"))
    if opt in OPTIMIZER_PACKAGES and not _installed(OPTIMIZER_PACKAGES[opt][0]):
        out.append(("optimizer", f"optimizer {opt} needs the {OPTIMIZER_PACKAGES[opt][1]} package: "
                                 f"pip install {OPTIMIZER_PACKAGES[opt][1]}"))
    if opt in LOW_RANK_OPTIMIZERS and method != "full":
        out.append(("optimizer", f"{opt} is a memory-saving optimizer for full fine-tuning (adapters are low-rank "
                                 "already); use it with method=full"))
    if opt == "muon" and _torch_version() < (2, 9):
        out.append(("optimizer", "muon needs torch>=2.9 (torch.optim.Muon)"))
    if method == "loraplus" and opt not in ("adamw", "adamw_8bit"):
        out.append(("optimizer", "loraplus sets per-matrix learning rates of an AdamW; use adamw or adamw_8bit"))
    return out


def _torch_version() -> tuple[int, ...]:
    """The installed torch's (major, minor), read from its metadata (importing torch takes seconds)."""
    try:
        parts = importlib.metadata.version("torch").split("+")[0].split(".")[:2]
        return tuple(int(p) for p in parts if p.isdigit())
    except importlib.metadata.PackageNotFoundError:
        return (0,)


def _schedule_problems(p: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if p.get("max_steps", 0) == 0 and p.get("epochs", 1) < 1:
        out.append(("max_steps", "set max_steps > 0 or epochs >= 1"))
    return out


def _stage_problems(p: dict[str, Any]) -> list[tuple[str, str]]:
    stage, loss_type = p.get("stage", "sft"), p.get("loss_type", "")
    if stage == "sft":
        return [("loss_type", "only used by the dpo and kto stages")] if loss_type else []
    out = []
    if not _installed("trl"):
        out.append(("stage", f"stage {stage} uses TRL: pip install trl==1.16.0 (or pip install 'tunelog[train]')"))
    if p.get("method", "lora") not in PREFERENCE_METHODS:
        out.append(("method", f"stage {stage} trains {', '.join(PREFERENCE_METHODS)}; {p.get('method')} is not "
                              "supported there (its reference would not be the untouched base)"))
    if p.get("packing"):
        out.append(("packing", f"stage {stage} keeps each pair in its own row; set packing to false"))
    if int(p.get("devices", 1)) > 1:
        out.append(("devices", f"stage {stage} runs in one process; set devices to 1"))
    parts = loss_type.split("+") if stage == "dpo" else [loss_type]
    unknown = [t for t in parts if loss_type and t not in LOSS_TYPES.get(stage, ())]
    if unknown:
        known = ", ".join(LOSS_TYPES[stage]) if stage in LOSS_TYPES else "none (leave it empty)"
        out.append(("loss_type", f"{'+'.join(unknown)!r} is not a loss of stage {stage}; choose from {known}"
                                 + (" (several joined with +, e.g. sigmoid+sft)" if stage == "dpo" else "")))
    elif len(set(parts)) < len(parts):
        out.append(("loss_type", f"{loss_type!r} names a loss twice; each counts once (weight 1)"))
    if stage == "grpo" and not p.get("rewards"):
        out.append(("rewards", "grpo needs at least one reward operation, e.g. [rewards.regex_format]"))
    if stage != "grpo" and p.get("rewards"):
        out.append(("rewards", "only used by stage grpo"))
    if float(p.get("label_smoothing", 0.0)) >= 0.5:
        out.append(("label_smoothing", "must be below 0.5"))
    return out
