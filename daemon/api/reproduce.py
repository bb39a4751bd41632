"""Reproducing runs: replay, verify, diff, lineage and fork.

Listed before `runs.routes` in the app: `/v1/runs/diff` must not be taken for a run id.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.commands import command
from tunelog.daemon.api.errors import read_body
from tunelog.daemon.runs import reproduce
from tunelog.daemon.runs.compare import Tolerance
from tunelog.daemon.runs.facts import lineage_rows, run_facts
from tunelog.daemon.runs.lineage import lineage
from tunelog.daemon.runs.verify import diff, verify
from tunelog.daemon.services import Services
from tunelog.events.errors import JobError, ValidationError
from tunelog.events.run_state import RunRow

_json = msgspec.json.Encoder()


def json(body: Any, status: int = 200) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json")


class ReplayRun(msgspec.Struct, forbid_unknown_fields=True):
    """Run a run again from its record; `verify` asks for the verify report's address in the answer."""

    verify: bool = False
    command_id: str | None = None


class ForkRun(msgspec.Struct, forbid_unknown_fields=True):
    """Run a run's graph again with one node's parameters changed, from one of its checkpoints."""

    node: str
    step: int | None = None
    set: dict[str, Any] = {}
    command_id: str | None = None


async def replay_run(request: Request) -> Response:
    """POST /v1/runs/{run_id}/replay {verify?, command_id?} -> 201 {run, verify?}: a new run of the
    recorded graph on the recorded plugin code, nothing taken from the cache, linked by `replay_of`."""
    s: Services = request.app.state.services
    cmd = await read_body(request, ReplayRun)
    row = reproduce.replay(s, request.path_params["run_id"], command_id=cmd.command_id)
    body: dict[str, Any] = {"run": row}
    if cmd.verify:
        body["verify"] = f"/v1/runs/{row.run_id}/verify"
    return json(body, 201)


async def fork_run(request: Request) -> Response:
    """POST /v1/runs/{run_id}/fork {node, step?, set, command_id?} -> 201 {run}: the same graph with
    `node`'s parameters updated by `set`, `forked_from` naming the run, node, step, job and checkpoint."""
    s: Services = request.app.state.services
    cmd = await read_body(request, ForkRun)
    row = reproduce.fork(s, request.path_params["run_id"], node=cmd.node, step=cmd.step, changes=cmd.set,
                         command_id=cmd.command_id)
    return json({"run": row}, 201)


def _finished(row: RunRow) -> RunRow:
    if row.state == "running":
        raise JobError(f"run {row.run_id} is still running; it can be compared once it has finished",
                       hint=f"wait for it: tunectl runs show {row.run_id}")
    return row


def _tolerance(request: Request) -> Tolerance:
    values, problems = {}, []
    for name in ("rtol", "atol"):
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            values[name] = float(raw)
        except ValueError:
            problems.append((name, f"must be a number, got {raw!r}"))
            continue
        if not values[name] >= 0:
            problems.append((name, "must be zero or more"))
    if problems:
        raise ValidationError.collect("invalid tolerance", problems)
    return Tolerance(**values)


async def verify_run(request: Request) -> Response:
    """GET /v1/runs/{run_id}/verify[?against=RUN&rtol=&atol=] -> {verify: report}: whether the run
    reproduces its `replay_of` (or `against`), per node: outputs, loss curves, drifted inputs, verdict."""
    s: Services = request.app.state.services
    run = s.runs.find(request.path_params["run_id"])
    against = request.query_params.get("against") or run.replay_of
    if not against:
        raise ValidationError.collect(f"run {run.run_id} is not a replay", [
            ("against", "give the run to compare with: ?against=RUN")])
    tol = _tolerance(request)
    baseline = _finished(s.runs.find(against))
    report = verify(run_facts(s.store, baseline), run_facts(s.store, _finished(run)), tol)
    return json({"verify": report})


async def diff_runs(request: Request) -> Response:
    """GET /v1/runs/diff?a=RUN&b=RUN -> {diff}: both runs' inputs (graph per node, code hashes,
    provenance) and outcomes (node states, outputs, final metrics) side by side, differences listed."""
    s: Services = request.app.state.services
    missing = [(k, "required: a run id or prefix") for k in ("a", "b") if not request.query_params.get(k)]
    if missing:
        raise ValidationError.collect("give two runs to compare", missing)
    a, b = (s.runs.find(request.query_params[k]) for k in ("a", "b"))
    return json({"diff": diff(run_facts(s.store, a), run_facts(s.store, b))})


async def run_lineage(request: Request) -> Response:
    """GET /v1/runs/{run_id}/lineage -> {lineage: tree}: from the oldest ancestor down, nested
    `{kind, id, run_id, relation, label, state, children}`; replays, forks, resumes, adapters, merges."""
    s: Services = request.app.state.services
    run = s.runs.find(request.path_params["run_id"])
    rows = lineage_rows(s.store)
    return json({"lineage": lineage(run.run_id, rows["runs"], resumes=rows["resumes"], jobs=rows["jobs"],
                                    adapters=rows["adapters"])})


routes = [
    Route("/v1/runs/diff", diff_runs, methods=["GET"]),
    command("/v1/runs/{run_id}/replay", replay_run, ReplayRun),
    command("/v1/runs/{run_id}/fork", fork_run, ForkRun),
    Route("/v1/runs/{run_id}/verify", verify_run, methods=["GET"]),
    Route("/v1/runs/{run_id}/lineage", run_lineage, methods=["GET"]),
]
