"""`tunectl state --at POSITION`: every projection as it was after an earlier event (time travel)."""

from __future__ import annotations

import click

from tunelog.frontends.cli import render_reproduce
from tunelog.frontends.cli.common import client, json_option, print_json


@click.command()
@click.option("--at", "position", required=True, type=click.IntRange(min=0), metavar="POSITION",
              help="A log position (`tunectl events` shows them); 0 is the empty log.")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Only this table (repeatable): runs, jobs, plugins, adapters, models, workflows, cache, daemon.")
@json_option
def state(position: int, tables: tuple[str, ...], as_json: bool) -> None:
    """Show what the daemon knew after event POSITION.

    The projections (runs, jobs, plugins, adapters, models, workflows, ...) are rebuilt from the
    log's first POSITION events in a throwaway database; the live state is not touched. --json
    prints {"at", "head", "time", "tables": {table: [rows]}}.
    """
    result = client().get("/v1/state", at=position, tables=",".join(tables) or None)
    if as_json:
        print_json(result)
    else:
        click.echo(render_reproduce.state_report(result))
