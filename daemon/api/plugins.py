"""Plugins: list, show, reload."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.commands import command
from tunelog.daemon.api.errors import read_body
from tunelog.daemon.services import Services
from tunelog.events.errors import NotFoundError

_json = msgspec.json.Encoder()


class Reload(msgspec.Struct, forbid_unknown_fields=True):
    """Re-check plugin folders now (one, or all when `name` is omitted)."""

    name: str | None = None
    command_id: str | None = None


def json(body: object, status: int = 200) -> Response:
    return Response(_json.encode(body), status_code=status, media_type="application/json")


async def list_plugins(request: Request) -> Response:
    s: Services = request.app.state.services
    return json({"plugins": s.tables.plugins.all()})


async def show(request: Request) -> Response:
    s: Services = request.app.state.services
    name = request.path_params["name"]
    row = s.tables.plugins.get(name)
    if row is None:
        known = ", ".join(r.name for r in s.tables.plugins.all()) or "none"
        raise NotFoundError(f"no plugin named {name!r}", hint=f"known plugins: {known}")
    return json({"plugin": row})


async def reload(request: Request) -> Response:
    s: Services = request.app.state.services
    cmd = await read_body(request, Reload)
    if cmd.name is not None and s.tables.plugins.get(cmd.name) is None:
        raise NotFoundError(f"no plugin named {cmd.name!r}")
    rows = await s.plugins.reload(cmd.name)
    return json({"plugins": rows})


routes = [
    Route("/v1/plugins", list_plugins, methods=["GET"]),
    command("/v1/plugins/reload", reload, Reload),
    Route("/v1/plugins/{name}", show, methods=["GET"]),
]
