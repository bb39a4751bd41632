"""`tunectl runs` (list, show, follow, cancel) and `tunectl resume RUN`."""

from __future__ import annotations

from typing import Any

import click

from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli import render_runs
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.paging import limit_option, more_note, newest
from tunelog.frontends.data_counts import data_counts

detach_option = click.option("--detach", "-d", is_flag=True,
                             help="Print the run id and return at once; the run goes on in the daemon.")


@click.group(invoke_without_command=True)
@click.pass_context
def runs(ctx: click.Context) -> None:
    """List, show, follow, cancel, compare and fork runs.

    A run is one execution of a workflow graph (`tunectl train`, `merge`, `generate`, `replay`
    and `workflow submit` start one). RUN arguments accept a unique prefix of a run id. Without a
    command: `runs list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_runs)


@runs.command("list")
@limit_option
@json_option
def list_runs(limit: int, as_json: bool) -> None:
    """List the newest runs, oldest first.

    Columns: run id, state, nodes done of all, submitted, run time, label (else workflow or operations).
    """
    rows, more = newest(client(), "/v1/runs", "runs", limit=limit)
    if note := more_note(len(rows), more, "runs"):
        click.echo(note, err=True)
    if as_json:
        print_json(rows)
    else:
        click.echo(render_runs.runs_table(rows))


@runs.command("show")
@click.argument("run")
@json_option
def show(run: str, as_json: bool) -> None:
    """Show one run.

    Each node with its state (`running` while its job runs), jobs, outputs (artifact hashes cut to
    12 digits) and error, and a failed job's whole error (first 20 problems); the last
    metrics of each node's job; for training nodes, what they trained on (base model and weight
    hash, dataset hash, method, seed, device, library versions). --json prints {"run", "jobs"}.
    """
    view = client().get(F.run_path(run))
    if as_json:
        print_json(view)
    else:
        click.echo(render_runs.run_detail(view))


@runs.command("follow")
@click.argument("run")
@json_option
@click.pass_context
def follow_run(ctx: click.Context, run: str, as_json: bool) -> None:
    """Watch a run until it finishes.

    First where each node stands (and the progress of running jobs), then node changes and
    progress with loss and tokens/s as they happen. Exits 0 if the run succeeded, 6 otherwise (at
    once for a run that already ended); a failed job's whole error is printed (first 20 problems;
    --json has them all). --json prints {"run", "jobs"}.
    """
    c = client()
    after = F.head(c)
    view = c.get(F.run_path(run))
    if view["run"]["state"] == "running":
        if not as_json:
            click.echo(f"following run {view['run']['run_id']} ({render_runs.run_title(view['run'])})")
        view = F.follow(c, view["run"]["run_id"], after=after, show=not as_json, now=view)
    ctx.exit(report(view, as_json=as_json))


@runs.command("cancel")
@click.argument("run")
@click.option("--reason", default="cancelled by user", show_default=True, help="Recorded with the cancellation.")
@json_option
def cancel(run: str, reason: str, as_json: bool) -> None:
    """Cancel a running run.

    Nodes not started yet are skipped; running jobs get SIGTERM and save a checkpoint, so
    `tunectl resume RUN` can continue them later.
    """
    row = client().post(F.run_path(run, "cancel"), {"reason": reason})["run"]
    if as_json:
        print_json(row)
    else:
        click.echo(f"cancel requested for run {row['run_id']}")


@click.command()
@click.argument("run")
@detach_option
@json_option
@click.pass_context
def resume(ctx: click.Context, run: str, detach: bool, as_json: bool) -> None:
    """Run a finished run's failed and skipped nodes again.

    A node whose job left a checkpoint continues from it (exactly: optimizer, scheduler, RNG and
    data order are in the checkpoint). Then follows the run like `tunectl train`; exits 0 if it
    succeeded, 6 otherwise.
    """
    c = client()
    row, after = F.start(c, F.run_path(run, "resume"), {})
    ctx.exit(submitted(c, row, after=after, detach=detach, as_json=as_json))


def submitted(c: Any, row: dict[str, Any], *, after: int, detach: bool, as_json: bool) -> int:
    """After a run command: print the run id, then (unless detached) follow it and report; the exit code.

    With --json both ways print the run's view, {"run", "jobs"}: at once when detached, at the end
    otherwise."""
    if detach:
        if as_json:
            print_json(c.get(F.run_path(row["run_id"])))  # {"run", "jobs"}, as when it is followed
        else:
            click.echo(f"run {row['run_id']} started; watch it with `tunectl runs follow {row['run_id']}`")
        return 0
    if not as_json:
        click.echo(f"run {row['run_id']}")
    return report(F.follow(c, row["run_id"], after=after, show=not as_json), as_json=as_json)


def report(view: dict[str, Any], *, as_json: bool) -> int:
    """The closing lines of a followed run: state, time, artifacts produced; the exit code."""
    run = view["run"]
    if as_json:
        print_json(view)
        return F.finish(view)
    if run["state"] == "succeeded":
        click.echo(f"run {run['run_id']} succeeded in {render_runs.run_duration(run)}")
        for node_id in run["order"]:
            for port, value in (run["nodes"][node_id].get("outputs") or {}).items():
                if isinstance(value, str) and len(value) == 64 and port in ("adapter", "model", "dataset"):
                    click.echo(f"{port} {value}  ({node_id})")
        for line in data_counts(run["nodes"][n].get("outputs") or {} for n in run["order"]):
            click.echo(f"data: {line}")
        click.echo(f"inspect: tunectl runs show {run['run_id']}")
    return F.finish(view)
