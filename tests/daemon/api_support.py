"""The daemon's app in-process over real parts for the route tests: a real SQLite store and
artifact store in a temp dir, the plugin manager with the `testops` fixture plugin and `tuned` (a
plugin with presets and a checks module that warns), and no scheduler, so a submitted run stays
`running` and a submitted job stays `queued` until a test appends what happened to them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import yaml
from starlette.testclient import TestClient

from tests.daemon.daemon_proc import FIXTURES
from tunelog.daemon.app import create_app
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services

TUNED = {"name": "tuned", "version": "2.1", "description": "A plugin with presets and warnings.",
         "presets": "presets.yaml", "checks": "checks.py", "operations": {
             "make": {"description": "Make something.", "resource": "cpu",
                      "params": {"preset": {"type": "string", "description": "A preset.", "default": ""},
                                 "lr": {"type": "number", "description": "Rate.", "default": 0.1}},
                      "outputs": {"thing": {"type": "json", "description": "The thing."}}},
             "wide": {"description": "Use several GPUs.", "resource": "gpu", "devices_param": "gpus",
                      "params": {"gpus": {"type": "integer", "description": "GPUs.", "default": 1}}}}}
PRESETS = {"presets": {"fast": {"description": "Quick.", "params": {"lr": 0.5}}}}
CHECKS = ("def make(params, inputs, facts):\n    return [], [('lr', f\"lr is {params['lr']}\")]\n\n\n"
          "def wide(params, inputs, facts):\n    return [], []\n")


def add_plugins(paths: Paths) -> None:
    folder = paths.user_plugins / "tuned"
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(yaml.safe_dump(TUNED))
    (folder / "presets.yaml").write_text(yaml.safe_dump(PRESETS))
    (folder / "checks.py").write_text(CHECKS)
    (folder / "backend.py").write_text("def make(ctx, params, inputs):\n    return {'thing': 1}\n\n\nwide = make\n")
    broken = paths.user_plugins / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: broken\nversion: 1\n")  # no description, no operations


@contextmanager
def app(home: Path, *, plugins: bool = True) -> Iterator[tuple[TestClient, Services]]:
    """The app over a fresh data dir; `stops` (the reasons `daemon stop` gave) on `services.stops`."""
    paths = Paths.from_env(home)
    paths.ensure()
    if plugins:
        add_plugins(paths)
    services = build_services(paths, version="test-1.2", plugin_dirs=[FIXTURES] if plugins else [],
                              builtin_dir=Path("/nonexistent"), slots=["cpu0", "gpu0", "gpu1"])
    stops: list[str] = []
    services.request_stop = stops.append
    services.stops = stops  # type: ignore[attr-defined]
    anyio.run(services.plugins.scan)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client, services
    services.store.close()


def error(resp: Any, status: int) -> dict[str, Any]:
    """The error object of an answer that must be the envelope with `status`."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def ok(resp: Any, status: int = 200) -> Any:
    """The JSON body of an answer that must have `status`."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    return resp.json()


def tagged(services: Services, command_id: str) -> list[str]:
    """The types of the events a command id tagged (an empty append with the id looks it up)."""
    return [e.type for e in services.store.append("command-lookup", [], command_id=command_id)]
