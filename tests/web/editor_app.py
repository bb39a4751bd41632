"""A Starlette app that serves the workflow editor alone over real Services (for its browser
tests): `/` is a new workflow, `/?workflow=<name>` opens a saved one.

Its lifespan starts the parts as daemon start-up does (`start_services`), without the plugin
watcher.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import anyio
from reactpy import component, html, use_location
from reactpy.backend.starlette import Options, configure
from starlette.applications import Starlette

from tunelog.daemon.services import start_services
from tunelog.frontends.web.editor.component import WorkflowEditor

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
"""The web UI's kind of Content-Security-Policy: only this server serves scripts and styles, so
anything the bundle would fetch from elsewhere (or evaluate) fails in the tests too."""


class ContentSecurityPolicy:
    """ASGI middleware adding POLICY to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", POLICY.encode())]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def create_editor_app(services: Any) -> Starlette:
    """The editor on `/`, over `services` (started and stopped by the app's lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            stop_waking = await start_services(services, tg, watch_plugins=False)
            try:
                yield
            finally:
                await services.jobs.shutdown()
                stop_waking()
                tg.cancel_scope.cancel()

    @component
    def Root() -> Any:
        query = parse_qs(use_location().search.lstrip("?"))
        name = query["workflow"][0] if query.get("workflow") else None
        return WorkflowEditor(services=services, workflow=name, key=name or "")

    from tunelog.frontends.web.server import use_task_local_hook_stack

    use_task_local_hook_stack()  # several pages may render at once here too
    app = Starlette(lifespan=lifespan)
    # reactpy 1.1.0's Starlette backend calls app.add_websocket_route, which Starlette 1.x moved to the router.
    if not hasattr(app, "add_websocket_route"):
        app.add_websocket_route = app.router.add_websocket_route  # type: ignore[attr-defined]
    configure(app, Root, Options(head=html.head(html.title("tunelog workflow editor"))))
    app.add_middleware(ContentSecurityPolicy)
    return app
