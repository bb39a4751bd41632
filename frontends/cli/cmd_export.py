"""`tunectl export`: an adapter (merged into its base) or a model, as a Hugging Face folder, GGUF,
GGUF LoRA or an Ollama folder, through the export plugin."""

from __future__ import annotations

from typing import Any

import click

from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli.cmd_runs import detach_option, report
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.refs import model_ref, resolve_adapter

FORMATS = ("hf", "gguf", "gguf-lora", "ollama")
QUANTS = ("f32", "f16", "bf16", "q8_0", "q2_k", "q3_k_m", "q4_0", "q4_k_s", "q4_k_m", "q5_0", "q5_k_s", "q5_k_m",
          "q6_k")
"""export.gguf's `quant` choices; gguf-lora takes the first four."""
_OPS = {"hf": "export.hf", "gguf": "export.gguf", "gguf-lora": "export.gguf_lora", "ollama": "export.ollama"}
_OUT = {"hf": "model", "gguf": "gguf", "gguf-lora": "gguf", "ollama": "ollama"}


def export_graph(target: str, *, fmt: str, base: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The run graph: with a base, the adapter `target` is merged first (adapter_merge.merge_and_unload)
    except for gguf-lora, which converts the adapter alone; without one, `target` is the model."""
    node: dict[str, Any] = {"op": _OPS[fmt], "params": params}
    nodes: dict[str, Any] = {}
    if fmt == "gguf-lora":
        node["inputs"] = {"model": base, "adapter": target}
    elif base is not None:
        nodes["merge"] = {"op": "adapter_merge.merge_and_unload", "inputs": {"model": base, "adapter": target}}
        node["inputs"] = {"model": {"node": "merge", "output": "model"}}
    else:
        node["inputs"] = {"model": target}
    nodes["export"] = node
    what = f"export {target[:12] if base else target} as {fmt}"
    return {"description": what + (f" ({params['quant']})" if "quant" in params else ""), "nodes": nodes}


@click.command()
@click.argument("target", metavar="ADAPTER|MODEL")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to write (see above).")
@click.option("--quant", type=click.Choice(QUANTS), metavar="TYPE",
              help="GGUF weight type: f32, f16, bf16, q8_0 (converter only) or a k-quant such as q4_k_m "
                   "(needs llama-quantize). Default: f16 for gguf and gguf-lora, q8_0 for ollama.")
@click.option("--model", "-m", "base", metavar="BASE",
              help="The base model ADAPTER was trained on; without it the argument is a model to export.")
@click.option("--name", default=None, metavar="NAME", help="Model name for `ollama create` (ollama only).")
@click.option("--system", default=None, metavar="TEXT",
              help="System prompt for the Modelfile (ollama only; default: the chat template's own).")
@detach_option
@json_option
@click.pass_context
def export(ctx: click.Context, target: str, fmt: str, quant: str | None, base: str | None, name: str | None,
           system: str | None, detach: bool, as_json: bool) -> None:
    """Export an adapter or a model where people run models.

    With --model BASE, ADAPTER (a unique prefix of its sha256, `tunectl adapters list`) is first
    merged into BASE (adapter_merge.merge_and_unload, exact); without it, MODEL (a registered
    name, folder, artifact or hub id) is exported as it is.

    \b
    Formats:
      hf         a Hugging Face folder (safetensors, tokenizer, chat template, generation
                 config) that plain transformers loads
      gguf       one GGUF file, written by llama.cpp's own convert_hf_to_gguf.py
      gguf-lora  the adapter alone as a GGUF LoRA (needs --model), for `llama-cli --lora` or
                 an Ollama Modelfile `ADAPTER` line on the base model's GGUF
      ollama     a folder with the GGUF and a Modelfile derived from the chat template
                 (ChatML, Llama 3, Mistral, Gemma, Phi-3), plus the `ollama create` command

    GGUF formats need llama.cpp's converters, from the pinned llama-cpp-python 0.3.36 sdist:
    `python -m tunelog.plugins.export.tools install` (or `make llama-cpp-tools`). k-quants also
    need llama-quantize: add `--quantize` (or `make llama-quantize`; ~7 min on 2 cores).
    Exports are nodes of a run: cached, and their output's sha256 is recorded.
    """
    if fmt == "gguf-lora" and base is None:
        raise click.UsageError("--format gguf-lora converts an adapter alone: give its base with --model")
    if fmt == "hf" and quant is not None:
        raise click.UsageError("--quant applies to the GGUF formats, not to hf")
    if fmt == "gguf-lora" and quant not in (None, "f32", "f16", "bf16", "q8_0"):
        raise click.UsageError("--format gguf-lora takes --quant f32, f16, bf16 or q8_0")
    if (name is not None or system is not None) and fmt != "ollama":
        raise click.UsageError("--name and --system apply to --format ollama only")
    c = client()
    params: dict[str, Any] = {}
    if fmt in ("gguf", "ollama") and quant is not None:
        params["quant"] = quant
    if fmt == "gguf-lora" and quant is not None:
        params["outtype"] = quant
    params.update({k: v for k, v in (("name", name), ("system", system)) if v is not None})
    if base is not None:
        target, base = resolve_adapter(c, target), model_ref(c, base)
    else:
        target = model_ref(c, target)
    row, after = F.start(c, "/v1/runs", {"graph": export_graph(target, fmt=fmt, base=base, params=params)})
    if detach or not as_json:
        click.echo(f"run {row['run_id']} started" if detach else f"run {row['run_id']}")
    if detach:
        ctx.exit(0)
    view = F.follow(c, row["run_id"], after=after, show=not as_json)
    if view["run"]["state"] != "succeeded":
        ctx.exit(report(view, as_json=as_json))
    out = view["run"]["nodes"]["export"]["outputs"]
    if as_json:
        print_json({"run": row["run_id"], "artifact": out[_OUT[fmt]], **out["report"]})
        return
    click.echo(f"exported {fmt} {out[_OUT[fmt]]}")
    for file in out["report"]["files"]:
        click.echo(f"  {out['report']['path']}/{file}")
    if fmt == "ollama":
        click.echo(f"to use it in Ollama: {out['report']['command']}")
    elif fmt == "gguf-lora":
        click.echo("apply it on the base model's GGUF: llama-cli -m BASE.gguf --lora "
                   f"{out['report']['path']}/{out['report']['files'][0]}  (Ollama: ADAPTER line)")
    click.echo(f"inspect: tunectl runs show {row['run_id']}")
