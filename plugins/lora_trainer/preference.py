"""The preference stages (DPO, KTO, ORPO, SimPO): setup → train → save, top to bottom.

TRL (pinned in pyproject) owns everything that makes a stage what it is: tokenizing the pairs
with the chat template, the collator (KTO's mismatched KL pairs included), the reference
log-probabilities and the loss with its variants and metrics. We build TRL's trainer for the
stage and call its `compute_loss` on batches WE choose, with our optimizer, scheduler, batch
order and checkpoints. Why our loop and not `Trainer.train()`: a checkpoint must resume to the
bytes of a run that never stopped (optimizer, scheduler, every RNG state and the data-order
position, in the same format as SFT's, stored through the job context), stopping must answer
the job's stop request, and metrics must reach the job context per step; `Trainer.train()` owns
its own checkpoint layout, sampler and stop logic, so we would lose those guarantees.

The reference model of DPO and KTO is the base with the adapter disabled (TRL does this for a
peft model with `ref_model=None`): no second copy of the weights. Continuing from an input
adapter (e.g. DPO after SFT), TRL keeps a frozen copy of that adapter as the reference, so the
reference is the SFT model, as in the DPO paper. ORPO and SimPO need no reference.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common import data, models

from . import checkpoint, methods
from .optimizers import build_optimizer
from .params import TrainParams, settings_hash
from .recipe import (
    MainProcessReporter,
    adapter_folder,
    library_versions,
    model_dtype,
    provenance,
    quantization,
    resolve_base,
    save_result,
)
from .support import check_supported

KIND = {"dpo": "preference", "orpo": "preference", "simpo": "preference", "kto": "kto"}
"""Stage -> the kind of dataset record it trains on (see plugins/common/data.py)."""
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl", "log_odds_ratio",
           "log_odds_chosen", "nll_loss", "reward", "reward_std", "completions/mean_length")
"""TRL metrics forwarded to the job context (each stage logs the ones it has), with GRPO's
per-function `rewards/<name>/mean`."""


def train(ctx: JobContext, given: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Run a preference stage of the `train` operation: returns the output ports (or `stopped_at`)."""
    # ---------------------------------------------------------------- setup: inputs
    params = TrainParams.from_params(given)
    check_supported(params.to_dict(), cuda_available=torch.cuda.is_available())
    if params.threads:
        torch.set_num_threads(params.threads)
    report = MainProcessReporter(ctx, enabled=True)
    model_dir, base_ref = resolve_base(ctx, inputs["model"])
    identity = models.model_identity(model_dir)
    tokenizer = models.load_tokenizer(model_dir)
    dataset_dir = ctx.artifact_path(inputs["dataset"])
    records = stage_records(params.stage, data.read_dataset(dataset_dir, "train"))
    start_adapter = adapter_folder(ctx, inputs.get("adapter"))

    # ---------------------------------------------------------------- setup: model, TRL trainer, optimizer
    import peft
    from transformers import get_scheduler, set_seed

    set_seed(params.seed)
    torch.use_deterministic_algorithms(params.deterministic, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN (a debugging aid, not needed for equal
    # results); TRL's chunked LM head allocates per chunk, so it cost ~30% of DPO's speed on CPU.
    torch.utils.deterministic.fill_uninitialized_memory = False
    model = models.load_model(model_dir, dtype=model_dtype(params, torch.device("cpu") if not torch.cuda.is_available()
                                                           else torch.device("cuda")),
                              quantization=quantization(params), double_quant=params.double_quant,
                              compute_dtype=params.compute_dtype, attn_implementation=params.attn_implementation)
    model.config.use_cache = False
    if quantization(params):
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing)
    elif params.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_config = None
    if start_adapter is not None:
        model = peft.PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
        report.log(f"continuing adapter {start_adapter.name[:12]}: it is also the frozen reference")
    else:
        peft_config = methods.peft_config(params, model=model, total_steps=1, xlora_paths=[])
    trainer = build_trl_trainer(params, model=model, peft_config=peft_config, tokenizer=tokenizer,
                                records=records, workdir=ctx.workdir)
    model, device = trainer.model, trainer.accelerator.device
    rows, counts = prepared_rows(trainer, params, records=len(records))
    report.log(f"train: {data.counts_text(counts)}")
    if not rows:
        raise ValidationError(f"no {KIND[params.stage]} row of the train split keeps a response token within "
                              f"max_length {params.max_length}", hint="raise max_length or shorten the prompts")
    batches_per_epoch = math.ceil(len(rows) / params.batch_size)
    total_steps = params.max_steps or math.ceil(params.epochs * batches_per_epoch / params.grad_accum)
    warmup = params.warmup_steps or math.ceil(params.warmup_ratio * total_steps)
    fingerprints = {"settings": settings_hash(params), "data": data.features_hash(
                        {k: [int(v)] if k == "label" else v for k, v in r.items()} for r in rows),
                    "base model": identity["weights_sha256"] or "",
                    **({"start adapter": start_adapter.name} if start_adapter else {})}
    optimizer = build_optimizer(params, model, device=device)
    scheduler = get_scheduler(params.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    order = checkpoint.BatchOrder(len(rows), params.batch_size, params.seed)
    run = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "fingerprints": fingerprints}
    if ctx.resume_from is not None:
        run = checkpoint.restore(Path(ctx.resume_from), model=model, optimizer=optimizer, scheduler=scheduler,
                                 order=order, fingerprints=fingerprints)
        report.log(f"resumed at step {run['step']} (epoch {order.epoch}, batch {order.index})")
    if ctx.run_id:
        ctx.emit(provenance(ctx, params, inputs, identity=identity, dataset_dir=dataset_dir,
                            fingerprints=fingerprints, versions={**library_versions(), "trl": trl_version()},
                            device=device, resumed=run["step"] if ctx.resume_from else None))
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    report.log(f"{params.stage} with {params.method}: {n_trainable:,} of {n_total:,} parameters trainable; "
               f"{len(rows)} rows, {total_steps} steps of {params.batch_size}x{params.grad_accum}; device {device}")

    # ---------------------------------------------------------------- train
    model.train()
    step, start_step, start_tokens = run["step"], run["step"], run["tokens"]
    t0 = time.perf_counter()
    step_losses: list[torch.Tensor] = []
    grad_norm = torch.tensor(float("nan"))
    metrics: dict[str, Any] = {}
    while step < total_steps:
        if ctx.should_stop():
            run["elapsed_s"] += time.perf_counter() - t0
            report.log(f"stopping at step {step}: checkpoint saved")
            return {"stopped_at": step, "checkpoint": save_stage_checkpoint(ctx, step, model=model, optimizer=optimizer,
                                                                            scheduler=scheduler, order=order, run=run)}
        step_loss = torch.zeros((), device=device)
        for _ in range(params.grad_accum):
            batch = trainer.data_collator([rows[i] for i in order.next()])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with trainer.accelerator.autocast():
                loss = trainer.compute_loss(model, batch) / params.grad_accum
            loss.backward()
            step_loss += loss.detach()
            run["tokens"] += int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
        if params.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                       params.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_losses.append(step_loss)

        if step % params.logging_every == 0 or step == total_steps:
            spent = time.perf_counter() - t0
            metrics = {"loss": float(torch.stack(step_losses).mean()), **stage_metrics(trainer),
                       "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm), "tokens": run["tokens"],
                       "tokens_per_s": (run["tokens"] - start_tokens) / max(spent, 1e-9),
                       "elapsed_s": run["elapsed_s"] + spent,
                       "eta_s": spent / (step - start_step) * (total_steps - step)}
            step_losses = []
            report.metrics(step, **metrics)
            report.progress(step, total_steps)
        if params.save_every and step % params.save_every == 0 and step < total_steps:
            save_stage_checkpoint(ctx, step, model=model, optimizer=optimizer, scheduler=scheduler, order=order,
                                  run=run)

    # ---------------------------------------------------------------- save
    run["elapsed_s"] += time.perf_counter() - t0
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")  # TRL's frozen reference copy is not part of the result
    out = ctx.workdir / "adapter"
    save_result(model, tokenizer, out, params=params, base_ref=base_ref, initial_adapter=ctx.workdir / "initial",
                state_dict=None)
    return {"adapter": ctx.store_artifact(out.name, out), "metrics": {
        **{k: v for k, v in metrics.items() if k in ("loss", "tokens_per_s", *METRICS)}, "steps": step,
        "stage": params.stage, "tokens": run["tokens"], "elapsed_s": run["elapsed_s"],
        "trainable_params": n_trainable, "total_params": n_total, "params": params.to_dict(),
        "base_model": {"ref": base_ref, **identity},
        "start_adapter": inputs.get("adapter"),
        "dataset": {"sha256": inputs["dataset"], "train_features_sha256": fingerprints["data"],
                    "train_rows": len(rows), "encoding": {"train": counts}},
        "device": str(device), "processes": 1, "threads": torch.get_num_threads(),
        "versions": {**library_versions(), "trl": trl_version()}}}


# -------------------------------------------------------------------- the parts the recipe names


def stage_records(stage: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The split's records in TRL's conversational shape: the answers become assistant messages.
    A dataset of the wrong kind is refused naming the stage that fits it."""
    want = KIND[stage]
    kinds = {data.record_kind(r) for r in records}
    if kinds != {want}:
        fits = {"preference": "dpo, orpo or simpo", "kto": "kto", "chat": "sft", "text": "sft", "prompt": "grpo"}
        got = ", ".join(sorted(kinds)) or "no"
        raise ValidationError(f"stage {stage} trains on {want} records, but the dataset holds {got} records",
                              hint=f"use --stage {' or --stage '.join(fits[k] for k in sorted(kinds))}"
                              if kinds else "the train split is empty")

    def said(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    if want == "kto":
        return [{"prompt": r["prompt"], "completion": said(r["completion"]), "label": bool(r["label"])}
                for r in records]
    return [{"prompt": r["prompt"], "chosen": said(r["chosen"]), "rejected": said(r["rejected"])} for r in records]


def build_trl_trainer(params: TrainParams, *, model: Any, peft_config: Any, tokenizer: Any,
                      records: list[dict[str, Any]], workdir: Path) -> Any:
    """TRL's trainer for the stage, used for its data preparation, collator and loss only."""
    from datasets import Dataset

    common = {"output_dir": str(workdir / "trl"), "report_to": "none", "seed": params.seed,
              "per_device_train_batch_size": params.batch_size, "max_length": params.max_length,
              "bf16": params.precision == "bf16", "use_cpu": not torch.cuda.is_available(),
              "dataset_num_proc": None, "save_strategy": "no", "disable_tqdm": True}
    dataset = Dataset.from_list(records)
    loss_type = params.loss_type or None
    if params.stage == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=params.beta, loss_type=(loss_type or "sigmoid").split("+"),
                         label_smoothing=params.label_smoothing, pad_to_multiple_of=params.pad_to_multiple,
                         truncation_mode="keep_start" if params.truncation == "right" else "keep_end")
        return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    if params.stage == "kto":
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(**common, beta=params.beta, loss_type=loss_type or "kto",
                         pad_to_multiple_of=params.pad_to_multiple)
        return KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    if params.stage == "orpo":
        with _pinned_experimental():
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=params.beta)
        return ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                           peft_config=peft_config)
    if params.stage == "simpo":
        with _pinned_experimental():
            from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**common, beta=params.beta, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=params.simpo_gamma,
                         label_smoothing=params.label_smoothing)
        return CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    raise ValidationError(f"stage {params.stage!r} is not a preference stage")


@contextlib.contextmanager
def _pinned_experimental() -> Iterator[None]:
    """ORPO and CPO/SimPO live in ``trl.experimental``, which warns on first import that its API may
    change. The trl version is pinned in pyproject.toml and these stages are tested against it, so
    the warning tells a user nothing they can act on; it is silenced for this import only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"You are importing from 'trl\.experimental'")
        yield


def prepared_rows(trainer: Any, params: TrainParams, *, records: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """TRL's tokenized rows (only the columns its collator reads) and counts of what happened to
    the records: TRL drops DPO rows whose prompt fills max_length and truncates the rest silently,
    so both are counted here."""
    rows = [{k: v for k, v in r.items() if k == "label" or _token_list(v)} for r in trainer.train_dataset]
    counts = {"kind": KIND[params.stage], "records": records, "used": 0, "truncated": 0, "dropped_no_target": 0,
              "max_length": params.max_length, "truncation": params.truncation}
    counts["dropped_no_target"] = records - len(rows)
    kept = []
    for row in rows:
        lengths = sequence_lengths(row)
        if not any(answer for _, answer in lengths):
            counts["dropped_no_target"] += 1
            continue
        counts["truncated"] += any(prompt + answer > params.max_length for prompt, answer in lengths)
        kept.append(row)
    counts["used"] = len(kept)
    return kept, counts


def _token_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, int) for t in value)


def sequence_lengths(row: dict[str, Any]) -> list[tuple[int, int]]:
    """(prompt tokens, answer tokens) of each sequence a tokenized row holds, before truncation."""
    if "chosen_ids" in row:  # DPO
        prompt = len(row["prompt_ids"])
        return [(prompt, len(row["chosen_ids"])), (prompt, len(row["rejected_ids"]))]
    if "completion_ids" in row:  # KTO
        return [(len(row["prompt_ids"]), len(row["completion_ids"]))]
    # ORPO / CPO: already truncated by TRL; an answer is its labelled tokens
    return [(0, sum(1 for t in row[f"{side}_labels"] if t != -100)) for side in ("chosen", "rejected")]


def stage_metrics(trainer: Any) -> dict[str, float]:
    """The stage's metrics TRL gathered since the last call (mean over the calls), then cleared.
    DPO and KTO keep them in `_metrics`, ORPO and CPO in `_stored_metrics`."""
    store = getattr(trainer, "_metrics", None) or getattr(trainer, "_stored_metrics", None) or {}
    gathered = store.get("train", {})
    out = {}
    for key, values in gathered.items():
        name = key.removeprefix("train_")
        if (name in METRICS or name.startswith("rewards/") and name.endswith("/mean")) and len(values):
            out[name] = float(sum(float(v) for v in values) / len(values))
    gathered.clear()
    return out


def save_stage_checkpoint(ctx: JobContext, step: int, *, model: Any, optimizer: Any, scheduler: Any,
                          order: checkpoint.BatchOrder, run: dict[str, Any]) -> str:
    """Store a resumable checkpoint of a stage through the job context (the SFT format: the adapter's
    trainable weights, optimizer, scheduler, RNG states, data-order position); returns its sha256."""
    import shutil

    folder = checkpoint.save(ctx.workdir / f"checkpoint-{step:07d}", model=model, optimizer=optimizer,
                             scheduler=scheduler, order=order, state={**run, "step": step}, everything=False)
    sha = ctx.checkpoint(step, folder)
    shutil.rmtree(folder, ignore_errors=True)
    return sha


def trl_version() -> str:
    from importlib.metadata import version

    return version("trl")
