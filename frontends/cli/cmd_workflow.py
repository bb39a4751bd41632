"""`tunectl workflow`: validate, submit, list, show and export workflow graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli import render_runs
from tunelog.frontends.cli.cmd_runs import detach_option, submitted
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.refs import read_graph_file


@click.group(invoke_without_command=True)
@click.pass_context
def workflow(ctx: click.Context) -> None:
    """Validate, run, save and export workflow graphs.

    A workflow is a JSON or YAML file: `nodes` maps a node id to {op: plugin.operation, params,
    inputs}; an input is a literal (a path, hub id or artifact sha256) or a reference
    {node: ID, output: PORT} to another node's output. Relative paths among the inputs
    (./x, ../x, ~/x) are read against the file's folder. Saved workflows are versioned (NAME@V).
    Without a command: `workflow list`.

    \b
    Example file:
      description: train on my facts
      nodes:
        data:  {op: datasets.prepare, inputs: {source: ./facts.jsonl}}
        train: {op: lora_trainer.train, params: {preset: demo-facts},
                inputs: {model: HuggingFaceTB/SmolLM2-135M-Instruct,
                         dataset: {node: data, output: dataset}}}
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_workflows)


@workflow.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
def validate(file: str, as_json: bool) -> None:
    """Check a workflow file against the loaded plugins without running it.

    Prints the node order when it is valid. Otherwise prints every problem, one per line
    (`  - nodes.NODE.inputs.PORT: message`), and exits 2.
    """
    result = client().ask("/v1/workflows/validate", {"graph": read_graph_file(file)})
    if as_json:
        print_json(result)
    else:
        click.echo(f"ok: {len(result['order'])} node(s), order {' -> '.join(result['order'])}")


@workflow.command("submit")
@click.argument("source", metavar="FILE|NAME[@V]")
@click.option("--name", "save_as", metavar="NAME", help="Save the file as workflow NAME (a new version) first.")
@click.option("--no-cache", is_flag=True, help="Run every node even when its cache key has a result.")
@click.option("--force", "force", multiple=True, metavar="NODE", help="Run this node even if cached (repeatable).")
@click.option("--label", default="", help="A label for the run (default: the workflow's description).")
@detach_option
@json_option
@click.pass_context
def submit(ctx: click.Context, source: str, save_as: str | None, no_cache: bool, force: tuple[str, ...],
           label: str, detach: bool, as_json: bool) -> None:
    """Run a workflow file, or a saved workflow NAME (latest version) or NAME@V.

    With --name, the file is first saved as a new version of workflow NAME, and the run records
    NAME@V. Follows the run like `tunectl train`: exits 0 if it succeeded, 6 otherwise.
    """
    c = client()
    body: dict[str, Any] = {"no_cache": no_cache, "force": list(force), "label": label}
    if Path(source).is_file():
        graph = read_graph_file(source)
        if save_as:
            saved = c.post("/v1/workflows", {"name": save_as, "graph": graph})["workflow"]
            if not as_json:
                click.echo(f"saved workflow {saved['name']}@{saved['version']}")
            body["workflow"] = f"{saved['name']}@{saved['version']}"
        else:
            body["graph"] = graph
    elif save_as:
        raise click.UsageError(f"--name saves a file, and {source!r} is not a file")
    else:
        body["workflow"] = source
    row, after = F.start(c, "/v1/runs", body)
    ctx.exit(submitted(c, row, after=after, detach=detach, as_json=as_json))


@workflow.command("list")
@json_option
def list_workflows(as_json: bool) -> None:
    """List saved workflows: name, latest version, node count, saved, description."""
    rows = client().get("/v1/workflows")["workflows"]
    if as_json:
        print_json(rows)
    else:
        click.echo(render_runs.workflows_table(rows))


def _fetch(name: str, version: int | None) -> dict[str, Any]:
    return client().get(f"/v1/workflows/{quote(name, safe='')}", version=version)["workflow"]  # type: ignore[no-any-return]


@workflow.command("show")
@click.argument("name")
@click.option("--version", "-v", type=click.IntRange(min=1), help="This version (default: the latest).")
@json_option
def show(name: str, version: int | None, as_json: bool) -> None:
    """Show a saved workflow's graph (YAML; --json for JSON)."""
    wf = _fetch(name, version)
    if as_json:
        print_json(wf)
    else:
        click.echo(f"# workflow {wf['name']}@{wf['version']}\n" + _yaml(wf["graph"]).rstrip())


@workflow.command("export")
@click.argument("name")
@click.option("--version", "-v", type=click.IntRange(min=1), help="This version (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), help="Default: from -o's suffix, else yaml.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to this file, not stdout.")
def export(name: str, version: int | None, fmt: str | None, output: str | None) -> None:
    """Write a saved workflow's graph as a file that `workflow submit` and `validate` read back."""
    graph = _fetch(name, version)["graph"]
    fmt = fmt or ("json" if output and output.endswith(".json") else "yaml")
    text = json.dumps(graph, indent=2) + "\n" if fmt == "json" else _yaml(graph)
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _yaml(obj: Any) -> str:
    import yaml

    return str(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=100))
