"""DPO through tunelog (lora_trainer.train, stage dpo) vs a plain TRL script (DPOTrainer.train()), CPU.

Both train the same LoRA (r=8, all linear layers) with TRL's sigmoid DPO loss on the same Llama
built from a config and the same preference pairs, with the same batch size, learning rate,
seed, thread count and precision; each runs in its own process, alternating, several times.
Throughput counts the non-padding tokens of chosen + rejected (the attention mask, as TRL's own
`num_tokens` does) over the steps after a warm-up, per wall second. Both sides must have counted
the same tokens at every step (the bench stops otherwise), so the ratio compares the same work.

TRL's DPOConfig turns on bf16 autocast and gradient checkpointing by default. On a CPU without
native bf16 matmuls the first makes every step ~10x slower, and both change the work done, so the
script sets them to what tunelog runs here (fp32, no checkpointing), as an informed user who
compares the two would. Goal: tunelog / TRL >= 0.97.

    .venv/bin/python bench/dpo_overhead.py [--steps 30] [--repeats 3] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WARMUP = 5
SETTINGS = {"stage": "dpo", "method": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "lr": 5e-4, "batch_size": 4,
            "max_length": 256, "pad_to_multiple": 1, "seed": 0, "scheduler": "linear", "max_grad_norm": 1.0,
            "beta": 0.1, "logging_every": 1}


def build(work: Path, *, hidden: int, layers: int, rows: int) -> tuple[Path, Path]:
    """A Llama (hidden x layers) + BPE tokenizer, and a preference dataset artifact folder."""
    from tests.support.tiny import _WORDS, build_tiny

    model = build_tiny(work / f"llama-{hidden}x{layers}", hidden=hidden, layers=layers, heads=4)
    data = work / "dataset"
    data.mkdir(exist_ok=True)
    rng = random.Random(1)
    lines = []
    for _ in range(rows):
        q = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(10, 40)))
        a = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(20, 80)))
        lines.append(json.dumps({"prompt": [{"role": "user", "content": q}], "chosen": a + " happy calm",
                                 "rejected": a}))
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "meta.json").write_text(json.dumps({"kind": "preference", "counts": {"train": rows}}))
    return model, data


def run_tunelog(model: Path, data: Path, *, steps: int, threads: int, work: Path) -> dict[str, Any]:
    """The plugin operation in-process; stamps and token counts from its metrics messages."""
    from tunelog.plugins.context import Context
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    stamps: dict[int, tuple[float, float, int]] = {}
    store = ArtifactStore(work / "artifacts")

    def sink(kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and "loss" in body:
            stamps[body["step"]] = (time.perf_counter(), time.process_time(), int(body["tokens"]))

    ctx = Context(job_id="bench", workdir=work / "job", artifacts=store, sink=sink)
    backend.train(ctx, {**SETTINGS, "max_steps": steps, "threads": threads},
                  {"model": str(model), "dataset": store.put_dir(data).sha256})
    return {"stamps": stamps}


def run_trl(model_dir: Path, data: Path, *, steps: int, threads: int, work: Path) -> dict[str, Any]:
    """A plain TRL script: DPOTrainer.train() with the same settings."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(threads)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows = [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    stamps: dict[int, tuple[float, float, int]] = {}
    holder: dict[str, Any] = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stamps[state.global_step] = (time.perf_counter(), time.process_time(),
                                         int(holder["trainer"]._total_train_tokens))

    args = DPOConfig(output_dir=str(work / "trl"), report_to="none", seed=SETTINGS["seed"], max_steps=steps,
                     per_device_train_batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["lr"],
                     lr_scheduler_type="linear", max_grad_norm=SETTINGS["max_grad_norm"], beta=SETTINGS["beta"],
                     max_length=SETTINGS["max_length"], logging_steps=1, save_strategy="no", use_cpu=True,
                     disable_tqdm=True, dataloader_num_workers=0, bf16=False, gradient_checkpointing=False)
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(model_dir),
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"), callbacks=[Stamp()])
    holder["trainer"] = trainer
    trainer.train()
    return {"stamps": stamps}


def worker(args: argparse.Namespace) -> None:
    model, data, work = Path(args.model), Path(args.data), Path(args.work)
    run = run_tunelog if args.worker == "tunelog" else run_trl
    print("RESULT " + json.dumps(run(model, data, steps=args.steps, threads=args.threads, work=work)))


def measure(kind: str, model: Path, data: Path, args: argparse.Namespace, work: Path) -> tuple[float, float, list[int]]:
    """(tokens per wall second, tokens per CPU second, tokens counted by each step) of one run in its
    own process, over the steps after the warm-up; the second rate is steadier on a shared machine."""
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(model), "--data", str(data),
           "--work", str(work / f"{kind}-{time.monotonic_ns()}"), "--steps", str(args.steps),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    stamps = {int(k): v for k, v in json.loads(line[7:])["stamps"].items()}
    (w0, c0, t0), (w1, c1, t1) = stamps[WARMUP], stamps[args.steps]
    return (t1 - t0) / (w1 - w0), (t1 - t0) / (c1 - c0), [stamps[k][2] for k in sorted(stamps)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--json", default="")
    ap.add_argument("--worker", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--work", default="")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, data = build(work, hidden=args.hidden, layers=args.layers, rows=args.steps * SETTINGS["batch_size"])
        results: dict[str, list[tuple[float, float]]] = {"trl": [], "tunelog": []}
        counted: dict[str, list[int]] = {}
        for _ in range(args.repeats):
            for kind in ("trl", "tunelog"):
                wall, cpu, counted[kind] = measure(kind, model, data, args, work)
                results[kind].append((wall, cpu))
                print(f"{kind:8s} {wall:8.1f} tok/s  {cpu:8.1f} tok/CPU-s", flush=True)
            if counted["trl"] != counted["tunelog"]:
                raise SystemExit(f"the two did different work: tokens after each step\n  trl     {counted['trl']}\n"
                                 f"  tunelog {counted['tunelog']}")
    medians = {kind: [statistics.median(r[i] for r in v) for i in (0, 1)] for kind, v in results.items()}
    ratio = medians["tunelog"][0] / medians["trl"][0]
    cpu_ratio = medians["tunelog"][1] / medians["trl"][1]
    print(f"tunelog / TRL = {ratio:.3f} wall, {cpu_ratio:.3f} per CPU second (goal >= 0.97)")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "medians": medians, "ratio": ratio, "ratio_per_cpu_second": cpu_ratio,
                                               "goal": 0.97,
                                               "steps": args.steps, "warmup_steps": WARMUP, "threads": args.threads,
                                               "model": f"llama hidden {args.hidden} x {args.layers} layers",
                                               "settings": SETTINGS}, indent=1))


if __name__ == "__main__":
    main()
