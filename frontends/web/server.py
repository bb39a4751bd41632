"""Serving the web UI from inside the daemon: one more uvicorn server in the daemon's task group.

The UI runs in the daemon's event loop and reads state in-process (`services`): no HTTP round
trip to itself, and its actions go through the very objects the API uses. It binds 127.0.0.1
only, behind `LocalGuard` (token, Host and Origin checks). The port it got and the daemon's pid
go to `TUNELOG_HOME/ui.json`, which `tunectl ui` reads together with the token file.

`TUNELOG_UI_PORT`: a port number (default 8477), `0` for any free port, `off` for no UI. When the
default port is taken (another daemon with another data dir), a free port is used instead; a
port chosen explicitly that is taken leaves the daemon running without a UI, said in its log.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
import uvicorn
from anyio.abc import TaskStatus

from tunelog.events.errors import ValidationError
from tunelog.frontends.web.security import TOKEN_FILE, LocalGuard, load_or_create_token

if TYPE_CHECKING:
    from tunelog.daemon.main import Extension
from tunelog.daemon.services import Services

log = logging.getLogger("tunelog.web")

DEFAULT_PORT = 8477
UI_FILE = "ui.json"

T = TypeVar("T")


class TaskLocal(Generic[T]):
    """State per asyncio task (per thread outside a task), with reactpy's `ThreadLocal` interface."""

    def __init__(self, default: Callable[[], T]):
        self._default = default
        self._state: WeakKeyDictionary[object, T] = WeakKeyDictionary()

    def get(self) -> T:
        try:
            owner: object = asyncio.current_task() or threading.current_thread()
        except RuntimeError:  # no running event loop
            owner = threading.current_thread()
        if owner not in self._state:
            self._state[owner] = self._default()
        return self._state[owner]


def use_task_local_hook_stack() -> None:
    """Give each render its own hook stack: reactpy 1.1 keeps one stack per thread, but a render
    yields to the event loop before each child component (its per-hook `anyio.Semaphore` always
    checkpoints), so renders of two connections push and pop on one stack in turn and fail with
    "Hook stack is in an invalid state". Each layout renders in its own task, so a stack per task
    is exactly one per render (upstream moved it to a ContextVar:
    https://github.com/reactive-python/reactpy/pull/1204)."""
    from reactpy.core import _life_cycle_hook

    current = getattr(_life_cycle_hook, "_HOOK_STATE", None)
    if isinstance(current, TaskLocal):
        return
    if current is None or type(current).__name__ != "ThreadLocal":
        raise RuntimeError(f"reactpy changed its hook stack ({current!r}): re-check use_task_local_hook_stack")
    _life_cycle_hook._HOOK_STATE = TaskLocal(list)  # type: ignore[assignment]  # same interface: get()


def ui_port_from_env(environ: dict[str, str] | None = None) -> int | None:
    """The port `TUNELOG_UI_PORT` asks for: None when it says `off`, DEFAULT_PORT when unset."""
    raw = (environ if environ is not None else os.environ).get("TUNELOG_UI_PORT", "").strip().lower()
    if raw in ("off", "no", "none", "false", "disabled"):
        return None
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or int(raw) > 65535:
        raise ValidationError.collect("invalid web UI port", [("TUNELOG_UI_PORT", f"a port number, 0 or off, got {raw!r}")])
    return int(raw)


def bind_local(port: int, *, fallback: bool) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:`port` (0: any free port); with `fallback`, a taken
    port gives a free one instead of an error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        if not fallback or port == 0:
            sock.close()
            raise
        log.warning("web UI: port %d is taken; using a free port instead", port)
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class SendFailedIsDisconnect(logging.Filter):
    """reactpy logs ERROR (no traceback) when it cannot send an update, which is what closing or
    leaving a tab mid-update does; its Starlette backend then logs the disconnect at INFO. Any other
    cause still surfaces: the exception goes on to uvicorn, which logs it with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.getMessage().startswith("Failed to send update"):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "update not sent: the page's websocket is closing", None
        return True


def create_ui_app(services: Services, *, token: str, port: int, token_file: Path | None = None) -> Any:
    """The ASGI app: ReactPy's routes (page, websocket, its bundled client) behind LocalGuard."""
    from reactpy.backend.starlette import Options, configure
    from starlette.applications import Starlette

    from tunelog.frontends.web.shell import Root, head
    from tunelog.frontends.web.ui import Ui

    use_task_local_hook_stack()
    serve_log = logging.getLogger("reactpy.core.serve")
    if not any(isinstance(f, SendFailedIsDisconnect) for f in serve_log.filters):
        serve_log.addFilter(SendFailedIsDisconnect())
    from starlette.routing import Route

    from tunelog.frontends.web.uploads import endpoint

    ui = Ui(services)
    app = Starlette(routes=[Route("/uploads", endpoint(ui), methods=["POST"])])
    # reactpy 1.1.0 calls app.add_websocket_route, which Starlette 1.x keeps only on its router.
    app.add_websocket_route = app.router.add_websocket_route  # type: ignore[attr-defined]
    configure(app, lambda: Root(ui), Options(head=head()))
    return LocalGuard(app, token=token, port=port, token_file=token_file)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM/SIGINT."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def write_ui_file(home: Path, *, port: int) -> Path:
    """Record where the UI listens (read by `tunectl ui`)."""
    path = home / UI_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid(), "url": f"http://127.0.0.1:{port}/"}) + "\n")
    os.replace(tmp, path)
    return path


def ui_extension(environ: dict[str, str] | None = None) -> Extension:
    """The web UI as a daemon extension, on the port `TUNELOG_UI_PORT` asks for (checked now, so a
    bad value stops the daemon before it starts)."""
    return functools.partial(serve_ui, port=ui_port_from_env(environ))


async def serve_ui(services: Services, *, port: int | None,
                   task_status: TaskStatus[int | None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve the UI until cancelled; `task_status` gets the bound port (None: no UI, see the log)."""
    if port is None:
        task_status.started(None)
        return
    try:
        # reactpy takes ~0.3 s to import: not on the event loop, the API is already serving.
        await anyio.to_thread.run_sync(importlib.import_module, "reactpy.backend.starlette")
        token = load_or_create_token(services.paths.home)
        sock = bind_local(port, fallback=port == DEFAULT_PORT)
        bound = sock.getsockname()[1]
        app = create_ui_app(services, token=token, port=bound, token_file=services.paths.home / TOKEN_FILE)
    except (OSError, ImportError) as exc:
        log.error("web UI not started: %s", exc)
        task_status.started(None)
        return
    server = _Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="websockets-sansio",
                                   timeout_graceful_shutdown=1))
    ui_file = write_ui_file(services.paths.home, port=bound)
    log.info("web UI on http://127.0.0.1:%d/ (`tunectl ui` opens it)", bound)
    task_status.started(bound)
    try:
        await server.serve([sock])
    except anyio.get_cancelled_exc_class():
        # The daemon is stopping: close open pages' websockets instead of dropping them.
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            if getattr(server, "started", False):
                await server.shutdown([sock])
        raise
    finally:
        sock.close()
        ui_file.unlink(missing_ok=True)
