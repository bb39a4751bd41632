"""Overhead of the lora_trainer recipe over a bare transformers + peft loop (CPU).

Both train the same LoRA (r=8, all linear layers) on the same tiny-ish Llama built from a config,
the same tokenized batches in the same order, seed, thread count and optimizer; each runs in its
own process (so peak RSS is its own), alternating, several times. Throughput counts non-padding
tokens over the steps after a warm-up, per wall second and per CPU second of the process (the
latter is steadier on a shared machine). Goal: recipe / bare >= 0.97.

    .venv/bin/python bench/train_overhead.py [--steps 40] [--repeats 3] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
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
SETTINGS = {"method": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "lr": 2e-4, "batch_size": 8,
            "max_length": 256, "pad_to_multiple": 64, "seed": 0, "scheduler": "linear", "max_grad_norm": 1.0,
            "logging_every": 1}


def build(work: Path, *, hidden: int, layers: int, rows: int) -> tuple[Path, Path]:
    """A Llama (hidden x layers) + BPE tokenizer, and a chat dataset artifact folder of ~100-250 tokens a row."""
    from tests.support.tiny import _WORDS, build_tiny

    model = build_tiny(work / f"llama-{hidden}x{layers}", hidden=hidden, layers=layers, heads=4)
    data = work / "dataset"
    data.mkdir(exist_ok=True)
    rng = random.Random(1)
    lines = []
    for _ in range(rows):
        q = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(10, 40)))
        a = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(40, 160)))
        lines.append(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}))
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "meta.json").write_text(json.dumps({"kind": "chat", "counts": {"train": rows}}))
    return model, data


def run_recipe(model: Path, data: Path, *, steps: int, threads: int, work: Path) -> dict[str, Any]:
    """The plugin operation in-process, timing each step from its metrics messages."""
    from tunelog.plugins.context import Context
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    stamps: dict[int, tuple[float, float]] = {}
    store = ArtifactStore(work / "artifacts")

    def sink(kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and "loss" in body:
            stamps[body["step"]] = (time.perf_counter(), time.process_time())

    ctx = Context(job_id="bench", workdir=work / "job", artifacts=store, sink=sink)
    sha = store.put_dir(data).sha256
    backend.train(ctx, {**SETTINGS, "max_steps": steps, "threads": threads}, {"model": str(model), "dataset": sha})
    return {"stamps": stamps}


def run_bare(model_dir: Path, data: Path, *, steps: int, threads: int) -> dict[str, Any]:
    """transformers + peft + torch, nothing else: a bare training loop, same batches and optimizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler, set_seed

    from tunelog.plugins.common import data as datalib

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = datalib.encode_dataset(tok, datalib.read_dataset(data, "train"), max_length=SETTINGS["max_length"])
    set_seed(SETTINGS["seed"])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=SETTINGS["lr"], weight_decay=0.0, fused=False, foreach=False)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=steps)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SETTINGS["seed"])).tolist()
    bs = SETTINGS["batch_size"]
    model.train()
    stamps: dict[int, tuple[float, float]] = {}
    for step in range(steps):
        batch = datalib.collate([rows[i] for i in order[step * bs:(step + 1) * bs]], pad_id=tok.pad_token_id,
                                pad_to_multiple=SETTINGS["pad_to_multiple"])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, SETTINGS["max_grad_norm"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        float(loss)
        stamps[step + 1] = (time.perf_counter(), time.process_time())
    return {"stamps": stamps}


def tokens_per_step(model: Path, data: Path, steps: int) -> dict[int, int]:
    """Non-padding tokens in each step's batch (both variants see the same batches)."""
    import torch
    from transformers import AutoTokenizer

    from tunelog.plugins.common import data as datalib

    tok = AutoTokenizer.from_pretrained(model)
    rows = datalib.encode_dataset(tok, datalib.read_dataset(data, "train"), max_length=SETTINGS["max_length"])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SETTINGS["seed"])).tolist()
    bs = SETTINGS["batch_size"]
    return {s + 1: sum(len(rows[i]["input_ids"]) for i in order[s * bs:(s + 1) * bs]) for s in range(steps)}


def worker(args: argparse.Namespace) -> None:
    model, data, work = Path(args.model), Path(args.data), Path(args.work)
    cpu0 = time.process_time()
    if args.worker == "recipe":
        got = run_recipe(model, data, steps=args.steps, threads=args.threads, work=work)
    else:
        got = run_bare(model, data, steps=args.steps, threads=args.threads)
    got["cpu_s"] = time.process_time() - cpu0
    got["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(got))


def measure(kind: str, model: Path, data: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(model), "--data", str(data),
           "--work", str(work / f"{kind}-{time.monotonic_ns()}"), "--steps", str(args.steps),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    got = json.loads(line[7:])
    got["stamps"] = {int(k): tuple(v) for k, v in got["stamps"].items()}
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
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
        tokens = tokens_per_step(model, data, args.steps)
        counted = sum(tokens[s] for s in range(WARMUP + 1, args.steps + 1))
        results: dict[str, list[dict[str, Any]]] = {"bare": [], "recipe": []}
        for _ in range(args.repeats):
            for kind in ("bare", "recipe"):
                got = measure(kind, model, data, args, work)
                (w0, c0), (w1, c1) = got["stamps"][WARMUP], got["stamps"][args.steps]
                results[kind].append({"tok_per_s": counted / (w1 - w0), "tok_per_cpu_s": counted / (c1 - c0),
                                      "peak_rss_mb": got["peak_rss_mb"]})
                print(f"{kind:6s} {counted / (w1 - w0):8.1f} tok/s  {counted / (c1 - c0):8.1f} tok/CPU-s  "
                      f"peak RSS {got['peak_rss_mb']:.0f} MB", flush=True)
    summary = {kind: {"tok_per_s_median": statistics.median(r["tok_per_s"] for r in runs),
                      "tok_per_cpu_s_median": statistics.median(r["tok_per_cpu_s"] for r in runs),
                      "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in runs), "runs": runs}
               for kind, runs in results.items()}
    ratio = summary["recipe"]["tok_per_s_median"] / summary["bare"]["tok_per_s_median"]
    cpu_ratio = summary["recipe"]["tok_per_cpu_s_median"] / summary["bare"]["tok_per_cpu_s_median"]
    summary.update({"ratio_recipe_over_bare": ratio, "ratio_per_cpu_second": cpu_ratio, "goal": 0.97, "steps": args.steps, "warmup_steps": WARMUP,
                    "threads": args.threads, "model": f"llama hidden {args.hidden} x {args.layers} layers",
                    "settings": SETTINGS})
    print(f"recipe / bare = {ratio:.3f} wall, {cpu_ratio:.3f} per CPU second (goal >= 0.97); peak RSS bare "
          f"{summary['bare']['peak_rss_mb_median']:.0f} MB, recipe {summary['recipe']['peak_rss_mb_median']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
