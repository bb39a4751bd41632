"""GPU benchmark: the lora_trainer recipe vs an HF Trainer + peft baseline, same settings.

Model: a randomly initialised Qwen2-0.5B-shaped config (no download). Data: synthetic chat
examples of very uneven length (as real SFT data is). Both train the same LoRA (r=16, all linear
layers), bf16 autocast over bf16 base weights, same max length, batch size, learning rate and
steps; throughput counts real (non-padding) tokens between two logging steps.

The recipe uses what makes it faster: packing (no padding), Liger fused kernels (fused linear
cross-entropy, RMSNorm, SwiGLU, RoPE) when liger-kernel is installed, flash-attention 2 when
flash-attn is installed (sdpa otherwise), fused AdamW; torch.compile with --compile.
The baseline is what a user writes first: Trainer + DataCollatorForSeq2Seq (pad to longest).
Goal: recipe >= 1.5x the baseline's tokens/s. Each variant runs in its own process.

    python bench/gpu_train.py [--steps 80] [--out results.json] [--compile] [--smoke]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LOG_EVERY = 10
WORDS = ("the a of to and in is it you that he was for on are with as his they be at one have this from or "
         "had by word but what some we can out other were all there when up use your how said an each she "
         "which do their time if will way about many then them write would like so these her long make thing "
         "see him two has look more day could go come did number sound no most people my over know water "
         "than call first who may down side been now find any new work part take get place made live where").split()


def import_tunelog() -> None:
    """Make `import tunelog.*` work from a bare checkout (the package maps the repo's top folders)."""
    try:
        import tunelog.plugins.lora_trainer.backend  # noqa: F401
        return
    except ImportError:
        pass
    shim = Path(tempfile.mkdtemp(prefix="tunelog-shim-")) / "tunelog"
    shim.mkdir()
    for name in ("events", "store", "plugins", "daemon"):
        (shim / name).symlink_to(ROOT / name)
    sys.path.insert(0, str(shim.parent))


def missing_packages(*, need_cuda: bool) -> list[str]:
    out = [m for m in ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "yaml", "msgspec")
           if importlib.util.find_spec(m) is None]
    if not out and need_cuda:
        import torch

        if not torch.cuda.is_available():
            out.append("a CUDA GPU (torch.cuda.is_available() is False; torch " + torch.__version__ + ")")
    return out


def usable(module: str) -> bool:
    """Whether an optional accelerator package imports here (installed is not enough: triton, CUDA)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a kernel library failing on this machine
        print(f"not using {module}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    return True


# ------------------------------------------------------------------------ shared inputs


def build_inputs(work: Path, *, smoke: bool, examples: int) -> tuple[Path, Path]:
    """(model folder, dataset folder): tokenizer + random Qwen2 config, and a chat dataset artifact folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 40))) for _ in range(4000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(vocab_size=4000, special_tokens=specials,
                                                               show_progress=False,
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                     chat_template=template, model_max_length=4096)
    model_dir = work / "model"
    hf_tok.save_pretrained(model_dir)
    if smoke:
        cfg = Qwen2Config(vocab_size=8192, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    else:  # Qwen2.5-0.5B's shape: ~494 M parameters, 151,936-token vocabulary, tied embeddings
        cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                          num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                          tie_word_embeddings=True, rope_theta=1000000.0)
    cfg.pad_token_id, cfg.eos_token_id = hf_tok.pad_token_id, hf_tok.eos_token_id
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(model_dir)
    del model

    data_dir = work / "dataset"
    data_dir.mkdir()
    lines = []
    for _ in range(examples):  # lengths from ~20 to ~900 words, most short: lots of padding without packing
        n_q, n_a = rng.randrange(8, 60), int(min(850, rng.lognormvariate(5.0, 0.8)))
        q = " ".join(rng.choice(WORDS) for _ in range(n_q))
        a = " ".join(rng.choice(WORDS) for _ in range(max(4, n_a)))
        lines.append(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}))
    (data_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data_dir / "meta.json").write_text(json.dumps({"kind": "chat", "counts": {"train": examples}}))
    return model_dir, data_dir


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"r": 16, "alpha": 32, "dropout": 0.0, "lr": 1e-4, "batch_size": args.batch_size,
            "max_length": args.max_length, "steps": args.steps, "seed": 0}


# ------------------------------------------------------------------------ the two variants


def run_recipe(model_dir: Path, data_dir: Path, s: dict[str, Any], *, compile_model: bool, work: Path) -> dict[str, Any]:
    import torch

    from tunelog.plugins.context import Context
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    cuda = torch.cuda.is_available()
    liger, flash = cuda and usable("liger_kernel.transformers"), cuda and usable("flash_attn")
    params = {"method": "lora", "r": s["r"], "alpha": s["alpha"], "dropout": s["dropout"], "lr": s["lr"],
              "batch_size": s["batch_size"], "max_length": s["max_length"], "max_steps": s["steps"],
              "seed": s["seed"], "packing": True, "precision": "bf16", "model_dtype": "bfloat16",
              "deterministic": False, "liger": liger, "compile": compile_model, "logging_every": LOG_EVERY,
              "attn_implementation": "flash_attention_2" if flash else "sdpa", "pad_to_multiple": 64}
    marks: dict[int, tuple[float, int]] = {}
    store = ArtifactStore(work / "artifacts")

    def sink(kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and "loss" in body:  # the recipe syncs (reads the loss) before reporting
            marks[body["step"]] = (time.perf_counter(), body["tokens"])

    ctx = Context(job_id="bench", workdir=work / "job", artifacts=store, sink=sink)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    backend.train(ctx, params, {"model": str(model_dir), "dataset": store.put_dir(data_dir).sha256})
    return {"marks": marks, "features": {"packing": True, "liger": liger, "flash_attention_2": flash,
                                         "compile": compile_model, "fused_adamw": cuda}}


def run_baseline(model_dir: Path, data_dir: Path, s: dict[str, Any], *, work: Path) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from tunelog.plugins.common import data as datalib

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = datalib.encode_dataset(tok, datalib.read_dataset(data_dir, "train"), max_length=s["max_length"])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=s["r"], lora_alpha=s["alpha"], lora_dropout=s["dropout"],
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    tokens: list[int] = []

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = pad(features)
        tokens.append(int(batch["attention_mask"].sum()))  # CPU tensor: no device sync
        return batch

    marks: dict[int, tuple[float, int]] = {}

    class Marks(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:  # after the loss is read
            if state.global_step % LOG_EVERY == 0:
                marks[state.global_step] = (time.perf_counter(), sum(tokens[: state.global_step]))

    cuda = torch.cuda.is_available()
    args = TrainingArguments(output_dir=str(work / "trainer"), per_device_train_batch_size=s["batch_size"],
                             max_steps=s["steps"], learning_rate=s["lr"], lr_scheduler_type="linear",
                             bf16=True, logging_steps=LOG_EVERY, save_strategy="no", report_to=[], seed=s["seed"],
                             dataloader_num_workers=0, disable_tqdm=True, use_cpu=not cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Marks()]).train()
    return {"marks": marks, "features": {"packing": False, "collator": "DataCollatorForSeq2Seq(padding=longest)",
                                         "attention": "sdpa", "optimizer": args.optim}}


def worker(args: argparse.Namespace) -> None:
    import resource

    import torch

    import_tunelog()
    model_dir, data_dir, work = Path(args.model), Path(args.data), Path(args.work)
    s = settings(args)
    if args.worker == "recipe":
        got = run_recipe(model_dir, data_dir, s, compile_model=args.compile, work=work)
    else:
        got = run_baseline(model_dir, data_dir, s, work=work)
    steps = sorted(got["marks"])
    first, last = steps[0], steps[-1]
    (t0, n0), (t1, n1) = got["marks"][first], got["marks"][last]
    got.update({"window_steps": [first, last], "tokens": n1 - n0, "seconds": t1 - t0,
                "tok_per_s": (n1 - n0) / (t1 - t0), "s_per_step": (t1 - t0) / (last - first),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    if torch.cuda.is_available():
        got["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del got["marks"]
    print("RESULT " + json.dumps(got), flush=True)


# ------------------------------------------------------------------------ driver


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "liger-kernel", "triton", "flash-attn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the script, measures nothing")
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    ap.add_argument("--timeout", type=int, default=200, help="seconds per variant")
    ap.add_argument("--worker", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--work", default="")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    result: dict[str, Any] = {"goal_speedup": 1.5}
    out = Path(args.out) / "gpu_bench.json" if args.out and Path(args.out).is_dir() else (
        Path(args.out) if args.out else None)
    missing = missing_packages(need_cuda=not args.smoke)
    if missing:
        result["missing"] = missing
        print("cannot run the GPU benchmark, missing: " + ", ".join(missing), flush=True)
    else:
        result.update(run_all(args))
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
        print(f"results written to {out}")


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    result: dict[str, Any] = {"versions": versions(), "settings": settings(args)}
    result["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, data_dir = build_inputs(work, smoke=args.smoke, examples=args.examples)
        print(f"inputs ready in {time.perf_counter() - start:.0f} s", flush=True)
        for kind in ("baseline", "recipe"):
            cmd = [sys.executable, __file__, "--worker", kind, "--model", str(model_dir), "--data", str(data_dir),
                   "--work", str(work / kind), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                   "--max-length", str(args.max_length)] + (["--compile"] if args.compile else [])
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
            except subprocess.TimeoutExpired:
                result[kind] = {"error": f"timed out after {args.timeout} s"}
                print(f"{kind}: timed out", flush=True)
                continue
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            result[kind] = json.loads(line[7:]) if line else {"error": done.stderr[-4000:]}
            r = result[kind]
            print(f"{kind}: " + (f"{r['tok_per_s']:.0f} tok/s, {r['s_per_step']:.3f} s/step, peak GPU "
                                 f"{r.get('peak_gpu_mem_gb', 0):.1f} GB  {r['features']}" if line else
                                 "FAILED\n" + r["error"][-2000:]), flush=True)
    if "tok_per_s" in result.get("baseline", {}) and "tok_per_s" in result.get("recipe", {}):
        result["speedup"] = result["recipe"]["tok_per_s"] / result["baseline"]["tok_per_s"]
        print(f"speedup recipe / baseline = {result['speedup']:.2f}x (goal >= 1.5x)", flush=True)
    result["wall_s"] = time.perf_counter() - start
    return result


if __name__ == "__main__":
    main()
