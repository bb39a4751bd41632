"""`tunectl adapters list`, `tunectl models add|list|remove`, `tunectl presets list|show`."""

from __future__ import annotations

from urllib.parse import quote

import click

from tunelog.frontends.cli import render_runs
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.paging import limit_option, more_note, newest
from tunelog.frontends.cli.refs import NotFound, local_or_given


@click.group(invoke_without_command=True)
@click.pass_context
def adapters(ctx: click.Context) -> None:
    """List the adapters runs and merges produced.

    Without a command: `adapters list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_adapters)


@adapters.command("list")
@limit_option
@json_option
def list_adapters(limit: int, as_json: bool) -> None:
    """List the newest adapters, oldest first.

    Columns: sha256 (12 digits; commands accept any unique prefix), source (`run`: trained;
    `merge`: combined from others), run id, merge type, whether the merge is exact, parents
    with their weights, created. --json rows also carry the adapter folder's `path` and its
    `base_model` (`{"ref": ...}`).
    """
    c = client()
    rows, more = newest(c, "/v1/adapters", "adapters", limit=limit)
    if note := more_note(len(rows), more, "adapters"):
        click.echo(note, err=True)
    if any(a.get("run_id") is None and a.get("job_id") for a in rows):  # merges: the run of their job
        rows = [{**a, "run_id": a.get("run_id") or c.get(f"/v1/jobs/{a['job_id']}")["job"].get("run_id")}
                if a.get("run_id") is None and a.get("job_id") else a for a in rows]
    if as_json:
        print_json(rows)
    else:
        click.echo(render_runs.adapters_table(rows))


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """Register base models under short names.

    A registered NAME can be given wherever a model is asked for (`train --model NAME`); runs
    record the reference it stood for. Without a command: `models list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models)


@models.command("add")
@click.argument("name")
@click.argument("ref")
@click.option("--note", default="", help="Free text shown by `models list`.")
@json_option
def add_model(name: str, ref: str, note: str, as_json: bool) -> None:
    """Register REF (a local folder, a .gguf file or a hub id) as NAME.

    A local path is stored as an absolute path. Adding a NAME again replaces its reference.
    """
    row = client().post("/v1/models", {"name": name, "ref": local_or_given(ref), "note": note})["model"]
    if as_json:
        print_json(row)
    else:
        click.echo(f"model {row['name']} -> {row['ref']}")


@models.command("list")
@json_option
def list_models(as_json: bool) -> None:
    """List registered models: name, reference, when added, note."""
    rows = client().get("/v1/models")["models"]
    if as_json:
        print_json(rows)
    else:
        click.echo(render_runs.models_table(rows))


@models.command("remove")
@click.argument("name")
def remove_model(name: str) -> None:
    """Forget the name NAME (the model's files are untouched)."""
    client().post(f"/v1/models/{quote(name, safe='')}/remove")
    click.echo(f"removed model {name}")


@click.group(invoke_without_command=True)
@click.pass_context
def presets(ctx: click.Context) -> None:
    """Show the training presets (each plugin names its own, e.g. lora_trainer/presets.yaml).

    A preset replaces lora_trainer.train's defaults; `--set` on `tunectl train` replaces the
    preset's values. Without a command: `presets list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_presets)


@presets.command("list")
@json_option
def list_presets(as_json: bool) -> None:
    """List presets: name, method, description."""
    rows = client().get("/v1/presets")["presets"]
    if as_json:
        print_json(rows)
    else:
        click.echo(render_runs.presets_table(rows))


@presets.command("show")
@click.argument("name")
@json_option
def show_preset(name: str, as_json: bool) -> None:
    """Show one preset's description and parameters."""
    rows = client().get("/v1/presets")["presets"]
    if name not in rows:
        raise NotFound(f"no preset {name!r}", hint=f"presets: {', '.join(sorted(rows))}")
    if as_json:
        print_json(rows[name])
    else:
        click.echo(render_runs.preset_detail(name, rows[name]))
