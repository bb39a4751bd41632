"""`tunectl status` (click twin of the light path) and `tunectl events` (read or follow the log)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from tunelog.frontends.cli import render
from tunelog.frontends.cli import status as light
from tunelog.frontends.cli.common import client, json_option, print_json

PAGE = 500
RECONNECT_S = 30.0
"""How long a follower waits for a restarting daemon before giving up."""


@click.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the daemon's status.

    Version, pid, socket, data dir, log position, job and plugin counts. Exits 69 when the
    daemon is not running.
    """
    ctx.exit(light.run(as_json=as_json))


@click.command()
@click.option("--follow", "-f", is_flag=True, help="After the history, keep printing events as they are appended.")
@click.option("--after", type=click.IntRange(min=0), default=0, show_default=True,
              help="Start after this log position.")
@click.option("--stream", metavar="STREAM", help="Only this stream, e.g. `daemon` or `job-<id>`.")
@click.option("--type", "types", metavar="TYPE", multiple=True,
              help="Only events of this type, e.g. job-failed (repeatable, or comma-separated).")
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many events (default: all).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="With --follow: stop after this many seconds (exit 0).")
@json_option
def events(follow: bool, after: int, stream: str | None, types: tuple[str, ...], limit: int | None,
           timeout: float | None, as_json: bool) -> None:
    """Print events from the log, oldest first.

    With --json, print {"events": [...], "head": N}; with --follow --json, one JSON event per line.
    Each event carries its log position: pass the last one to --after to continue later. A
    follower survives a daemon restart (it waits up to 30 s and resumes where it stopped).
    """
    type_list = [t for raw in types for t in raw.split(",") if t]
    if follow:
        _follow(after=after, stream=stream, types=type_list, limit=limit, timeout=timeout, as_json=as_json)
        return
    found, head = _read(after=after, stream=stream, types=type_list, limit=limit)
    if as_json:
        print_json({"events": found, "head": head})
    else:
        for env in found:
            click.echo(render.event_line(env))


def _read(*, after: int, stream: str | None, types: list[str], limit: int | None) -> tuple[list[Any], int]:
    """Page through the log from `after` until the head (or `limit` events)."""
    c = client()
    found: list[Any] = []
    while True:
        want = PAGE if limit is None else min(PAGE, limit - len(found))
        page = c.get("/v1/events", after=after, limit=want, stream=stream, type=types)
        found += page["events"]
        after = page["next_after"]
        if len(page["events"]) < want or (limit is not None and len(found) >= limit):
            return found, page["head"]


def _follow(*, after: int, stream: str | None, types: list[str], limit: int | None, timeout: float | None,
            as_json: bool) -> None:
    until = None if timeout is None else time.monotonic() + timeout
    query = {"after": after, "stream": stream, "type": types}
    shown = 0
    for ev in client().events(query=query, until=until, reconnect_s=RECONNECT_S):
        click.echo(ev.data if as_json else render.event_line(json.loads(ev.data)))
        shown += 1
        if limit is not None and shown >= limit:
            return
