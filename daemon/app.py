"""The Starlette app: every route in one visible list."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from tunelog.daemon.api import errors, events, jobs, plugins, reproduce, runs, system, timetravel
from tunelog.daemon.api.guard import Guard
from tunelog.daemon.services import Services


def create_app(services: Services) -> Starlette:
    """Build the API app over already-started services; `Guard` (limits, one log line per error)
    wraps it outermost."""
    app = Starlette(
        routes=[*system.routes, *events.routes, *jobs.routes, *plugins.routes, *reproduce.routes, *runs.routes,
                *timetravel.routes],
        exception_handlers=errors.HANDLERS,
        middleware=[Middleware(Guard)],
    )
    app.state.services = services
    return app
