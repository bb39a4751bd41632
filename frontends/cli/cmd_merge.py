"""`tunectl merge` (adapters into a model, or into one adapter) and `tunectl generate` (base vs adapters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli import render_runs
from tunelog.frontends.cli.cmd_runs import detach_option, report, submitted
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.refs import model_ref, resolve_adapter, split_weight

COMBINATION_TYPES = ("cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
                     "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
"""adapter_merge.combine's `combination_type` choices."""

model_option = click.option("--model", "-m", required=True, metavar="MODEL",
                            help="The base model the adapters were trained on (name, folder, artifact or hub id).")


def weighted(c: Any, items: tuple[str, ...], *, option: str) -> list[tuple[str, float | None]]:
    """(full sha256, weight or None) for each `ADAPTER[:WEIGHT]`, prefixes resolved."""
    out = []
    for item in items:
        prefix, weight = split_weight(item, option=option)
        out.append((resolve_adapter(c, prefix), weight))
    return out


@click.command()
@model_option
@click.argument("adapters", nargs=-1, required=True, metavar="ADAPTER[:WEIGHT]...")
@click.option("--method", "combination", type=click.Choice(COMBINATION_TYPES), default="cat", show_default=True,
              help="How to combine several adapters (see above).")
@click.option("--density", type=click.FloatRange(0.0, 1.0), metavar="D",
              help="Fraction of entries kept by ties, dare and magnitude_prune types (default 0.5).")
@click.option("--into-model", is_flag=True, help="Fold exactly one adapter into the base model (merge_and_unload).")
@detach_option
@json_option
@click.pass_context
def merge(ctx: click.Context, model: str, adapters: tuple[str, ...], combination: str, density: float | None,
          into_model: bool, detach: bool, as_json: bool) -> None:
    """Combine adapters into one new adapter, or fold one into its base model.

    ADAPTER is a unique prefix of an adapter's sha256 (`tunectl adapters list`); WEIGHT
    defaults to 1 and may be negative. MODEL may also be a unique prefix of a merged model's
    sha256. Prints the new adapter's sha256, or with --into-model
    the merged model artifact's sha256; `tunectl adapters list` shows the lineage.

    \b
    Which results are exact:
      --into-model   merge_and_unload: exact, base + adapter up to rounding in the dtype.
      cat            the only exact weighted sum of the adapters' weight updates (its rank is the
                     sum of the ranks; exact with the default float32 dtype).
      linear, ties, dare_linear, dare_ties, magnitude_prune
                     mix the A and B factors separately: NOT the sum of the updates, and they
                     need equal ranks.
      svd, ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd
                     build the weighted (pruned) sum of the updates and truncate it to a rank:
                     an approximation.
    With a single adapter peft always applies `linear`, which is then exact. Requests peft
    would reject or get silently wrong (unequal ranks, DoRA, ...) are refused before any
    model is loaded.
    """
    c = client()
    pairs = weighted(c, adapters, option="ADAPTER")
    if into_model:
        if len(pairs) != 1 or pairs[0][1] not in (None, 1.0):
            raise click.UsageError("--into-model takes exactly one adapter, without a weight")
        if density is not None or combination != "cat":
            raise click.UsageError("--method and --density apply to combining adapters, not to --into-model")
        node = {"op": "adapter_merge.merge_and_unload", "inputs": {"model": model_ref(c, model), "adapter": pairs[0][0]}}
    else:
        node = {"op": "adapter_merge.combine", "params": {"combination_type": combination,
                                                         **({"density": density} if density is not None else {})},
                "inputs": {"model": model_ref(c, model), "adapters": [f"{s}:{w if w is not None else 1.0:g}"
                                                                      for s, w in pairs]}}
    what = "merge into model" if into_model else f"combine {len(pairs)} adapters ({combination})"
    row, after = F.start(c, "/v1/runs", {"graph": {"description": what, "nodes": {"merge": node}}})
    if detach:
        ctx.exit(submitted(c, row, after=after, detach=True, as_json=as_json))
    if not as_json:
        click.echo(f"run {row['run_id']}")
    view = F.follow(c, row["run_id"], after=after, show=not as_json)
    if as_json or view["run"]["state"] != "succeeded":
        ctx.exit(report(view, as_json=as_json))
    out = view["run"]["nodes"]["merge"]["outputs"]
    if into_model:
        click.echo(f"merged model {out['model']}")
    else:
        lineage: dict[str, Any] = next(iter(c.get("/v1/adapters", prefix=out["adapter"], limit=1)["adapters"]), {})
        exact = {None: "", True: ", exact", False: ", approximate"}[lineage.get("exact")]
        click.echo(f"adapter {out['adapter']}  ({lineage.get('merge_type', combination)}{exact})")
    click.echo(f"inspect: tunectl runs show {row['run_id']}")


def read_history(path: str) -> list[Any]:
    """The conversation turns in a JSON file (the evaluate node checks each turn)."""
    try:
        turns = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path} as JSON: {exc}", param_hint="--history") from None
    if not isinstance(turns, list):
        raise click.BadParameter(f"{path} must hold a JSON list of turns", param_hint="--history")
    return turns


@click.command()
@model_option
@click.option("--adapter", "-a", "adapters", multiple=True, metavar="ADAPTER[:WEIGHT]",
              help="An adapter to compare with the base (repeatable); a unique prefix of its sha256.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most tokens generated per answer.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Sampling temperature; 0 decodes greedily.")
@click.option("--top-p", type=click.FloatRange(0, 1), default=None, help="Nucleus sampling mass (sampling only).")
@click.option("--top-k", type=click.IntRange(min=0), default=None, help="Sample among the k likeliest tokens (0: off).")
@click.option("--min-p", type=click.FloatRange(0, 1), default=None, help="Min-p sampling threshold (0: off).")
@click.option("--repetition-penalty", type=click.FloatRange(min=0.01), default=None,
              help="Penalty on tokens already in the text (1: none).")
@click.option("--seed", type=int, default=None, help="Seed set before each answer (default 0).")
@click.option("--stop", "stops", multiple=True, metavar="TEXT", help="A stop string (repeatable); cut from the answer.")
@click.option("--system", default=None, metavar="TEXT", help="System message before the conversation.")
@click.option("--history", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help='Earlier turns: a JSON list of {"role": "user"|"assistant", "content": ...}.')
@click.option("--chat-template/--no-chat-template", "chat", default=True, show_default=True,
              help="Wrap prompts with the tokenizer's chat template, or use them as plain text.")
@click.option("--template", "template_file", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="FILE", help="A Jinja chat template to use instead of the tokenizer's own.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prompts generated together (left-padded): many times faster; greedy answers differ from "
                   "one-at-a-time ones only on float-rounding ties, sampled ones depend on their batch.")
@click.argument("prompts", nargs=-1, required=True, metavar="PROMPT...")
@json_option
@click.pass_context
def generate(ctx: click.Context, model: str, adapters: tuple[str, ...], max_new_tokens: int, temperature: float,
             top_p: float | None, top_k: int | None, min_p: float | None, repetition_penalty: float | None,
             seed: int | None, stops: tuple[str, ...], system: str | None, history: str | None, chat: bool,
             template_file: str | None, batch_size: int, prompts: tuple[str, ...], as_json: bool) -> None:
    """Compare the answers of the base model and of adapters to prompts.

    Each PROMPT is answered by the base model and with each adapter (greedily unless
    --temperature > 0; every variant starts from the same seed), and the answers are printed side
    by side (one below the other when the terminal is narrow).

    Every adapter is loaded onto one copy of the base (evaluate.generate); answers are labelled
    with the adapters' short hashes. When any adapter has a WEIGHT other than 1, the adapters are
    first combined into one with an exact `cat` combine node in the same run, and the answers
    compare the base with that combined adapter. --json prints {"run", "answers"}.
    """
    c = client()
    pairs = weighted(c, adapters, option="--adapter")
    model_value = model_ref(c, model)
    settings = {"top_p": top_p, "top_k": top_k, "min_p": min_p, "repetition_penalty": repetition_penalty,
                "seed": seed, "system": system}
    params: dict[str, Any] = {"prompts": list(prompts), "max_new_tokens": max_new_tokens, "chat": chat,
                              "greedy": temperature == 0, **{k: v for k, v in settings.items() if v is not None}}
    if temperature > 0:
        params["temperature"] = temperature
    if stops:
        params["stop"] = list(stops)
    if batch_size > 1:
        params["batch_size"] = batch_size
    if history is not None:
        params["history"] = read_history(history)
    if template_file is not None:
        params["chat_template"] = Path(template_file).read_text()
    gen: dict[str, Any] = {"op": "evaluate.generate", "params": params, "inputs": {"model": model_value}}
    nodes: dict[str, Any] = {}
    labels = {"base": "base"}
    if any(w not in (None, 1.0) for _, w in pairs):
        nodes["combine"] = {"op": "adapter_merge.combine", "params": {"combination_type": "cat"},
                            "inputs": {"model": model_value, "adapters": [f"{s}:{w if w is not None else 1:g}"
                                                                          for s, w in pairs]}}
        gen["inputs"]["adapter"] = {"node": "combine", "output": "adapter"}
        labels["adapter"] = " + ".join(f"{w if w is not None else 1:g}×{s[:12]}" for s, w in pairs)
    elif pairs:
        gen["inputs"]["adapters"] = [{"name": f"a{s[:12]}", "sha256": s} for s in dict.fromkeys(s for s, _ in pairs)]
        labels.update({f"a{s[:12]}": s[:12] for s, _ in pairs})
    nodes["generate"] = gen
    row, after = F.start(c, "/v1/runs", {"graph": {"description": f"generate {len(prompts)} prompt(s)",
                                                   "nodes": nodes}})
    if not as_json:
        click.echo(f"run {row['run_id']}")
    view = F.follow(c, row["run_id"], after=after, show=not as_json)
    if view["run"]["state"] != "succeeded":
        ctx.exit(report(view, as_json=as_json))
    answers = {p: {labels.get(n, n): text for n, text in by.items()}
               for p, by in view["run"]["nodes"]["generate"]["outputs"]["report"].items()}
    if as_json:
        print_json({"run": row["run_id"], "answers": answers})
    else:
        click.echo(render_runs.answers(answers, {}))
