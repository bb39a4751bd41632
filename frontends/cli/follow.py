"""Submitting runs and following them live until they finish, and the views that show what is
followed (a run here, one job in `tunectl logs -f`).

A follower reads the log after the position it saw before its command was sent, so nothing the
command caused is missed: node changes print as lines; each running job gets a progress bar with
its loss and tokens/s (rich, on a terminal) or a plain progress line every few seconds (pipes,
files). The run's final view decides the exit code: 0 when it succeeded, 6 otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import quote

import click

from tunelog.events.jobs import progress_note
from tunelog.frontends.cli import exits, render
from tunelog.frontends.cli.client import Client
from tunelog.frontends.cli.render_runs import outputs_text

RECONNECT_S = 30.0
"""How long a follower waits for a restarting daemon before giving up."""
PLAIN_EVERY_S = 5.0
"""Plain output: at most one progress line per job this often (and one at its last step)."""
TYPES = ["job-queued", "job-started", "job-progress", "job-metrics", "node-queued", "node-cached",
         "node-completed", "node-failed", "node-skipped", "run-resumed", "run-finished"]
SHOWN_METRICS = (("loss", "loss"), ("eval_loss", "eval_loss"), ("rewards/margins", "margin"),
                 ("rewards/accuracies", "acc"), ("kl", "kl"), ("tokens_per_s", "tok/s"))
"""Shown when the point has them: the preference stages add their reward margin, accuracy and KL."""


def run_path(run: str, *rest: str) -> str:
    """`/v1/runs/<id or prefix>[/rest]`."""
    return "/".join([f"/v1/runs/{quote(run, safe='')}", *rest])


def head(c: Client) -> int:
    """The log position now: a follower started after a command reads from here."""
    return int(c.get("/v1/status")["head"])


def start(c: Client, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """POST a run command; returns (the run row, the log position before it was sent)."""
    after = head(c)
    return c.post(path, body)["run"], after


def follow(c: Client, run_id: str, *, after: int, show: bool = True,
           now: dict[str, Any] | None = None) -> dict[str, Any]:
    """Follow the run from log position `after` until it finishes; returns its final view (run + jobs).

    `now` is the run's view read at `after` when attaching to a run already under way: its node
    states and running jobs' progress show at once. With `show` false (`--json`), nothing is printed
    while it runs.
    """
    view = make_view(tty=sys.stdout.isatty()) if show else QuietView()
    nodes: dict[str, str] = {}  # job id -> node id
    if now is not None:
        _attach(view, nodes, now)
    try:
        for ev in c.events(query={"after": after, "type": TYPES}, reconnect_s=RECONNECT_S):
            env = json.loads(ev.data)
            if _apply(view, nodes, run_id, env["type"], env["event"]):
                break
    except KeyboardInterrupt:
        view.close()
        click.echo(f"\nstopped following; run {run_id} goes on in the daemon. Watch it again with "
                   f"`tunectl runs follow {run_id}`, stop it with `tunectl runs cancel {run_id}`.", err=True)
        raise
    view.close()
    return c.get(run_path(run_id))  # type: ignore[no-any-return]


def _attach(view: QuietView, nodes: dict[str, str], now: dict[str, Any]) -> None:
    """Show where each node of a run under way stands, and learn which job runs which node."""
    run, jobs = now["run"], now.get("jobs") or {}
    for node_id in run["order"]:
        node = run["nodes"][node_id]
        job = jobs.get(node.get("job_id") or "") or {}
        if node["state"] in ("queued", "running") and node.get("job_id"):
            nodes[node["job_id"]] = node_id
        if node["state"] == "running":
            view.line(f"{node_id}: running (job {node['job_id']}, {job.get('slot')})")
            if job.get("metrics"):
                view.metrics(node["job_id"], job["metrics"])
            if job.get("step") or job.get("total"):
                view.progress(node["job_id"], node_id, job.get("step") or 0, job.get("total"), job.get("message") or "")
        elif node["state"] == "queued":
            view.line(f"{node_id}: queued as job {node['job_id']}")
        elif node["state"] in ("completed", "cached"):
            view.line(f"{node_id}: {node['state']} {outputs_text(node.get('outputs') or {})}".rstrip())
        elif node["state"] != "pending":
            view.line(f"{node_id}: {node['state']}" + (f": {render.short(node.get('error'), 200)}"
                                                        if node.get("error") else ""))
        else:
            view.line(f"{node_id}: pending")


def _apply(view: QuietView, nodes: dict[str, str], run_id: str, kind: str, e: dict[str, Any]) -> bool:
    """Show one event; True when it ends the run."""
    if kind.startswith(("node-", "run-")) and e.get("run_id") != run_id:
        return False
    job = str(e.get("job_id"))
    if kind == "job-queued":
        if e.get("run_id") == run_id:
            nodes.setdefault(job, "?")
    elif kind == "node-queued":
        nodes[job] = e["node"]
        again = f", attempt {e['attempt']} from job {e['resume_of']}'s checkpoint" if e.get("resume_of") else ""
        view.line(f"{e['node']}: queued as job {job}{again}")
    elif kind == "job-started" and job in nodes:
        view.line(f"{nodes[job]}: running (job {job}, {e.get('slot')})")
    elif kind == "job-progress" and job in nodes:
        view.progress(job, nodes[job], e.get("step", 0), e.get("total"), e.get("message", ""))
    elif kind == "job-metrics" and job in nodes and e.get("points"):
        view.metrics(job, e["points"][-1])
    elif kind == "node-cached":
        view.line(f"{e['node']}: cached (outputs of job {e['source_job']}) {outputs_text(e['outputs'])}".rstrip())
    elif kind == "node-completed":
        view.done(job)
        view.line(f"{e['node']}: completed {outputs_text(e['outputs'])}".rstrip())
    elif kind == "node-failed":
        view.done(job)
        why = "" if e["error"] in ("", e["state"]) else f": {render.short(e['error'], 200)}"
        view.line(f"{e['node']}: {e['state']}{why}")
    elif kind == "node-skipped":
        view.line(f"{e['node']}: skipped ({e['reason']})")
    elif kind == "run-resumed":
        view.line(f"resuming {', '.join(e['nodes'])}")
    elif kind == "run-finished":
        return True
    return False


def finish(view: dict[str, Any]) -> int:
    """Say how the run ended when it did not succeed (stderr); returns the exit code."""
    run = view["run"]
    if run["state"] == "succeeded":
        return exits.OK
    click.echo(f"Error: run {run['run_id']} {run['state']}", err=True)
    for node_id in run["order"]:
        node = run["nodes"][node_id]
        if node["state"] in ("failed", "skipped") or (node["state"] == "cancelled" and node.get("error")):
            click.echo(f"  - {node_id}: {node['error']}", err=True)
        job = view["jobs"].get(node.get("job_id") or "")
        if node["state"] == "failed" and job:
            click.echo("".join(f"    {line}\n" for line in render.failure_lines(job)), err=True, nl=False)
            words = _last_words(job)
            if words:
                click.echo("    last lines:\n" + "".join(f"      {line}\n" for line in words), err=True, nl=False)
    click.echo(f"Hint: `tunectl runs show {run['run_id']}` shows it, `tunectl logs JOB` a job's log; "
               f"`tunectl resume {run['run_id']}` runs the failed nodes again", err=True)
    return exits.JOB_ERROR


def _last_words(job: dict[str, Any]) -> list[str]:
    """A failed job's last log lines without its traceback (`tunectl logs JOB` has them all)."""
    traceback = set(str(job.get("traceback") or "").splitlines())
    lines = [x for x in job.get("last_lines") or []
             if x.strip() and x not in traceback and not x.startswith((" ", "\t", "Traceback ("))]
    return lines[-5:]


def progress_text(node: str, step: int, total: int | None, extra: str) -> str:
    """`train: step 5/10 (50%) loss=1.2` for a run's node; `[progress 5/10 (50%)] ...` for a job
    followed alone (`node` empty)."""
    where = render.progress({"step": step, "total": total})
    head = f"{node}: step {where}" if node else f"[progress {where}]"
    return f"{head} {extra}".rstrip()


def metric_text(point: dict[str, Any]) -> str:
    """`loss=1.234 tok/s=456` from a metrics point (the values tunectl shows while training)."""
    parts = []
    for key, label in SHOWN_METRICS:
        value = point.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label}={value:.0f}" if key == "tokens_per_s" else f"{label}={value:.4g}")
    return " ".join(parts)


class QuietView:
    """Shows nothing (`--json`); the base of the views."""

    def line(self, text: str) -> None:
        """A node changed."""

    def progress(self, job: str, node: str, step: int, total: int | None, message: str) -> None:
        """A job reported progress (`node` is the run's node it runs, empty for a job alone)."""

    def metrics(self, job: str, point: dict[str, Any]) -> None:
        """A job reported metrics."""

    def done(self, job: str | None) -> None:
        """A job ended."""

    def close(self) -> None:
        """Stop drawing."""


class PlainView(QuietView):
    """Lines only: node changes, and a progress line per job at most every PLAIN_EVERY_S seconds
    (plus the job's last one when it ends)."""

    def __init__(self) -> None:
        self._metrics: dict[str, dict[str, Any]] = {}
        self._where: dict[str, tuple[str, int, int | None, str]] = {}
        self._shown: dict[str, tuple[float, str]] = {}

    def line(self, text: str) -> None:
        click.echo(text)

    def metrics(self, job: str, point: dict[str, Any]) -> None:
        self._metrics[job] = {**self._metrics.get(job, {}), **point}
        self._maybe_show(job)

    def progress(self, job: str, node: str, step: int, total: int | None, message: str) -> None:
        self._where[job] = (node, step, total, progress_note(message))
        self._maybe_show(job)

    def done(self, job: str | None) -> None:
        if job in self._where:
            self._maybe_show(job, final=True)

    def _maybe_show(self, job: str, *, final: bool = False) -> None:
        if job not in self._where:
            return
        node, step, total, message = self._where[job]
        if step == total and not final:
            return  # the last line waits for the job's end, when its final metrics are in
        extra = " ".join(p for p in (message, metric_text(self._metrics.get(job, {}))) if p)
        text = progress_text(node, step, total, extra)
        last_at, last_text = self._shown.get(job, (-PLAIN_EVERY_S, ""))
        if text != last_text and (final or time.monotonic() - last_at >= PLAIN_EVERY_S):
            self._shown[job] = (time.monotonic(), text)
            click.echo(text)


class RichView(PlainView):
    """On a terminal: node lines above one rich progress bar per job (rich is imported only here)."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._notes: dict[str, str] = {}

    def line(self, text: str) -> None:
        if self._bar is None:
            click.echo(text)
        else:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def progress(self, job: str, node: str, step: int, total: int | None, message: str) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn())
            self._bar.start()
        if job not in self._tasks:
            self._tasks[job] = self._bar.add_task(node, total=total)
        message = progress_note(message)
        self._where[job] = (node, step, total, message)
        self._notes[job] = " ".join(p for p in (node, message) if p)
        self._bar.update(self._tasks[job], completed=step, total=total, description=self._describe(job))

    def metrics(self, job: str, point: dict[str, Any]) -> None:
        self._metrics[job] = {**self._metrics.get(job, {}), **point}
        if job in self._tasks:
            self._bar.update(self._tasks[job], description=self._describe(job))

    def _describe(self, job: str) -> str:
        return " ".join(p for p in (self._notes.get(job, ""), metric_text(self._metrics.get(job, {}))) if p)

    def done(self, job: str | None) -> None:
        """Replace the job's bar by one line that keeps its last step and metrics on screen."""
        if job in self._tasks:
            self._bar.remove_task(self._tasks.pop(job))
            self._bar.refresh()
            node, step, total, _ = self._where[job]
            self.line(progress_text(node, step, total, metric_text(self._metrics.get(job, {}))))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def make_view(*, tty: bool) -> PlainView:
    """A rich view on a terminal, plain lines otherwise."""
    return RichView() if tty else PlainView()
