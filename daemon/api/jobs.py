"""Jobs: submit, list, show, cancel."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.commands import command
from tunelog.daemon.api.errors import read_body
from tunelog.daemon.api.paging import page_body, parse_page
from tunelog.daemon.services import Services
from tunelog.events.errors import ValidationError
from tunelog.events.state import JobState

_json = msgspec.json.Encoder()
STATES = tuple(JobState)


class SubmitJob(msgspec.Struct, forbid_unknown_fields=True):
    """Run one plugin operation as a job."""

    plugin: str
    operation: str
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    command_id: str | None = None


class CancelJob(msgspec.Struct, forbid_unknown_fields=True):
    """Cancel a queued or running job."""

    reason: str = "cancelled by user"
    command_id: str | None = None


def json(body: Any, status: int = 200) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json")


async def submit(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, SubmitJob)
    resolved = s.plugins.resolve(cmd.plugin, cmd.operation)
    problems: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    for check, value, out in ((s.plugins.validate_params, cmd.params, params),
                              (s.plugins.validate_inputs, cmd.inputs, inputs)):
        try:
            out.update(check(resolved.op, value))
        except ValidationError as exc:
            problems += exc.problems
    if problems:
        raise ValidationError(f"{cmd.plugin}.{cmd.operation}: the job was not submitted", problems=problems)
    row = s.jobs.submit(plugin=cmd.plugin, operation=cmd.operation, params=params, inputs=inputs,
                        code_hash=resolved.row.code_hash, plugin_version=resolved.row.version,
                        resource=resolved.op.resource, command_id=cmd.command_id,
                        **resolved.op.request(params))
    return json({"job": row}, 201)


async def list_jobs(request: Request) -> Response:
    s: Services = request.app.state.services
    """A page of jobs in queue order, optionally in one state (see `daemon/api/paging.py`)."""
    problems: list[tuple[str, str]] = []
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        problems.append(("state", f"must be one of {', '.join(STATES)}"))
    page = parse_page(request, problems)
    if problems:
        raise ValidationError.collect("invalid job query", problems)
    rows = s.tables.jobs.select(order="queued_position", where={"state": state} if state else None,
                                after=page.after, limit=page.limit + 1, descending=page.descending)
    return json(page_body("jobs", rows, page, "queued_position"))


async def show(request: Request) -> Response:
    s: Services = request.app.state.services
    return json({"job": s.jobs.find(request.path_params["job_id"])})


async def cancel(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, CancelJob)
    row = s.jobs.find(request.path_params["job_id"])
    return json({"job": s.jobs.cancel(row.job_id, command_id=cmd.command_id, reason=cmd.reason)}, 202)


routes = [
    command("/v1/jobs", submit, SubmitJob),
    Route("/v1/jobs", list_jobs, methods=["GET"]),
    Route("/v1/jobs/{job_id}", show, methods=["GET"]),
    command("/v1/jobs/{job_id}/cancel", cancel, CancelJob),
]
