"""Reproducing runs: `tunectl replay`, and `runs verify|diff|lineage|fork` (added to the `runs` group)."""

from __future__ import annotations

from typing import Any

import click

from tunelog.frontends.cli import exits, render_reproduce
from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli.cmd_jobs import pairs
from tunelog.frontends.cli.cmd_runs import detach_option, submitted
from tunelog.frontends.cli.common import client, json_option, print_json

REPRODUCED = ("bit-identical", "within-tolerance")

tolerance_options = [
    click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance for loss curves and numbers "
                                                              "(default 1e-3)."),
    click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default 1e-8)."),
]


def with_tolerance(fn: Any) -> Any:
    for option in reversed(tolerance_options):
        fn = option(fn)
    return fn


@click.command()
@click.argument("run")
@click.option("--verify", "check", is_flag=True,
              help="When the replay ends, compare it with RUN and print the report; exit 0 if it reproduced "
                   "(bit-identical or within tolerance), 1 if it differs.")
@with_tolerance
@json_option
@click.pass_context
def replay(ctx: click.Context, run: str, check: bool, rtol: float | None, atol: float | None, as_json: bool) -> None:
    """Run RUN again from its record, as a new run linked to it.

    The replay uses the recorded graph (parameters as resolved then, seeds included) and the
    plugin code RUN ran, and takes nothing from the cache. Follows it like `tunectl train`.

    With --verify, then compares the two runs node by node: artifact hashes, outputs, loss
    curves (within --rtol/--atol), and lists every recorded input that drifted (library
    versions, device, plugin code, data). On CPU with deterministic settings a training node
    should be bit-identical. Without --verify, exits 0 if the replay succeeded, 6 otherwise.
    """
    c = client()
    row, after = F.start(c, F.run_path(run, "replay"), {"verify": check})
    if not check:
        ctx.exit(submitted(c, row, after=after, detach=False, as_json=as_json))
    if not as_json:
        click.echo(f"run {row['run_id']} (replay of {row['replay_of']})")
    view = F.follow(c, row["run_id"], after=after, show=not as_json)
    if not as_json and view["run"]["state"] != "succeeded":
        F.finish(view)
    ctx.exit(_verify(c, row["run_id"], against=None, rtol=rtol, atol=atol, as_json=as_json))


def _verify(c: Any, run_id: str, *, against: str | None, rtol: float | None, atol: float | None,
            as_json: bool) -> int:
    result = c.get(F.run_path(run_id, "verify"), against=against, rtol=rtol, atol=atol)["verify"]
    if as_json:
        print_json(result)
    else:
        click.echo(render_reproduce.verify_report(result))
    return exits.OK if result["verdict"] in REPRODUCED else exits.FAILURE


@click.command("verify")
@click.argument("run")
@click.option("--against", metavar="RUN", help="Compare with this run (default: the run RUN replays).")
@with_tolerance
@json_option
@click.pass_context
def verify(ctx: click.Context, run: str, against: str | None, rtol: float | None, atol: float | None,
           as_json: bool) -> None:
    """Check whether a replay reproduces its original.

    Compares RUN with the run it replays (or with --against RUN). Per node: states, artifact hashes, outputs, loss curves within the tolerance, and the
    recorded inputs that drifted. Exits 0 when bit-identical or within tolerance, 1 when it
    differs.
    """
    ctx.exit(_verify(client(), run, against=against, rtol=rtol, atol=atol, as_json=as_json))


@click.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Show what differs between two runs.

    Inputs per node (graph parameters and inputs, values arriving over edges, plugin code,
    training provenance) and outcomes (state, outputs). Values are shown `A -> B`.
    """
    result = client().get("/v1/runs/diff", a=a, b=b)["diff"]
    if as_json:
        print_json(result)
    else:
        click.echo(render_reproduce.diff_report(result))


@click.command("lineage")
@click.argument("run")
@json_option
def lineage(run: str, as_json: bool) -> None:
    """Show where RUN comes from and what came of it, as a tree.

    From the oldest ancestor down: replays and forks, resumes, job attempts that continued
    from checkpoints, the adapters each run produced and the merges that used them. RUN is
    marked with `*`.
    """
    tree = client().get(F.run_path(run, "lineage"))["lineage"]
    if as_json:
        print_json(tree)
    else:
        click.echo(render_reproduce.lineage_tree(tree))


@click.command("fork")
@click.argument("run")
@click.option("--node", required=True, metavar="NODE", help="The node whose parameters change (e.g. train).")
@click.option("--from-step", "step", type=click.IntRange(min=0), metavar="N",
              help="Continue from NODE's checkpoint at step N (default: its latest checkpoint, if any).")
@click.option("--set", "sets", metavar="KEY=VALUE", multiple=True,
              help="A parameter of NODE to change (repeatable); VALUE is JSON when it parses, else a string.")
@detach_option
@json_option
@click.pass_context
def fork(ctx: click.Context, run: str, node: str, step: int | None, sets: tuple[str, ...], detach: bool,
         as_json: bool) -> None:
    """Re-run a run with one node's parameters changed, from one of its checkpoints.

    RUN's graph runs again with NODE's parameters updated by --set, NODE continuing from its
    checkpoint at --from-step. The new run is recorded as forked from RUN (node, step, job, checkpoint) and runs on the
    plugin code RUN ran. Follows it like `tunectl train`: exits 0 if it succeeded, 6 otherwise.

    \b
    Example: tunectl runs fork RUN --node train --from-step 20 --set lr=1e-4
    """
    c = client()
    row, after = F.start(c, F.run_path(run, "fork"), {"node": node, "step": step, "set": pairs(sets, "--set")})
    ctx.exit(submitted(c, row, after=after, detach=detach, as_json=as_json))

