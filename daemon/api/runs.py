"""Runs (executions of graphs), saved workflows, and the things runs produce: adapters, models."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.commands import command
from tunelog.daemon.api.errors import parse_int, read_body
from tunelog.daemon.api.paging import page_body, parse_page
from tunelog.daemon.runs.graph import parse_graph
from tunelog.daemon.runs.lineage import adapter_listing
from tunelog.daemon.runs.preflight import submit_checked
from tunelog.daemon.services import Services
from tunelog.events import runs as R
from tunelog.events.errors import NotFoundError, ValidationError
from tunelog.events.streams import model_stream, workflow_stream

_json = msgspec.json.Encoder()


def json(body: Any, status: int = 200) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json")


class SubmitRun(msgspec.Struct, forbid_unknown_fields=True):
    """Run a graph given inline, or a saved workflow (`name` or `name@version`)."""

    graph: dict[str, Any] | None = None
    workflow: str | None = None
    no_cache: bool = False
    force: list[str] = []
    label: str = ""
    command_id: str | None = None


class RunCommand(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = "cancelled by user"
    command_id: str | None = None


class SaveWorkflow(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    graph: dict[str, Any]
    command_id: str | None = None


class ValidateGraph(msgspec.Struct, forbid_unknown_fields=True):
    graph: dict[str, Any]


class AddModel(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    ref: str
    note: str = ""
    command_id: str | None = None


def workflow_graph(s: Services, ref: str) -> tuple[str, int, dict[str, Any]]:
    """(name, version, graph) of `name` (latest) or `name@version`."""
    name, _, version = ref.partition("@")
    row = s.tables.workflows.get(name)
    if row is None:
        raise NotFoundError(f"no workflow named {name!r}", hint="`tunectl workflow list` shows them")
    if not version:
        return name, row.version, row.graph
    number = parse_int(version, low=1, high=row.version)
    if number is None:
        raise ValidationError.collect("invalid workflow version", [
            ("workflow", f"{name} has versions 1..{row.version}, got {version[:40]!r}")])
    for env in s.store.read(stream=workflow_stream(name)):
        if env.event.version == number:  # type: ignore[attr-defined]
            return name, number, env.event.graph  # type: ignore[attr-defined]
    raise NotFoundError(f"workflow {ref} is not in the log")


async def submit(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, SubmitRun)
    if (cmd.graph is None) == (cmd.workflow is None):
        raise ValidationError.collect("give a graph or a workflow", [("graph", "exactly one of graph, workflow")])
    name, version, graph = workflow_graph(s, cmd.workflow) if cmd.workflow else (None, None, cmd.graph)
    row, warnings = await submit_checked(s, graph, command_id=cmd.command_id, workflow=name,
                                         workflow_version=version, no_cache=cmd.no_cache, force=cmd.force,
                                         label=cmd.label)
    return json({"run": row, "warnings": [{"where": w, "message": m} for w, m in warnings]}, 201)


def run_view(s: Services, run: Any) -> dict[str, Any]:
    """A run with the rows of the jobs its nodes ran."""
    jobs = {j: s.tables.jobs.get(j) for node in run.nodes.values() for j in node.jobs}
    return {"run": run, "jobs": {k: v for k, v in jobs.items() if v is not None}}


async def list_runs(request: Request) -> Response:
    s: Services = request.app.state.services
    problems: list[tuple[str, str]] = []
    page = parse_page(request, problems)
    if problems:
        raise ValidationError.collect("invalid run query", problems)
    rows = s.tables.runs.select(order="submitted_position", after=page.after, limit=page.limit + 1,
                                descending=page.descending)
    return json(page_body("runs", rows, page, "submitted_position"))


async def show_run(request: Request) -> Response:
    s: Services = request.app.state.services
    return json(run_view(s, s.runs.find(request.path_params["run_id"])))


async def cancel_run(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, RunCommand)
    return json({"run": s.runs.cancel(request.path_params["run_id"], reason=cmd.reason,
                                      command_id=cmd.command_id)}, 202)


async def resume_run(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, RunCommand)
    return json({"run": s.runs.resume(request.path_params["run_id"], command_id=cmd.command_id)}, 202)


async def save_workflow(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, SaveWorkflow)
    if not cmd.name or not all(c.isalnum() or c in "-_." for c in cmd.name):
        raise ValidationError.collect("invalid workflow name", [("name", "letters, digits, '-', '_' and '.' only")])
    parse_graph(cmd.graph, s.plugins)
    stream = workflow_stream(cmd.name)
    version = s.store.stream_version(stream) + 1
    s.store.append(stream, [R.WorkflowSaved(name=cmd.name, version=version, graph=cmd.graph)],
                   expected_version=version - 1, command_id=cmd.command_id)
    return json({"workflow": s.tables.workflows.get(cmd.name)}, 201)


async def validate_workflow(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, ValidateGraph)
    graph = parse_graph(cmd.graph, s.plugins)
    return json({"ok": True, "order": graph.order, "graph": graph.spec()})


async def list_workflows(request: Request) -> Response:
    s: Services = request.app.state.services
    return json({"workflows": s.tables.workflows.all()})


async def show_workflow(request: Request) -> Response:
    s: Services = request.app.state.services
    ref = request.path_params["name"]
    if "version" in request.query_params:
        ref = f"{ref}@{request.query_params['version']}"
    name, version, graph = workflow_graph(s, ref)
    return json({"workflow": {"name": name, "version": version, "graph": graph}})


def adapter_rows(s: Services, adapters: list[Any]) -> list[dict[str, Any]]:
    """Adapter rows with the run that made each and the folder it lies in (None once removed)."""
    rows = []
    for a in adapters:
        run = s.tables.runs.get(a.run_id) if a.run_id else None
        try:
            path: str | None = str(s.artifacts.path(a.sha256, verify=False))
        except NotFoundError:
            path = None  # removed from the store; the lineage stays
        rows.append(adapter_listing(msgspec.to_builtins(a), run=msgspec.to_builtins(run) if run else None, path=path))
    return rows


async def list_adapters(request: Request) -> Response:
    """A page of adapters in the order they were produced (`?limit=&after=&order=`), or with
    `?prefix=` those whose sha256 starts with it (at most `limit`, by sha256; `more` says whether
    others match)."""
    s: Services = request.app.state.services
    problems: list[tuple[str, str]] = []
    page = parse_page(request, problems)
    prefix = request.query_params.get("prefix")
    if prefix is not None and (not prefix or not all(c in "0123456789abcdef" for c in prefix)):
        problems.append(("prefix", f"a lowercase hex prefix of an adapter's sha256, got {prefix[:70]!r}"))
    if prefix is not None and page.after is not None:
        problems.append(("after", "a prefix lists its matches in one answer: give either after or prefix"))
    if problems:
        raise ValidationError.collect("invalid adapter query", problems)
    if prefix is not None:
        found = s.tables.adapters.with_prefix(prefix, limit=page.limit + 1)
        return json({"adapters": adapter_rows(s, found[:page.limit]), "next": None, "more": len(found) > page.limit})
    body = page_body("adapters", s.tables.adapters.select(order="created_position", after=page.after,
                                                          limit=page.limit + 1, descending=page.descending),
                     page, "created_position")
    return json({**body, "adapters": adapter_rows(s, body["adapters"])})


async def list_models(request: Request) -> Response:
    s: Services = request.app.state.services
    return json({"models": s.tables.models.all()})


async def add_model(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, AddModel)
    problems = []
    if not cmd.name or not all(c.isalnum() or c in "-_." for c in cmd.name):
        problems.append(("name", "letters, digits, '-', '_' and '.' only"))
    if not cmd.ref.strip():
        problems.append(("ref", "a local folder, a .gguf file or a hub id"))
    if problems:
        raise ValidationError.collect("cannot add the model", problems)
    s.store.append(model_stream(cmd.name), [R.ModelAdded(name=cmd.name, ref=cmd.ref, note=cmd.note)],
                   command_id=cmd.command_id)
    return json({"model": s.tables.models.get(cmd.name)}, 201)


async def remove_model(request: Request) -> Response:
    s: Services = request.app.state.services
    name = request.path_params["name"]
    cmd = await read_body(request, RunCommand)
    if s.tables.models.get(name) is None:
        raise NotFoundError(f"no model named {name!r}")
    s.store.append(model_stream(name), [R.ModelRemoved(name=name)], command_id=cmd.command_id)
    return json({"removed": name})


async def list_operations(request: Request) -> Response:
    """Every operation of every loaded plugin with its ports and parameter schema (for forms)."""
    s: Services = request.app.state.services
    ops = {}
    for row in s.tables.plugins.all():
        if row.code_hash:
            for name, op in (row.manifest.get("operations") or {}).items():
                ops[f"{row.name}.{name}"] = {"plugin": row.name, "version": row.version, **op}
    return json({"operations": ops})


async def list_presets(request: Request) -> Response:
    """Every loaded plugin's presets, each naming its plugin."""
    s: Services = request.app.state.services
    return json({"presets": {name: {**preset, "plugin": plugin}
                             for plugin, presets in s.plugins.presets().items() for name, preset in presets.items()}})


routes = [
    command("/v1/runs", submit, SubmitRun),
    Route("/v1/runs", list_runs, methods=["GET"]),
    Route("/v1/runs/{run_id}", show_run, methods=["GET"]),
    command("/v1/runs/{run_id}/cancel", cancel_run, RunCommand),
    command("/v1/runs/{run_id}/resume", resume_run, RunCommand),
    command("/v1/workflows", save_workflow, SaveWorkflow),
    Route("/v1/workflows", list_workflows, methods=["GET"]),
    Route("/v1/workflows/validate", validate_workflow, methods=["POST"]),
    Route("/v1/workflows/{name}", show_workflow, methods=["GET"]),
    Route("/v1/adapters", list_adapters, methods=["GET"]),
    Route("/v1/models", list_models, methods=["GET"]),
    command("/v1/models", add_model, AddModel),
    command("/v1/models/{name}/remove", remove_model, RunCommand),
    Route("/v1/operations", list_operations, methods=["GET"]),
    Route("/v1/presets", list_presets, methods=["GET"]),
]
