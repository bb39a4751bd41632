"""`tunectl ui`: the web UI's address (with its token), opened in a browser."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Any

import click

from tunelog.frontends.cli import exits
from tunelog.frontends.cli.common import client

UI_FILE = "ui.json"  # as written by tunelog.frontends.web.server
TOKEN_FILE = "ui-token"  # as written by tunelog.frontends.web.security


def ui_address(status: dict[str, Any]) -> str | None:
    """`http://127.0.0.1:PORT/?token=...` of the daemon that answered `status`, or None when it
    serves no UI (TUNELOG_UI_PORT=off, or its port could not be bound)."""
    home = Path(status["data_dir"])
    try:
        info = json.loads((home / UI_FILE).read_text())
        token = (home / TOKEN_FILE).read_text().strip()
    except (OSError, ValueError):
        return None
    if info.get("pid") != status.get("pid") or not isinstance(info.get("port"), int):
        return None  # left behind by an earlier daemon
    return f"http://127.0.0.1:{info['port']}/?token={token}"


@click.command()
@click.option("--no-open", is_flag=True, help="Print the address; do not open a browser.")
@click.option("--print-url", is_flag=True, help="Print only the address, for scripts (implies --no-open).")
@click.option("--rotate-token", is_flag=True,
              help="Revoke the browser token: write a new one; the old address and every browser cookie "
                   "holding the old token are refused from then on (open pages keep their connection until "
                   "reloaded). Prints the new address.")
@click.pass_context
def ui(ctx: click.Context, no_open: bool, print_url: bool, rotate_token: bool) -> None:
    """Open the web UI: runs with live charts, run details, adapters and merges, playground,
    plugins, the event log and the workflow editor.

    The daemon serves it on 127.0.0.1 (TUNELOG_UI_PORT: a port, default 8477; 0 for any free
    port; `off` for none). The address carries a secret token kept in the data dir (owner-only):
    anyone who has it can act as you, so do not share it. The browser trades it for a cookie.
    """
    status = client().get("/v1/status")
    if rotate_token:
        from tunelog.frontends.web.security import rotate_token as rotate

        rotate(Path(status["data_dir"]))
        no_open = True
    url = ui_address(status)
    if url is None:
        ctx.exit(exits.fail([f"Error: the daemon serves no web UI (pid {status.get('pid')}).",
                             "Hint: it is off when TUNELOG_UI_PORT=off, or when the port was taken; "
                             f"see {status.get('log_file', 'daemon.log')}"], exits.FAILURE))
    if print_url:
        click.echo(url)
        return
    if rotate_token:
        click.echo("The browser token was replaced: the old address and cookies are refused now.")
    click.echo(f"tunelog web UI: {url}")
    if not no_open and not webbrowser.open(url):
        click.echo("(no browser could be started here: open the address above)")
