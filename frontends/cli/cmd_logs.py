"""`tunectl logs [-f] JOB`: a job's log lines and progress, read from (or following) its event stream."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from tunelog.frontends.cli import exits, render
from tunelog.frontends.cli.cmd_jobs import job_path
from tunelog.frontends.cli.common import client

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
    when the job reports a total; the exit code is 0 if the job succeeded, 6 otherwise.
    """
    c = client()
    row = c.get(job_path(job))["job"]
    view = make_view(tty=sys.stdout.isatty())
    try:
        if follow:
            ctx.exit(_follow(c, row, view))
        for env in _history(c, f"job-{row['job_id']}"):
            _show(view, env["type"], env["event"], progress=False)
    finally:
        view.close()
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


def _follow(c: Any, row: dict[str, Any], view: PlainView) -> int:
    """Show events of the job's stream until a terminal one; return the exit code."""
    for ev in c.events(query={"after": 0, "stream": f"job-{row['job_id']}"}):
        env = json.loads(ev.data)
        _show(view, env["type"], env["event"], progress=True)
        if env["type"] in TERMINAL:
            view.close()
            final = c.get(job_path(row["job_id"]))["job"]
            ok = final["state"] == "succeeded"
            click.echo(summary(final) if ok else f"Error: {summary(final)}", err=not ok)
            if not ok:
                click.echo("".join(f"{line}\n" for line in render.failure_lines(final)), err=True, nl=False)
            if not ok and final.get("last_lines"):
                click.echo("last lines:\n" + "\n".join(f"  {x}" for x in final["last_lines"]), err=True)
            return exits.OK if ok else exits.JOB_ERROR
    return exits.FAILURE  # unreachable: the stream only ends by raising


def _show(view: PlainView, kind: str, event: dict[str, Any], *, progress: bool) -> None:
    if kind == "job-log":
        for line in event.get("lines", []):
            view.line(line)
    elif kind == "job-progress" and progress:
        view.progress(event.get("step", 0), event.get("total"), event.get("message", ""))
    elif kind == "job-metrics" and progress and event.get("points"):
        view.metrics(event["points"][-1])


def summary(job: dict[str, Any]) -> str:
    """One closing line: how the job ended and what it produced."""
    head = f"job {job['job_id']} {job['state']} after {render.job_duration(job)}"
    if job["state"] == "succeeded":
        return head + (f"; outputs {render.compact(job['outputs'])}" if job.get("outputs") else "")
    return head + (f": {job['error']}" if job.get("error") else "")


class PlainView:
    """Log lines as they come; a progress line whenever the step changes (pipes, files)."""

    def __init__(self) -> None:
        self._step: int | None = None

    def line(self, text: str) -> None:
        click.echo(text)

    def progress(self, step: int, total: int | None, message: str) -> None:
        if step != self._step:
            self._step = step
            done = render.progress({"step": step, "total": total})
            click.echo(f"[progress {done}]" + (f" {message}" if message else ""))

    def metrics(self, point: dict[str, Any]) -> None:
        """Plain output leaves metrics to `tunectl jobs show`."""

    def close(self) -> None:
        """Nothing to tear down."""


class RichView(PlainView):
    """On a terminal: log lines above a rich progress bar (rich is imported only here)."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: Any = None
        self._task: Any = None
        self._note = ""

    def line(self, text: str) -> None:
        if self._bar is None:
            click.echo(text)
        else:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def progress(self, step: int, total: int | None, message: str) -> None:
        if total is None and self._bar is None:
            return super().progress(step, total, message)
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn())
            self._bar.start()
            self._task = self._bar.add_task("", total=total)
        self._note = message or self._note
        self._bar.update(self._task, completed=step, total=total, description=self._note)

    def metrics(self, point: dict[str, Any]) -> None:
        if self._bar is not None:
            values = " ".join(f"{k}={v:.4g}" for k, v in point.items() if k != "step" and isinstance(v, float))
            self._bar.update(self._task, description=" ".join(p for p in (self._note, values) if p))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def make_view(*, tty: bool) -> PlainView:
    """A rich view on a terminal, plain text otherwise."""
    return RichView() if tty else PlainView()
