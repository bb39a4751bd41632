"""`tunectl train`: prepare a dataset and train an adapter on it, as one two-node run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli.cmd_jobs import pairs
from tunelog.frontends.cli.cmd_runs import detach_option, submitted
from tunelog.frontends.cli.common import client, json_option
from tunelog.frontends.cli.refs import local_or_given, model_ref

DEFAULT_REWARDS = ("rewards.regex_format", "rewards.length_penalty")
"""The built-in rewards `--stage grpo` uses without --reward: any non-empty answer, shorter is better."""


def train_graph(*, model: str, data: str, params: dict[str, Any], data_params: dict[str, Any],
                description: str = "") -> dict[str, Any]:
    """The graph `tunectl train` runs: `data` (datasets.prepare) feeding `train` (lora_trainer.train)."""
    return {"description": description, "nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": data}, "params": data_params},
        "train": {"op": "lora_trainer.train", "params": params,
                  "inputs": {"model": model, "dataset": {"node": "data", "output": "dataset"}}},
    }}


def column_mapping(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`--columns` values as datasets.prepare's `columns` and `tags` parameters (empty ones left out)."""
    out: dict[str, dict[str, str]] = {"columns": {}, "tags": {}}
    for value in values:
        if "=" not in value:
            for part in ("columns", "tags"):
                out[part].update(_mapping_file(value, part))
            continue
        for pair in filter(None, (p.strip() for p in value.split(","))):
            field, _, column = pair.partition("=")
            if not field.strip() or not column.strip():
                raise click.BadParameter(f"{pair!r} is not FIELD=COLUMN (e.g. response=answer)", param_hint="--columns")
            out["columns"][field.strip()] = column.strip()
    return {k: v for k, v in out.items() if v}


def _mapping_file(value: str, part: str) -> dict[str, str]:
    """`columns` or `tags` of a dataset_info-style JSON file: the object itself, or the one dataset it describes."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"{value!r} is neither FIELD=COLUMN pairs nor a JSON mapping file that exists",
                                 param_hint="--columns")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise click.BadParameter(f"cannot read {path} as JSON: {e}", param_hint="--columns") from e
    if isinstance(doc, dict) and "columns" not in doc and len(doc) == 1 and isinstance(next(iter(doc.values())), dict):
        doc = next(iter(doc.values()))  # dataset_info.json with one dataset
    if not isinstance(doc, dict) or not isinstance(doc.get("columns", {}), dict) \
            or not isinstance(doc.get("tags", {}), dict) or not ({"columns", "tags"} & doc.keys()):
        raise click.BadParameter(f"{path} must be an object with \"columns\" (and optional \"tags\") objects",
                                 param_hint="--columns")
    found = doc.get(part) or {}
    bad = [k for k, v in found.items() if not isinstance(v, str)]
    if bad:
        raise click.BadParameter(f"{path}: {part}.{bad[0]} must be a column name (a string)", param_hint="--columns")
    return dict(found)


@click.command()
@click.option("--model", "-m", required=True, metavar="MODEL",
              help="Base model: a name from `tunectl models list`, a local folder or .gguf file, a model "
                   "artifact sha256, or a hub id (org/name).")
@click.option("--data", "-D", required=True, metavar="DATA",
              help="Training data: a local JSON/JSONL/CSV/Parquet file or datasets folder, or a hub dataset id.")
@click.option("--preset", "-p", metavar="PRESET",
              help="A training preset (`tunectl presets list`); its values replace the defaults, --method "
                   "and --set replace the preset's.")
@click.option("--stage", type=click.Choice(["sft", "dpo", "kto", "orpo", "simpo", "grpo"]),
              help="Training stage: sft (supervised, the default), a preference stage on TRL's losses: dpo "
                   "(chosen/rejected pairs), kto (rows labelled good or bad), orpo or simpo (pairs, no reference "
                   "model); or grpo (online RL on prompt-only rows, scored by --reward functions). Presets per "
                   "stage: dpo-small, kto-small, orpo-small, simpo-small, dpo-7b, kto-7b.")
@click.option("--reward", "rewards", metavar="PLUGIN.OP", multiple=True,
              help="grpo: a reward function, an operation of a loaded plugin (repeatable), e.g. "
                   f"--reward rewards.exact_match (scores against the rows' answer column). Default: "
                   f"{' and '.join(DEFAULT_REWARDS)}. Their parameters: --set reward_params=JSON, e.g. "
                   "'{\"rewards.exact_match\": {\"ignore_case\": true}}'.")
@click.option("--method", metavar="METHOD",
              help="lora (the default), rslora, dora, pissa, olora, loftq, loraplus, adalora, xlora, vera, ia3 "
                   "or full (default: the preset's, else lora).")
@click.option("--set", "sets", metavar="KEY=VALUE", multiple=True,
              help="A lora_trainer.train parameter (repeatable), e.g. --set max_steps=40 --set lr=5e-4. VALUE "
                   "is read as JSON when it parses, else as a string. `tunectl plugins show lora_trainer` "
                   "lists them.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 0.9), metavar="F",
              help="Hold out this share of the rows as validation data (eval loss is then reported).")
@click.option("--format", "data_format", metavar="FORMAT", default="auto", show_default=True,
              help="Data format: auto, alpaca, sharegpt, messages, text, preference or kto. Preference and "
                   "kto data is refused by supervised training (the message names the stage to use).")
@click.option("--columns", "columns", metavar="MAP", multiple=True,
              help="Map your column names: FIELD=COLUMN pairs (e.g. prompt=question,response=answer) or a JSON "
                   "file in LLaMA-Factory's dataset_info style ({\"columns\": {\"prompt\": \"instruction\", "
                   "\"query\": \"input\", \"response\": \"output\", \"messages\": \"conversations\", ...}, \"tags\": "
                   "{\"role_tag\": \"from\", \"user_tag\": \"human\", ...}}). Repeatable; becomes the columns and "
                   "tags parameters of datasets.prepare.")
@click.option("--name", "label", metavar="LABEL", default="", help="A label for the run (shown by `runs list`).")
@detach_option
@json_option
@click.pass_context
def train(ctx: click.Context, model: str, data: str, preset: str | None, stage: str | None,
          rewards: tuple[str, ...], method: str | None, sets: tuple[str, ...], val_fraction: float | None, data_format: str, columns: tuple[str, ...],
          label: str, detach: bool, as_json: bool) -> None:
    """Fine-tune a model on a dataset and follow the run.

    One run of two nodes: `data` (datasets.prepare on DATA) then `train` (lora_trainer.train).

    Prints the run id, then follows it: node states, and a progress bar with loss and tokens/s
    while training (plain progress lines every few seconds when the output is not a terminal).
    On success prints the adapter's sha256. Exits 0 when the run succeeded, 6 otherwise.

    Both steps are cached: training again with the same data and parameters reuses the earlier
    result (`tunectl workflow submit --no-cache` forces a re-run).

    \b
    Example:
      tunectl train --model HuggingFaceTB/SmolLM2-135M-Instruct --data facts.jsonl \\
          --preset demo-facts --set max_steps=20
      tunectl train --model ./smollm2 --data pairs.jsonl --stage dpo --preset dpo-small
      tunectl train --model ./smollm2 --data prompts.jsonl --stage grpo --reward rewards.exact_match
    """
    if rewards and stage != "grpo":
        raise click.BadParameter("only --stage grpo takes reward functions", param_hint="--reward")
    c = client()
    params = {**({"preset": preset} if preset else {}), **({"stage": stage} if stage else {}),
              **({"method": method} if method else {}),
              **({"rewards": list(rewards or DEFAULT_REWARDS)} if stage == "grpo" else {}),
              **pairs(sets, "--set")}
    data_params: dict[str, Any] = {"format": data_format, **column_mapping(columns)}
    if val_fraction is not None:
        data_params["val_fraction"] = val_fraction
    model_value = model_ref(c, model)
    graph = train_graph(model=model_value, data=local_or_given(data), params=params, data_params=data_params,
                        description=f"train {model} on {data}")
    after = F.head(c)
    answer = c.post("/v1/runs", {"graph": graph, "label": label})
    for w in answer.get("warnings") or []:
        click.echo(f"Warning: {w['where']}: {w['message']}", err=True)
    row = answer["run"]
    ctx.exit(submitted(c, row, after=after, detach=detach, as_json=as_json))
