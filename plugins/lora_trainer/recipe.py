"""The fine-tuning recipe: setup → train → save, top to bottom.

transformers loads the model, peft adds the adapter (methods.py maps our parameters to its
configs), accelerate handles precision and devices (and several GPUs under `accelerate launch`),
and a bare loop trains: on CPU it is the fastest and the easiest to make bit-exact. The recipe
reports only through the job context (metrics, progress, log, checkpoints, artifacts).

Determinism (byte-identical adapters across runs on the same CPU kernel path and library
versions): seed everything before the adapter is built, draw the batch order from a
seeded generator (pre-shuffled, no DataLoader workers), pin the optimizer implementation, pad to
fixed multiples. A checkpoint holds weights, optimizer, scheduler, every RNG state and the
data-order position, so a resumed run produces the same bytes as one that never stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common import adapters, data, models

from . import checkpoint, methods
from .optimizers import build_optimizer
from .params import TrainParams, settings_hash
from .support import PREFERENCE_METHODS, check_supported, sharding_problem


def train(ctx: JobContext, given: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Run the `train` operation: returns the output ports (or `stopped_at` when asked to stop)."""
    # ---------------------------------------------------------------- setup: devices and inputs
    params = TrainParams.from_params(given)  # validated once; typed from here on
    check_supported(params.to_dict(), cuda_available=torch.cuda.is_available())
    if params.threads:
        torch.set_num_threads(params.threads)
    accelerator = make_accelerator(params)
    device = accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    report = MainProcessReporter(ctx, enabled=accelerator.is_main_process)  # one voice for all ranks

    model_dir, base_ref = resolve_base(ctx, inputs["model"])
    identity = models.model_identity(model_dir)
    tokenizer = models.load_tokenizer(model_dir)
    dataset_dir = ctx.artifact_path(inputs["dataset"])
    start_adapter = adapter_folder(ctx, inputs.get("adapter"))
    if start_adapter is not None and params.method not in PREFERENCE_METHODS:
        raise ValidationError(f"method {params.method} cannot continue an adapter",
                              problems=[{"where": "inputs.adapter", "message": f"use one of {', '.join(PREFERENCE_METHODS)}"}])
    train_rows = encode_split(tokenizer, dataset_dir, "train", params)
    eval_rows = encode_split(tokenizer, dataset_dir, "validation", params) if (dataset_dir / "validation.jsonl").exists() else []
    encoding = {split: rows.counts for split, rows in (("train", train_rows), ("validation", eval_rows))
                if isinstance(rows, data.Encoded)}
    for split, counts in encoding.items():
        report.log(f"{split}: {data.counts_text(counts)}")
    if not train_rows:
        raise ValidationError("the train split has no example with a target token",
                              hint="check the dataset, max_length and train_on_prompt")
    batches_per_epoch = math.ceil(len(train_rows) / params.batch_size)
    total_steps = params.max_steps or math.ceil(params.epochs * batches_per_epoch / (params.grad_accum * world))
    warmup = params.warmup_steps or math.ceil(params.warmup_ratio * total_steps)
    fingerprints = {"settings": settings_hash(params), "data": data.features_hash(train_rows),
                    "base model": identity["weights_sha256"] or "",
                    **({"start adapter": start_adapter.name} if start_adapter else {})}
    versions = library_versions()
    report.log(f"{len(train_rows)} training rows, {len(eval_rows)} validation rows; {total_steps} steps "
            f"of {params.batch_size}x{params.grad_accum}x{world}; device {device}, "
            f"{torch.get_num_threads()} threads")

    # ---------------------------------------------------------------- setup: model, adapter, optimizer
    import peft
    from accelerate import DistributedType
    from transformers import get_scheduler, set_seed

    set_seed(params.seed)
    torch.use_deterministic_algorithms(params.deterministic, warn_only=True)
    model = models.load_model(model_dir, dtype=model_dtype(params, device), quantization=quantization(params),
                              double_quant=params.double_quant, compute_dtype=params.compute_dtype,
                              device=str(device), attn_implementation=params.attn_implementation)
    model.config.use_cache = False  # no KV cache in training (and X-LoRA refuses one)
    if params.liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    if quantization(params):
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing)
    elif params.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_config = methods.peft_config(params, model=model, total_steps=total_steps,
                                      xlora_paths=[resolve_adapter(ctx, a) for a in params.xlora_adapters])
    if start_adapter is not None:  # continue it: its own config (method, r, targets) replaces the parameters'
        model = peft.PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    elif peft_config is not None:
        model = peft.get_peft_model(model, peft_config)
    initial_adapter = ctx.workdir / "initial_adapter"
    if methods.needs_conversion(params):  # the starting point the saved adapter is converted against
        model.save_pretrained(initial_adapter)
    optimizer = build_optimizer(params, model, device=device)
    scheduler = get_scheduler(params.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    order = checkpoint.BatchOrder(len(train_rows), params.batch_size, params.seed)
    run = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "fingerprints": fingerprints}
    if ctx.resume_from is not None:
        run = checkpoint.restore(Path(ctx.resume_from), model=model, optimizer=optimizer, scheduler=scheduler,
                                 order=order, fingerprints=fingerprints)
        report.log(f"resumed at step {run['step']} (epoch {order.epoch}, batch {order.index})")
    if accelerator.is_main_process and ctx.run_id:
        ctx.emit(provenance(ctx, params, inputs, identity=identity, dataset_dir=dataset_dir,
                            fingerprints=fingerprints, versions=versions, device=device,
                            resumed=run["step"] if ctx.resume_from else None))
    trained, raw_optimizer = model, optimizer
    model, optimizer = accelerator.prepare(model, optimizer)
    forward = torch.compile(model) if params.compile else model
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in trained.parameters())
    report.log(f"{params.method}: {n_trainable:,} of {n_total:,} parameters trainable")
    eval_chunks = [eval_rows[i: i + params.batch_size] for i in range(0, len(eval_rows), params.batch_size)]
    eval_chunks = eval_chunks[rank::world][: params.eval_max_batches or None]

    def validate() -> dict[str, float]:
        return evaluate(model, (make_batch(rows, tokenizer, params, device) for rows in eval_chunks), accelerator)

    def save_checkpoint(step: int) -> str:
        """Checkpoint from the main process (exact resume is for one process; DDP ranks share rank 0's RNG)."""
        sha = ""
        if accelerator.is_main_process:
            folder = checkpoint.save(ctx.workdir / f"checkpoint-{step:07d}", model=trained, optimizer=raw_optimizer,
                                     scheduler=scheduler, order=order, state={**run, "step": step},
                                     everything=params.method == "full")
            sha = ctx.checkpoint(step, folder)
            shutil.rmtree(folder, ignore_errors=True)
        accelerator.wait_for_everyone()
        return sha

    # ---------------------------------------------------------------- train
    model.train()
    step, start_step, start_tokens = run["step"], run["step"], run["tokens"]
    t0 = time.perf_counter()
    step_losses: list[torch.Tensor] = []
    grad_norm = torch.tensor(float("nan"))
    metrics: dict[str, Any] = {}
    while step < total_steps:
        if stop_requested(ctx, accelerator):
            run["elapsed_s"] += time.perf_counter() - t0
            report.log(f"stopping at step {step}: checkpoint saved")
            return {"stopped_at": step, "checkpoint": save_checkpoint(step)}
        window = [[order.next() for _ in range(world)][rank] for _ in range(params.grad_accum)]
        rows = [[train_rows[i] for i in indices] for indices in window]
        targets = [sum(_targets(r) for r in micro) for micro in rows]
        step_loss = torch.zeros((), device=device)
        for k, micro in enumerate(rows):
            if targets[k] == 0 and world == 1:
                continue  # nothing to learn from (and a NaN loss); skip it
            batch = make_batch(micro, tokenizer, params, device)
            sync = accelerator.no_sync(model) if k < len(rows) - 1 else nullcontext()
            with sync:
                loss = forward(**batch).loss * (targets[k] / max(1, sum(targets)))
                accelerator.backward(loss)
            step_loss += loss.detach()
            run["tokens"] += sum(len(r["input_ids"]) for r in micro) * world
        if params.max_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(trained.parameters(), params.max_grad_norm)
        elif (step + 1) % params.logging_every == 0:
            grad_norm = accelerator.clip_grad_norm_(trained.parameters(), float("inf"))  # measures, scales by 1
        optimizer.step()
        if params.method == "adalora":
            trained.base_model.update_and_allocate(step)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_losses.append(step_loss)

        if step % params.logging_every == 0 or step == total_steps:
            spent = time.perf_counter() - t0
            loss_mean = accelerator.reduce(torch.stack(step_losses).mean(), reduction="mean")
            metrics = {"loss": float(loss_mean), "lr": scheduler.get_last_lr()[0],
                       "grad_norm": float(grad_norm),
                       "tokens": run["tokens"], "tokens_per_s": (run["tokens"] - start_tokens) / max(spent, 1e-9),
                       "elapsed_s": run["elapsed_s"] + spent,
                       "eta_s": spent / (step - start_step) * (total_steps - step)}
            step_losses = []
            report.metrics(step, **metrics)
            report.progress(step, total_steps)
        if eval_chunks and params.eval_every and step % params.eval_every == 0 and step < total_steps:
            report.metrics(step, **validate())
        if params.save_every and step % params.save_every == 0 and step < total_steps:
            save_checkpoint(step)

    # ---------------------------------------------------------------- save
    run["elapsed_s"] += time.perf_counter() - t0
    final = validate() if eval_chunks else {}
    if final:
        report.metrics(step, **final)
    accelerator.wait_for_everyone()
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state_dict = accelerator.get_state_dict(model) if sharded else None  # gathered from every rank
    outputs: dict[str, Any] = {}
    if accelerator.is_main_process:
        out = ctx.workdir / ("model" if params.method == "full" else "adapter")
        save_result(accelerator.unwrap_model(model), tokenizer, out, params=params, base_ref=base_ref,
                    initial_adapter=initial_adapter, state_dict=state_dict)
        outputs["model" if params.method == "full" else "adapter"] = ctx.store_artifact(out.name, out)
        outputs["metrics"] = {
            **{k: v for k, v in metrics.items() if k in ("loss", "tokens_per_s")}, **final, "steps": step,
            "tokens": run["tokens"], "elapsed_s": run["elapsed_s"], "trainable_params": n_trainable,
            "total_params": n_total, "params": params.to_dict(), "base_model": {"ref": base_ref, **identity},
            "dataset": {"sha256": inputs["dataset"], "train_features_sha256": fingerprints["data"],
                        "train_rows": len(train_rows), "validation_rows": len(eval_rows), "encoding": encoding},
            "device": str(device), "processes": world, "threads": torch.get_num_threads(),
            "versions": versions}
    return outputs


# -------------------------------------------------------------------- the parts the recipe names


def make_accelerator(params: TrainParams) -> Any:
    """An Accelerator for the run's precision (a fresh one per run; one run per worker process)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)  # in-process runs (tests) may change precision
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[params.precision]
    accelerator = Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:
        problem = sharding_problem(params.distributed, accelerator.distributed_type.name)
        if problem is not None:
            raise ValidationError.collect("lora_trainer cannot shard the model as asked", [("distributed", problem)])
    return accelerator


def resolve_base(ctx: JobContext, ref: str) -> tuple[Path, str]:
    """(local model folder, the name the saved adapter gives its base: `adapters.base_identity`)."""
    cache = Path(ctx.cache_dir) / "models"
    if _is_sha(ref) and not Path(ref).exists():
        return models.resolve_model(str(ctx.artifact_path(ref)), cache_dir=cache), ref
    folder = models.resolve_model(ref, cache_dir=cache)
    return folder, adapters.base_identity(ref, folder)


def resolve_adapter(ctx: JobContext, ref: str) -> Path:
    """An X-LoRA expert: an adapter artifact hash or an adapter folder."""
    path = ctx.artifact_path(ref) if _is_sha(ref) and not Path(ref).exists() else Path(ref)
    if not (path / "adapter_config.json").exists():
        raise ValidationError(f"xlora expert {ref[:16]} is not a peft adapter folder",
                              problems=[{"where": "xlora_adapters", "message": "no adapter_config.json"}])
    return path


def adapter_folder(ctx: JobContext, ref: Any) -> Path | None:
    """The optional input adapter to continue training (an artifact hash or a folder), or None."""
    if not ref:
        return None
    path = ctx.artifact_path(ref) if _is_sha(str(ref)) and not Path(ref).exists() else Path(ref)
    if not (path / "adapter_config.json").is_file():
        raise ValidationError(f"inputs.adapter: {str(ref)[:16]} is not a peft adapter folder",
                              problems=[{"where": "inputs.adapter", "message": "no adapter_config.json"}])
    return path


def _is_sha(ref: str) -> bool:
    return len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)


def model_dtype(params: TrainParams, device: torch.device) -> str:
    """Base weights dtype: explicit, or float32 on CPU / for full fine-tuning, bfloat16 for adapters on GPU."""
    if params.model_dtype != "auto":
        return str(params.model_dtype)
    if params.optimizer == "badam":
        return "bfloat16" if device.type == "cuda" else "float32"
    return "bfloat16" if device.type == "cuda" and params.method != "full" else "float32"


def quantization(params: TrainParams) -> str | None:
    return None if params.quantization == "none" else str(params.quantization)


def encode_split(tokenizer: Any, folder: Path, split: str, params: TrainParams) -> list[dict[str, Any]]:
    """Tokenized (and, with packing, packed) features of one split of the dataset artifact."""
    rows = data.encode_dataset(tokenizer, data.read_dataset(folder, split), max_length=params.max_length,
                               train_on_prompt=params.train_on_prompt, truncation=params.truncation)
    return data.Encoded(data.pack(rows, max_length=params.max_length), counts=rows.counts) if params.packing else rows


def make_batch(rows: list[dict[str, Any]], tokenizer: Any, params: TrainParams, device: torch.device
               ) -> dict[str, Any]:
    """Padded tensors on the device. Packed rows keep their samples apart: on CPU with a block-diagonal
    4-D mask in the compute dtype; on a GPU transformers builds it there from the position_ids (and
    flash-attention runs variable-length kernels), saving a large host-side mask per step."""
    mask_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(params.precision, torch.float32)
    if params.model_dtype in ("bfloat16", "float16") and params.precision == "fp32":
        mask_dtype = getattr(torch, params.model_dtype)
    packed_mask = "none" if device.type == "cuda" or params.attn_implementation == "flash_attention_2" else "4d"
    batch = data.collate(rows, pad_id=tokenizer.pad_token_id, pad_to_multiple=params.pad_to_multiple,
                         packed_mask=packed_mask, mask_dtype=mask_dtype)
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _targets(row: dict[str, Any]) -> int:
    """Label tokens that take loss (transformers shifts labels by one inside the model)."""
    return sum(1 for label in row["labels"][1:] if label != data.IGNORE_INDEX)


def evaluate(model: Any, batches: Iterable[dict[str, Any]], accelerator: Any) -> dict[str, float]:
    """Token-weighted cross-entropy over the validation batches, and its perplexity.

    Computed from the logits, not the model's `loss`, which for some methods (AdaLoRA) includes a
    regulariser."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for batch in batches:
            total += token_loss_sum(model, batch)
    model.train()
    total = accelerator.reduce(total, reduction="sum")
    loss = float(total[0] / total[1]) if total[1] else float("nan")
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def token_loss_sum(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """[summed next-token cross-entropy, number of target tokens] of one batch (float64)."""
    labels = batch["labels"][:, 1:]
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=data.IGNORE_INDEX, reduction="sum")
    return torch.stack([loss.double(), (labels != data.IGNORE_INDEX).sum().double()])


def save_result(model: Any, tokenizer: Any, out: Path, *, params: TrainParams, base_ref: str,
                initial_adapter: Path, state_dict: dict[str, Any] | None = None) -> None:
    """The output folder: a peft adapter (converted for PiSSA/OLoRA), or the full model + tokenizer.
    `state_dict` is the gathered one when FSDP / DeepSpeed shard the model."""
    kwargs = {} if state_dict is None else {"state_dict": state_dict}
    if params.method == "full":
        model.save_pretrained(out, **kwargs)
        tokenizer.save_pretrained(out)
        return
    if methods.needs_conversion(params):
        kwargs["path_initial_model_for_weight_conversion"] = str(initial_adapter)
    adapters.save_naming_base(model, out, base_ref, **kwargs)
    if params.method == "xlora":
        methods.save_xlora_gate(model, out)
    canonical_config(out / "adapter_config.json")


def canonical_config(path: Path) -> None:
    """Write adapter_config.json the same way every time, so equal training gives equal bytes:
    peft keeps target_modules in a set (its order varies between processes) and writes a
    parameter as 16 or 16.0 depending on how it was given."""
    if not path.exists():
        return
    config = json.loads(path.read_text())

    def canonical(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        if isinstance(value, list):
            return [canonical(v) for v in value]
        return value

    config = canonical(config)
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def provenance(ctx: JobContext, params: TrainParams, inputs: dict[str, Any], *, identity: dict[str, Any],
               dataset_dir: Path, fingerprints: dict[str, str], versions: dict[str, str], device: Any,
               resumed: int | None, code: dict[str, str] | None = None) -> Any:
    """TrainingStarted: everything that decides this run's result, recorded before the first step."""
    import json
    import platform

    from tunelog.events.runs import TrainingStarted

    meta_file = dataset_dir / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    dev: dict[str, Any] = {"type": device.type, "threads": torch.get_num_threads(), "machine": platform.machine(),
                           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        dev.update(name=props.name, capability=f"{props.major}.{props.minor}", memory=props.total_memory,
                   cuda=torch.version.cuda)
    return TrainingStarted(
        run_id=str(ctx.run_id), job_id=ctx.job_id, params=params.to_dict(), seed=params.seed,
        libraries={"python": platform.python_version(), **versions}, device=dev,
        model={"ref": str(inputs["model"]), **identity},
        dataset={"sha256": str(inputs["dataset"]), "content_sha256": meta.get("content_sha256"),
                 "source": meta.get("source"), "tokenized_sha256": fingerprints["data"]},
        determinism={"deterministic": params.deterministic, "seed": params.seed,
                     "precision": params.precision, "optimizer": params.optimizer,
                     "threads": params.threads, "settings_sha256": fingerprints["settings"]},
        resumed_from_step=resumed, code=dict(code or {}))


def library_versions() -> dict[str, str]:
    """Versions that decide the bytes of the result (record them with the run)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out



def stop_requested(ctx: JobContext, accelerator: Any) -> bool:
    """Whether to checkpoint and stop now; with several processes, all stop when any was asked."""
    if accelerator.num_processes == 1:
        return ctx.should_stop()
    flag = torch.tensor(float(ctx.should_stop()), device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum") > 0)


class MainProcessReporter:
    """Forwards log lines, metrics and progress to the job context from the main process only."""

    def __init__(self, ctx: JobContext, *, enabled: bool):
        self.ctx, self.enabled = ctx, enabled

    def log(self, message: str) -> None:
        if self.enabled:
            self.ctx.log(message)

    def metrics(self, step: int, **values: float) -> None:
        if self.enabled:
            self.ctx.metrics(step, **values)

    def progress(self, step: int, total: int) -> None:
        if self.enabled:
            self.ctx.progress(step, total)
