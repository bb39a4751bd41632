"""The GRPO stage: setup → train → save, top to bottom, in the same loop as the preference stages.

Each step takes `batch_size` prompts in our seeded order, and TRL's GRPOTrainer (pinned) samples
`num_generations` completions for each with the model, scores them with the reward functions,
computes group-normalised advantages and the loss (`_generate_and_score_completions` and
`compute_loss`); our loop owns the optimizer, scheduler, checkpoints and stop requests. Sampling
draws from the torch generator, whose state every checkpoint holds, so a resumed run samples the
same completions as one that never stopped. Why not `Trainer.train()`: see preference.py.

Reward functions are operations of any loaded plugin (`rewards.regex_format`, or one of yours):
`op(ctx, params, inputs) -> {"rewards": [...]}` with the completions and their dataset rows. The
daemon pins their code with the run (the manifest's `uses_param: rewards`), so a replay calls the
same code and an edited reward plugin re-runs the node; its code hash is logged, recorded in
TrainingStarted and kept in the metrics output. Each step logs the sha256 of the completions it
sampled, and the metrics output keeps the list (one per step, across resumes), so `replay --verify`
compares what a replay sampled step by step. With `beta` > 0 the KL to the reference (the
base with the adapter disabled) is in the loss and reported.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import torch

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common import data, models

from . import checkpoint, methods
from .optimizers import build_optimizer
from .params import TrainParams, settings_hash
from .preference import save_stage_checkpoint, stage_metrics, trl_version
from .recipe import MainProcessReporter, library_versions, model_dtype, provenance, resolve_base, save_result
from .support import check_supported

ANSWER_KINDS = ("chosen", "rejected", "completion", "messages", "text")
"""Fields a prompt-only GRPO row must not have (they belong to other stages' records)."""


def train(ctx: JobContext, given: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Run the GRPO stage of the `train` operation: returns the output ports (or `stopped_at`)."""
    # ---------------------------------------------------------------- setup: inputs and rewards
    params = TrainParams.from_params(given)
    check_supported(params.to_dict(), cuda_available=torch.cuda.is_available())
    if params.threads:
        torch.set_num_threads(params.threads)
    report = MainProcessReporter(ctx, enabled=True)
    model_dir, base_ref = resolve_base(ctx, inputs["model"])
    identity = models.model_identity(model_dir)
    tokenizer = models.load_tokenizer(model_dir)
    dataset_dir = ctx.artifact_path(inputs["dataset"])
    rows = prompt_rows(data.read_dataset(dataset_dir, "train"))
    rewards, code = reward_functions(ctx, params)
    for name, digest in code.items():
        report.log(f"reward plugin {name}: code {digest[:16]}")

    # ---------------------------------------------------------------- setup: model, TRL trainer, optimizer
    import peft
    from datasets import Dataset
    from transformers import get_scheduler, set_seed
    from trl import GRPOConfig, GRPOTrainer

    set_seed(params.seed)
    torch.use_deterministic_algorithms(params.deterministic, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # see preference.py
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = models.load_model(model_dir, dtype=model_dtype(params, device), attn_implementation=params.attn_implementation)
    model.config.use_cache = False
    start_adapter = None
    if inputs.get("adapter"):
        from .recipe import adapter_folder

        start_adapter = adapter_folder(ctx, inputs["adapter"])
        model = peft.PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
    args = GRPOConfig(output_dir=str(ctx.workdir / "trl"), report_to="none", seed=params.seed,
                      per_device_train_batch_size=params.batch_size * params.num_generations,
                      num_generations=params.num_generations, steps_per_generation=1, beta=params.beta,
                      max_completion_length=params.max_completion_length, temperature=params.temperature,
                      bf16=params.precision == "bf16", use_cpu=not torch.cuda.is_available(), save_strategy="no",
                      disable_tqdm=True, **({"loss_type": params.loss_type} if params.loss_type else {}))
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer,
                          peft_config=None if start_adapter else methods.peft_config(params, model=model, total_steps=1,
                                                                                    xlora_paths=[]))
    trainer.current_gradient_accumulation_steps = 1  # our loop scales the loss by grad_accum itself
    model, device = trainer.model, trainer.accelerator.device
    total_steps = params.max_steps or math.ceil(params.epochs * math.ceil(len(rows) / params.batch_size)
                                                / params.grad_accum)
    warmup = params.warmup_steps or math.ceil(params.warmup_ratio * total_steps)
    fingerprints = {"settings": settings_hash(params), "base model": identity["weights_sha256"] or "",
                    "data": hashlib.sha256(repr(rows).encode()).hexdigest(), "reward code": ",".join(code.values()),
                    **({"start adapter": start_adapter.name} if start_adapter else {})}
    optimizer = build_optimizer(params, model, device=device)
    scheduler = get_scheduler(params.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    order = checkpoint.BatchOrder(len(rows), params.batch_size, params.seed)
    run = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "fingerprints": fingerprints, "sampled": []}
    if ctx.resume_from is not None:
        run = checkpoint.restore(Path(ctx.resume_from), model=model, optimizer=optimizer, scheduler=scheduler,
                                 order=order, fingerprints=fingerprints)
        run.setdefault("sampled", [])
        report.log(f"resumed at step {run['step']} (epoch {order.epoch}, batch {order.index})")
    if ctx.run_id:
        ctx.emit(provenance(ctx, params, inputs, identity=identity, dataset_dir=dataset_dir,
                            fingerprints=fingerprints, versions={**library_versions(), "trl": trl_version()},
                            device=device, resumed=run["step"] if ctx.resume_from else None, code=code))
    report.log(f"grpo with {params.method}: {len(rows)} prompts, {params.num_generations} completions each, "
               f"{total_steps} steps of {params.batch_size}x{params.grad_accum}; rewards {', '.join(params.rewards)}")

    # ---------------------------------------------------------------- train
    model.train()
    step, start_step, start_tokens = run["step"], run["step"], run["tokens"]
    t0 = time.perf_counter()
    step_losses: list[torch.Tensor] = []
    metrics: dict[str, Any] = {}
    while step < total_steps:
        if ctx.should_stop():
            run["elapsed_s"] += time.perf_counter() - t0
            report.log(f"stopping at step {step}: checkpoint saved")
            return {"stopped_at": step, "checkpoint": save_stage_checkpoint(ctx, step, model=model, optimizer=optimizer,
                                                                            scheduler=scheduler, order=order, run=run)}
        step_loss = torch.zeros((), device=device)
        sampled = hashlib.sha256()
        for _ in range(params.grad_accum):
            prompts = [rows[i] for i in order.next() for _ in range(params.num_generations)]
            batch = trainer._generate_and_score_completions(prompts)
            sampled.update((batch["completion_ids"] * batch["completion_mask"]).cpu().numpy().tobytes())
            with trainer.accelerator.autocast():
                loss = trainer.compute_loss(model, batch) / params.grad_accum
            loss.backward()
            step_loss += loss.detach()
            run["tokens"] += int(batch["completion_mask"].sum()) + int(batch["prompt_mask"].sum())
        grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   params.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_losses.append(step_loss)
        run["sampled"].append(sampled.hexdigest())  # what a replay must sample again, in the metrics output
        report.log(f"step {step} completions sha256 {sampled.hexdigest()}")
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
        model.delete_adapter("ref")
    out = ctx.workdir / "adapter"
    save_result(model, tokenizer, out, params=params, base_ref=base_ref, initial_adapter=ctx.workdir / "initial")
    return {"adapter": ctx.store_artifact(out.name, out), "metrics": {
        **metrics, "steps": step, "stage": "grpo", "reward_code": code, "elapsed_s": run["elapsed_s"],
        "completions_sha256": run["sampled"],
        "params": params.to_dict(), "base_model": {"ref": base_ref, **identity}, "start_adapter": inputs.get("adapter"),
        "dataset": {"sha256": inputs["dataset"], "train_rows": len(rows)}, "device": str(device),
        "threads": torch.get_num_threads(), "versions": {**library_versions(), "trl": trl_version()}}}


# -------------------------------------------------------------------- the parts the recipe names


def prompt_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GRPO rows: a prompt (text or turns) and any other columns, which reach the reward functions
    (e.g. a reference `answer`). Every row that is not prompt-only is named at once."""
    problems = [(f"row {n}", "needs a prompt" if "prompt" not in r else
                 f"has {', '.join(k for k in ANSWER_KINDS if k in r)}: GRPO rows hold a prompt only")
                for n, r in enumerate(records, start=1) if "prompt" not in r or any(k in r for k in ANSWER_KINDS)]
    if problems:
        raise ValidationError.collect("the train split is not prompt-only rows for grpo", problems[:50])
    if not records:
        raise ValidationError("the train split is empty")
    return [{**r, "prompt": [{"role": "user", "content": r["prompt"]}] if isinstance(r["prompt"], str) else r["prompt"]}
            for r in records]


def reward_functions(ctx: JobContext, params: TrainParams) -> tuple[list[Any], dict[str, str]]:
    """TRL reward callables for `params.rewards` (`plugin.operation` names, loaded from the code the
    run pinned), and each reward plugin's code hash."""
    if not params.rewards:
        raise ValidationError("grpo needs at least one reward function", problems=[
            {"where": "rewards", "message": "name one, e.g. [rewards.regex_format]"}])
    funcs, code = [], {}
    for name in params.rewards:
        plugin, _, operation = name.partition(".")
        op = ctx.operation(name)
        code[plugin] = ctx.plugin_code(plugin)
        funcs.append(as_trl_reward(ctx, op, operation, dict(params.reward_params.get(name, {}))))
    return funcs, code


def as_trl_reward(ctx: JobContext, op: Any, name: str, op_params: dict[str, Any]) -> Any:
    """A reward operation as the callable TRL calls: (prompts, completions, **columns) -> rewards."""
    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        keys = [k for k, v in columns.items() if isinstance(v, list) and len(v) == len(texts)
                and k not in ("completion_ids",)]
        rows = [{k: columns[k][i] for k in keys} for i in range(len(texts))]
        return [float(r) for r in op(ctx, op_params, {"completions": texts, "rows": rows})["rewards"]]

    reward.__name__ = name  # TRL names the metric rewards/<name>/mean
    return reward
