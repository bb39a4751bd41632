"""`tunectl plugins`: list, show, reload."""

from __future__ import annotations

from urllib.parse import quote

import click

from tunelog.frontends.cli import exits, render
from tunelog.frontends.cli.common import client, json_option, print_json


@click.group(invoke_without_command=True)
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List, show and reload plugins.

    Without a command: `plugins list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_plugins)


@plugins.command("list")
@json_option
def list_plugins(as_json: bool) -> None:
    """List plugins.

    Columns: name, version, status, source, short code hash, load error.
    """
    rows = client().get("/v1/plugins")["plugins"]
    if as_json:
        print_json(rows)
    else:
        click.echo(render.plugins_table(rows))


@plugins.command("show")
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show one plugin.

    Its operations with their ports and parameters, or why it failed to load.
    """
    row = client().get(f"/v1/plugins/{quote(name, safe='')}")["plugin"]
    if as_json:
        print_json(row)
    else:
        click.echo(render.plugin_detail(row))


@plugins.command("reload")
@click.argument("name", required=False)
@json_option
@click.pass_context
def reload(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Re-check plugin folders now.

    Reloads every plugin, or only NAME, and shows the result.

    Exits with 5 when a plugin shown is left in the `failed` state.
    """
    rows = client().post("/v1/plugins/reload", {"name": name})["plugins"]
    failed = [r["name"] for r in rows if r["status"] == "failed"]
    if as_json:
        print_json(rows)
    else:
        click.echo(render.plugins_table(rows))
    if failed:
        click.echo(f"Error: plugin failed to load: {', '.join(failed)} (see `tunectl plugins show NAME`)", err=True)
        ctx.exit(exits.PLUGIN_ERROR)
