"""`tunectl jobs`: submit, list, show, cancel. Job ids may be given as unique prefixes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from tunelog.events.state import JobState
from tunelog.frontends.cli import render
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.paging import limit_option, more_note, newest

STATES = tuple(s.value for s in JobState)


@click.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """Submit, list, show and cancel jobs.

    A job runs one plugin operation in its own worker process. JOB arguments accept a unique
    prefix of a job id. Without a command: `jobs list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_jobs)


@jobs.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@limit_option
@json_option
def list_jobs(state: str | None, limit: int, as_json: bool) -> None:
    """List the newest jobs, oldest first.

    Columns: id, operation, state, progress, queue time, run time.
    """
    rows, more = newest(client(), "/v1/jobs", "jobs", limit=limit, state=state)
    if note := more_note(len(rows), more, "jobs"):
        click.echo(note, err=True)
    if as_json:
        print_json(rows)
    else:
        click.echo(render.jobs_table(rows))


@jobs.command("show")
@click.argument("job")
@json_option
def show(job: str, as_json: bool) -> None:
    """Show one job.

    State, progress, metrics and outputs; if it failed, its whole error (message, hint, the first
    20 problems of its problem list; --json has them all) and its log's last lines.
    """
    row = client().get(job_path(job))["job"]
    if as_json:
        print_json(row)
    else:
        click.echo(render.job_detail(row))


@jobs.command("cancel")
@click.argument("job")
@click.option("--reason", default="cancelled by user", show_default=True, help="Recorded with the cancellation.")
@json_option
def cancel(job: str, reason: str, as_json: bool) -> None:
    """Cancel a queued or running job.

    A running worker gets SIGTERM, saves a checkpoint and exits.
    """
    row = client().post(job_path(job, "cancel"), {"reason": reason})["job"]
    if as_json:
        print_json(row)
    else:
        click.echo(f"cancel requested for job {row['job_id']} (state: {row['state']})")


@jobs.command("submit")
@click.argument("target", metavar="PLUGIN.OPERATION")
@click.option("--set", "params", metavar="KEY=VALUE", multiple=True,
              help="A parameter (repeatable). VALUE is read as JSON when it parses (2, 0.1, true, [1,2]), "
                   "else as a string.")
@click.option("--input", "inputs", metavar="PORT=VALUE", multiple=True,
              help="An input port value, e.g. an artifact sha256 (repeatable; JSON as for --set).")
@json_option
def submit(target: str, params: tuple[str, ...], inputs: tuple[str, ...], as_json: bool) -> None:
    """Queue a job running PLUGIN.OPERATION.

    Prints the new job's id; follow it with `tunectl logs -f JOB`. Rejected parameters or
    inputs exit with 2, each problem named.
    """
    plugin, dot, operation = target.partition(".")
    if not (plugin and dot and operation):
        raise click.BadParameter(f"expected PLUGIN.OPERATION, got {target!r}", param_hint="PLUGIN.OPERATION")
    body = {"plugin": plugin, "operation": operation,
            "params": pairs(params, "--set"), "inputs": pairs(inputs, "--input")}
    row = client().post("/v1/jobs", body)["job"]
    if as_json:
        print_json(row)
    else:
        click.echo(f"submitted job {row['job_id']} ({row['plugin']}.{row['operation']}, {row['state']})")


def job_path(job: str, *rest: str) -> str:
    """`/v1/jobs/<id or prefix>[/rest]`."""
    return "/".join([f"/v1/jobs/{quote(job, safe='')}", *rest])


def pairs(items: tuple[str, ...], option: str) -> dict[str, Any]:
    """Parse `key=value` items; values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key.strip()] = parse_value(raw)
    return out


def parse_value(raw: str) -> Any:
    """`2` -> 2, `true` -> True, `[1,2]` -> [1, 2], `"x"` -> "x", `hello` -> "hello"."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
