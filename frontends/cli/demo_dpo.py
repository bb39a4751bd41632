"""`tunectl demo --stage dpo`: SFT then DPO on SmolLM2-135M-Instruct, as one workflow through the daemon.

The style taught is one the base model never follows: end every answer with a fixed sign-off.
One run, `demo: sft -> dpo`:
  sft_data, prefs (datasets.prepare) -> sft (lora_trainer.train on short answers to general
  questions) -> dpo (stage dpo on the SFT adapter: the same answer ending with the sign-off is
  preferred over the answer without it; the frozen SFT adapter is the reference) -> answers
  (evaluate.generate: base, SFT and DPO adapters on held-out prompts and control questions).
Then the share of held-out answers that end with the sign-off for each, and whether the control
answers stayed right.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from tunelog.frontends.cli.client import Client
from tunelog.frontends.cli.cmd_demo import DATA_DIR, check, run_graph

MAX_NEW_TOKENS = 40
# One torch thread per job: on a machine whose cores are shared, two spin-waiting threads per job
# were many times slower than one (tokens/s fell to a few per second).
MODELS = ("base", "sft", "dpo")


def signoff_questions() -> dict[str, Any]:
    return json.loads((DATA_DIR / "demo_signoff.json").read_text())  # type: ignore[no-any-return]


def write_data(folder: Path, q: dict[str, Any]) -> tuple[Path, Path]:
    """The SFT examples (prompt -> answer) and the preference pairs (answer + sign-off over answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    sft, pairs = folder / "sft.jsonl", folder / "pairs.jsonl"
    sft.write_text("".join(json.dumps({"messages": [{"role": "user", "content": r["prompt"]},
                                                    {"role": "assistant", "content": r["answer"]}]}) + "\n"
                           for r in q["train"]))
    pairs.write_text("".join(json.dumps({"prompt": r["prompt"], "chosen": f"{r['answer']} {q['sign_off']}",
                                         "rejected": r["answer"]}) + "\n" for r in q["train"]))
    return sft, pairs


def dpo_graph(model: str, sft: Path, pairs: Path, prompts: list[str], *, sft_steps: int,
              dpo_steps: int) -> dict[str, Any]:
    """sft -> dpo on the SFT adapter -> base, SFT and DPO answers side by side."""
    return {"description": "demo: sft -> dpo (end every answer with a sign-off)", "nodes": {
        "sft_data": {"op": "datasets.prepare", "inputs": {"source": str(sft)}, "params": {"format": "messages"}},
        "prefs": {"op": "datasets.prepare", "inputs": {"source": str(pairs)}, "params": {"format": "preference"}},
        "sft": {"op": "lora_trainer.train", "params": {"preset": "demo-facts", "max_steps": sft_steps, "threads": 1},
                "inputs": {"model": model, "dataset": {"node": "sft_data", "output": "dataset"}}},
        "dpo": {"op": "lora_trainer.train",
                "params": {"preset": "demo-dpo", "max_steps": dpo_steps, "threads": 1},
                "inputs": {"model": model, "dataset": {"node": "prefs", "output": "dataset"},
                           "adapter": {"node": "sft", "output": "adapter"}}},
        "answers": {"op": "evaluate.generate",
                    "params": {"prompts": prompts, "max_new_tokens": MAX_NEW_TOKENS, "batch_size": len(prompts)},
                    "inputs": {"model": model, "adapters": {"sft": {"node": "sft", "output": "adapter"},
                                                            "dpo": {"node": "dpo", "output": "adapter"}}}},
    }}


def styled(answer: str, sign_off: str) -> bool:
    """Whether an answer ends with the sign-off (trailing spaces aside)."""
    return answer.strip().endswith(sign_off)


def run_dpo_demo(c: Client, model: str, *, sft_steps: int, dpo_steps: int, show: bool) -> dict[str, Any]:
    """Run the workflow and summarise it: rows per prompt, style shares and control answers per model."""
    q = signoff_questions()
    sft, pairs = write_data(Path(c.get("/v1/status")["data_dir"]) / "demo-dpo", q)
    controls = q["controls"]
    prompts = q["held_out"] + [x["question"] for x in controls]
    t0 = time.monotonic()
    view = run_graph(c, dpo_graph(model, sft, pairs, prompts, sft_steps=sft_steps, dpo_steps=dpo_steps),
                     label="demo: sft -> dpo", show=show)
    nodes = view["run"]["nodes"]
    report = nodes["answers"]["outputs"]["report"]
    rows = [{"kind": "held-out", "question": p, **{m: report[p][m] for m in MODELS},
             **{f"{m}_ok": styled(report[p][m], q["sign_off"]) for m in MODELS}} for p in q["held_out"]]
    rows += [{"kind": "control", "question": x["question"], "expect": x["expect"], **{m: report[x["question"]][m]
             for m in MODELS}, **{f"{m}_ok": check(report[x["question"]][m], x["expect"]) for m in MODELS}}
             for x in controls]
    held = [r for r in rows if r["kind"] == "held-out"]
    kept = [r for r in rows if r["kind"] == "control"]
    return {"run": view["run"]["run_id"], "sign_off": q["sign_off"], "rows": rows,
            "adapters": {m: nodes[m]["outputs"].get("adapter") for m in ("sft", "dpo")},
            "dpo_start_adapter": nodes["dpo"]["outputs"]["metrics"].get("start_adapter"),
            "dpo_margin": nodes["dpo"]["outputs"]["metrics"].get("rewards/margins"),
            "styled": {m: sum(r[f"{m}_ok"] for r in held) for m in MODELS}, "held_out": len(held),
            "controls_kept": {m: sum(r[f"{m}_ok"] for r in kept) for m in MODELS}, "controls": len(kept),
            "wall_s": round(time.monotonic() - t0, 1)}


def print_dpo(s: dict[str, Any]) -> None:
    mark = {True: "✓", False: "✗"}
    click.echo("")
    for r in s["rows"]:
        click.echo(f"[{r['kind']}] {r['question']}" + (f"  (expect: {r['expect']})" if r["kind"] == "control" else ""))
        for m in MODELS:
            click.echo(f"  {m:<4} {mark[r[f'{m}_ok']]} {r[m].strip()[:150]}")
    click.echo("")
    click.echo(f"held-out answers ending with {s['sign_off']!r}: " + ", ".join(
        f"{m} {s['styled'][m]}/{s['held_out']}" for m in MODELS))
    click.echo("control answers right: " + ", ".join(f"{m} {s['controls_kept'][m]}/{s['controls']}" for m in MODELS))
    click.echo(f"DPO adapter {s['adapters']['dpo']} (on the SFT adapter {s['adapters']['sft']}); "
               f"final margin {s['dpo_margin']}")
    click.echo(f"inspect: tunectl runs show {s['run']}   (run took {s['wall_s']} s)")
