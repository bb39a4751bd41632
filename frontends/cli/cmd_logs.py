"""`tunectl logs [-f] JOB`: a job's log lines and progress, read from (or following) its event stream."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from tunelog.frontends.cli import exits, render
from tunelog.frontends.cli.cmd_jobs import job_path
from tunelog.frontends.cli.common import client
from tunelog.frontends.cli.follow import make_view

TERMINAL = ("job-succeeded", "job-failed", "job-cancelled", "job-interrupted")
PAGE = 500


@click.command()
@click.argument("job")
@click.option("--follow", "-f", is_flag=True,
              help="Follow live until the job ends; exit 0 if it succeeded, 6 otherwise.")
@click.pass_context
def logs(ctx: click.Context, job: str, follow: bool) -> None:
    """Print a job's log lines and progress.

    JOB is a job id or a unique prefix. With --follow, a progress bar is shown on a terminal
    (a progress line every few seconds otherwise); the exit code is 0 if the job succeeded, 6 otherwise.
    """
    c = client()
    row = c.get(job_path(job))["job"]
    if follow:
        ctx.exit(_follow(c, row))
    for env in _history(c, f"job-{row['job_id']}"):
        for line in env["event"].get("lines", []):
            click.echo(line)
    if row["state"] in render.TERMINAL_STATES:
        click.echo(summary(row))
    else:
        click.echo(f"job {row['job_id']}: {row['state']}, progress {render.progress(row)}")


def _history(c: Any, stream: str) -> list[dict[str, Any]]:
    """Every log event of a job's stream, paged."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = c.get("/v1/events", after=after, limit=PAGE, stream=stream, type=["job-log"])
        found += page["events"]
        if len(page["events"]) < PAGE:
            return found
        after = page["next_after"]


def _follow(c: Any, row: dict[str, Any]) -> int:
    """Show events of the job's stream until a terminal one; return the exit code."""
    job = row["job_id"]
    view = make_view(tty=sys.stdout.isatty())
    try:
        for ev in c.events(query={"after": 0, "stream": f"job-{job}"}):
            env = json.loads(ev.data)
            kind, e = env["type"], env["event"]
            if kind == "job-log":
                for line in e.get("lines", []):
                    view.line(line)
            elif kind == "job-progress":
                view.progress(job, "", e.get("step", 0), e.get("total"), e.get("message", ""))
            elif kind == "job-metrics" and e.get("points"):
                view.metrics(job, e["points"][-1])
            elif kind in TERMINAL:
                view.done(job)
                break
    finally:
        view.close()
    final = c.get(job_path(job))["job"]
    ok = final["state"] == "succeeded"
    click.echo(summary(final) if ok else f"Error: {summary(final)}", err=not ok)
    if not ok:
        click.echo("".join(f"{line}\n" for line in render.failure_lines(final)), err=True, nl=False)
    if not ok and final.get("last_lines"):
        click.echo("last lines:\n" + "\n".join(f"  {x}" for x in final["last_lines"]), err=True)
    return exits.OK if ok else exits.JOB_ERROR


def summary(job: dict[str, Any]) -> str:
    """One closing line: how the job ended and what it produced."""
    head = f"job {job['job_id']} {job['state']} after {render.job_duration(job)}"
    if job["state"] == "succeeded":
        return head + (f"; outputs {render.compact(job['outputs'])}" if job.get("outputs") else "")
    return head + (f": {job['error']}" if job.get("error") else "")
