"""A Starlette app that serves the workflow editor alone over real Services (for its tests and
for trying it out before the web UI mounts it): `/` is a new workflow, `/?workflow=<name>`
opens a saved one.

Its lifespan does what daemon start-up does for these parts: scan plugins, run the job
runner and the run executor, and wake the notifier after each commit (from the loop thread,
whichever thread appended).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from reactpy import component, html, use_location
from reactpy.backend.starlette import Options, configure
from starlette.applications import Starlette

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


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Any) -> Any:
    """A store subscriber that calls `fn(head)` in `loop`'s thread."""
    owner = threading.get_ident()

    def call(head: int) -> None:
        if threading.get_ident() == owner:
            fn(head)
        else:
            loop.call_soon_threadsafe(fn, head)

    return call


def create_editor_app(services: Any, *, start_services: bool = True) -> Starlette:
    """The editor on `/`, over `services`; `start_services=False` when something else runs them."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not start_services:
            yield
            return
        import anyio

        loop = asyncio.get_running_loop()
        unsubscribe = [services.store.subscribe(_on_loop(loop, services.notifier.notify)),
                       services.store.subscribe(_on_loop(loop, lambda head: services.runs.wake()))]
        async with anyio.create_task_group() as tg:
            await tg.start(services.jobs.run)
            await services.plugins.scan()
            await tg.start(services.runs.run)
            try:
                yield
            finally:
                await services.jobs.shutdown()
                for undo in unsubscribe:
                    undo()
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
