"""The `train` operation's parameters as one typed struct, validated once when the job starts.

The manifest (`manifest.yaml`) declares each parameter with its description, default and choices;
the daemon checks a job's parameters against it and hands them over in one canonical form (a
`number` is always a float, an `integer` an int). `TrainParams.from_params` converts that
mapping once; the recipe then reads typed attributes, and `settings_hash` fingerprints the
same struct, so 16 and 16.0 can never hash differently. A test keeps the fields and their types
equal to the manifest's.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from tunelog.events.errors import ValidationError

RUN_ONLY_PARAMS = ("eval_every", "eval_max_batches", "save_every", "logging_every", "threads", "preset",
                   "distributed", "accelerate_config", "nodes", "gpu_type")
"""Parameters that do not change what is computed: a checkpoint may be resumed with other values."""


class TrainParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every parameter of `lora_trainer.train` (descriptions and defaults: manifest.yaml)."""

    preset: str
    stage: Literal["sft", "dpo", "kto", "orpo", "simpo", "grpo"]
    beta: float
    loss_type: str
    label_smoothing: float
    simpo_gamma: float
    rewards: list[str]
    reward_params: dict[str, dict[str, Any]]
    num_generations: int
    max_completion_length: int
    temperature: float
    method: Literal[
        "lora", "rslora", "dora", "pissa", "olora", "loftq", "loraplus", "adalora", "xlora", "vera", "ia3", "full"]
    r: int
    alpha: float
    dropout: float
    target_modules: list[str]
    pissa_niter: int
    loraplus_lr_ratio: float
    xlora_adapters: list[str]
    xlora_depth: int
    quantization: Literal["none", "nf4", "fp4", "int8"]
    double_quant: bool
    compute_dtype: Literal["float32", "bfloat16", "float16"]
    model_dtype: Literal["auto", "float32", "bfloat16", "float16"]
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"]
    optimizer: Literal["adamw", "adamw_8bit", "galore", "galore_8bit", "apollo", "badam", "muon"]
    lr: float
    weight_decay: float
    max_grad_norm: float
    galore_rank: int
    galore_update_interval: int
    galore_scale: float
    badam_switch_every: int
    scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"]
    warmup_steps: int
    warmup_ratio: float
    max_steps: int
    epochs: int
    batch_size: int
    grad_accum: int
    max_length: int
    truncation: Literal["right", "left"]
    packing: bool
    train_on_prompt: bool
    pad_to_multiple: int
    precision: Literal["fp32", "bf16", "fp16"]
    gradient_checkpointing: bool
    liger: bool
    compile: bool
    eval_every: int
    eval_max_batches: int
    save_every: int
    seed: int
    deterministic: bool
    threads: int
    logging_every: int
    devices: int
    nodes: int
    gpu_type: str
    distributed: Literal["ddp", "fsdp", "deepspeed"]
    accelerate_config: str

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainParams:
        """The struct of a full parameter mapping; a missing, unknown or mistyped one is named."""
        try:
            return msgspec.convert(params, cls)
        except msgspec.ValidationError as exc:
            where = str(exc).rpartition("at `$.")[2].rstrip("`") if "at `$." in str(exc) else "params"
            raise ValidationError(f"invalid lora_trainer.train parameters: {exc}",
                                  problems=[{"where": f"params.{where}", "message": str(exc)}]) from exc

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain mapping (what the job records and reports)."""
        return msgspec.structs.asdict(self)


def settings_hash(params: TrainParams) -> str:
    """Fingerprint of the parameters that change the computation (a checkpoint must match it),
    over their canonical JSON: sorted keys, numbers in their declared type."""
    kept = {k: v for k, v in params.to_dict().items() if k not in RUN_ONLY_PARAMS}
    return hashlib.sha256(msgspec.json.encode(kept, order="sorted")).hexdigest()
