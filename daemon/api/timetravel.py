"""Time travel: every projection as it was at an earlier log position."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.errors import parse_int
from tunelog.daemon.services import Services
from tunelog.events.errors import ValidationError
from tunelog.store.timetravel import state_at

_json = msgspec.json.Encoder()


async def state(request: Request) -> Response:
    """GET /v1/state?at=POSITION[&tables=runs,jobs] -> {at, head, time, tables: {table: [rows]}}: the
    projections rebuilt from events 1..POSITION in a throwaway database (the live ones are untouched)."""
    s: Services = request.app.state.services
    raw = request.query_params.get("at", "")
    at = parse_int(raw, high=s.store.head())
    if at is None:
        raise ValidationError.collect("invalid position", [("at", f"a log position 0..{s.store.head()}, got {raw!r}")])
    names = request.query_params.get("tables")
    tables = [t for t in names.split(",") if t] if names else None
    rows = await anyio.to_thread.run_sync(lambda: state_at(s.store.path, at, s.paths.home, tables=tables))
    event = s.store.read(after=at - 1, limit=1) if at else []
    body = {"at": at, "head": s.store.head(), "time": event[0].time if event else None, "tables": rows}
    return Response(_json.encode(body), media_type="application/json")


routes = [Route("/v1/state", state, methods=["GET"])]
