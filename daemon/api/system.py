"""Status, projection rebuild, and stop."""

from __future__ import annotations

import os
import time

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tunelog.daemon.api.commands import command
from tunelog.daemon.api.errors import read_body
from tunelog.daemon.services import Services
from tunelog.events.state import all_folds


class Command(msgspec.Struct, forbid_unknown_fields=True):
    """A command body carrying only its idempotency key."""

    command_id: str | None = None


async def status(request: Request) -> Response:
    s: Services = request.app.state.services
    jobs = s.tables.jobs.count_by("state")  # kept by the store: history must not slow this
    running = s.tables.jobs.select(order="queued_position", where={"state": "running"})
    plugins = s.tables.plugins.count_by("status")
    return JSONResponse({
        "version": s.version,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - s.started_at, 3),
        "data_dir": str(s.paths.home),
        "socket": str(s.paths.socket),
        "log_file": str(s.paths.log_file),
        "head": s.store.head(),
        "projections": {f.table: s.store.projection_position(f.table) for f in all_folds()},
        "jobs": jobs,
        "plugins": plugins,
        "slots": {slot: next((r.job_id for r in running if r.slot == slot), None) for slot in s.jobs.slots},
        # asking a cluster is a network call: off the event loop
        "backend": s.jobs.backend_status() if s.jobs.backend is None
        else await anyio.to_thread.run_sync(s.jobs.backend_status),
    })


async def rebuild(request: Request) -> Response:
    """Recreate every projection from the log and report whether the result equals the live one."""
    s: Services = request.app.state.services
    await read_body(request, Command)
    tables = [f.table for f in all_folds()]
    before = {t: [msgspec.to_builtins(r) for r in s.store.rows(t)] for t in tables}
    started = time.perf_counter()
    folded = s.store.rebuild()
    seconds = time.perf_counter() - started
    after = {t: [msgspec.to_builtins(r) for r in s.store.rows(t)] for t in tables}
    return JSONResponse({"events_folded": folded, "seconds": round(seconds, 4),
                         "identical": before == after,
                         "differs": [t for t in tables if before[t] != after[t]]})


async def stop(request: Request) -> Response:
    s: Services = request.app.state.services
    await read_body(request, Command)
    s.request_stop("stop requested over the API")
    return JSONResponse({"stopping": True, "pid": os.getpid()}, status_code=202)


routes = [
    Route("/v1/status", status, methods=["GET"]),
    command("/v1/admin/rebuild", rebuild, Command),
    command("/v1/daemon/stop", stop, Command),
]
