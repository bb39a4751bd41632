"""`WebUiApi`: the narrow handle a plugin's `ui_component` gets (`tunelog.plugins.api.UiApi`),
instead of the daemon's whole `Services`.

Reads go to the projections; the only commands are the checked ones every front end uses: a
graph is submitted through `submit_checked` (refused whole, nothing appended), and an upload is
stored content-addressed and recorded as a `file-uploaded` event.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from reactpy import hooks

from tunelog.events.errors import TunelogError, ValidationError
from tunelog.events.uploads import FileUploaded
from tunelog.frontends.web.live import use_head
from tunelog.plugins.api import Manifest, OperationSpec

if TYPE_CHECKING:
    from tunelog.frontends.web.ui import Ui

T = TypeVar("T")
UPLOAD_STREAM = "uploads"
DEFAULT_UPLOAD_MB = 64


def upload_limit(environ: dict[str, str] | None = None) -> int:
    """Most bytes one upload may have: `TUNELOG_UPLOAD_MAX_MB` (default 64) megabytes."""
    raw = (environ if environ is not None else os.environ).get("TUNELOG_UPLOAD_MAX_MB", "").strip()
    if not raw:
        return DEFAULT_UPLOAD_MB * 1024 * 1024
    try:
        return int(float(raw) * 1024 * 1024)
    except ValueError:
        raise ValidationError.collect("invalid upload limit", [("TUNELOG_UPLOAD_MAX_MB", f"a number, got {raw!r}")]) from None


def upload_name(name: str) -> str:
    """The file name an upload is stored under (no folders), or a ValidationError."""
    base = Path(name.replace("\\", "/")).name.strip()
    if not base or base in (".", "..") or base.startswith("."):
        raise ValidationError.collect("cannot store the upload", [("file", f"needs a plain file name, got {name!r}")])
    return base


class WebUiApi:
    """`UiApi` for one plugin's page, over the UI's shared handle."""

    def __init__(self, ui: Ui, manifest: Manifest, *, memory: dict[str, Any] | None = None,
                 query: dict[str, str] | None = None):
        self._ui = ui
        self.manifest = manifest
        self.query = dict(query or {})
        self.kit = kit()
        self._memory = memory if memory is not None else {}

    def use_log_head(self) -> int:
        return use_head(self._ui)

    def use_form(self, key: str, default: T) -> tuple[T, Callable[[Any], None]]:
        value, set_value = hooks.use_state(cast(T, self._memory.get(key, default)))
        memory = self._memory

        def update(new: Any) -> None:
            memory[key] = new(memory.get(key, default)) if callable(new) else new
            set_value(memory[key])

        return value, update

    def models(self) -> list[Any]:
        return sorted(self._ui.services.tables.models.all(), key=lambda m: m.name)

    def adapters(self, *, limit: int = 50) -> list[Any]:
        return self._ui.services.tables.adapters.select(order="created_position", descending=True, limit=limit)

    def runs(self, *, limit: int = 50) -> list[Any]:
        return self._ui.services.tables.runs.select(order="submitted_position", descending=True, limit=limit)

    def run(self, run_id: str) -> Any | None:
        return self._ui.services.tables.runs.get(run_id)

    def job(self, job_id: str) -> Any | None:
        return self._ui.services.tables.jobs.get(job_id)

    def operations(self) -> dict[str, OperationSpec]:
        plugins = self._ui.services.plugins
        out: dict[str, OperationSpec] = {}
        for row in sorted(self._ui.services.tables.plugins.all(), key=lambda p: p.name):
            if row.status == "removed" or not row.code_hash:
                continue
            for name in row.manifest.get("operations") or {}:
                try:
                    out[f"{row.name}.{name}"] = plugins.resolve(row.name, name).op
                except TunelogError:
                    continue  # its code snapshot is gone: the plugins page says so
        return out

    def presets(self) -> dict[str, dict[str, Any]]:
        return self._ui.services.plugins.presets().get(self.manifest.name, {})

    def adapter_base(self, sha256: str) -> str:
        row = self._ui.services.tables.adapters.get(sha256)
        return self._ui.adapter_base(row) if row is not None else ""

    def check(self, graph: dict[str, Any]) -> list[tuple[str, str]]:
        from tunelog.daemon.runs.graph import parse_graph

        try:
            parse_graph(graph, self._ui.services.plugins)
        except TunelogError as exc:
            return [(str(p.get("where", "")), str(p.get("message", ""))) for p in exc.problems] or [("", exc.message)]
        return []

    async def submit(self, graph: dict[str, Any], *, label: str = "") -> tuple[str, list[tuple[str, str]]]:
        from tunelog.daemon.runs.preflight import submit_checked

        row, warnings = await submit_checked(self._ui.services, graph, label=label or str(graph.get("description", "")))
        return row.run_id, warnings

    def upload(self, name: str, data: bytes) -> str:
        return store_upload(self._ui, name, data)

    def uploads(self) -> list[dict[str, Any]]:
        return list_uploads(self._ui)

    def data_dirs(self) -> list[Path]:
        return data_dirs(self._ui.services.paths.home)


def kit() -> SimpleNamespace:
    """The web UI's view helpers a plugin page uses (`api.kit`), so that plugins never import the
    front end: links, tables, fields, notices, the adapter picker and a run's outcome."""
    from tunelog.frontends.web import forms, widgets

    names = ("act", "act_async", "badge", "button", "error_notice", "field", "json_block", "link", "notice_view",
             "ok_notice", "run_link", "select", "short", "table", "text_input", "use_notice", "warnings_notice",
             "when")
    return SimpleNamespace(**{n: getattr(widgets, n) for n in names}, adapter_picker=forms.adapter_picker,
                           run_outcome=forms.run_outcome)


def data_dirs(home: Path, environ: dict[str, str] | None = None) -> list[Path]:
    """`TUNELOG_DATA_DIRS` (separated by the OS path separator), else `home/data`."""
    raw = (environ if environ is not None else os.environ).get("TUNELOG_DATA_DIRS", "")
    found = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    return found or [home / "data"]


def store_upload(ui: Ui, name: str, data: bytes) -> str:
    """Store `data` as `name` in a content-addressed folder artifact and record it; returns its sha256."""
    import hashlib

    base = upload_name(name)
    limit = upload_limit()
    if len(data) > limit:
        raise ValidationError.collect("the upload is too large", [(
            base, f"{len(data)} bytes, more than the {limit // (1024 * 1024)} MB allowed (TUNELOG_UPLOAD_MAX_MB)")])
    if not data:
        raise ValidationError.collect("cannot store the upload", [(base, "the file is empty")])
    services = ui.services
    with tempfile.TemporaryDirectory(dir=services.paths.artifacts / "tmp") as tmp:
        (Path(tmp) / base).write_bytes(data)
        ref = services.artifacts.put_dir(tmp)
    services.store.append(UPLOAD_STREAM, [FileUploaded(sha256=ref.sha256, name=base, size=len(data),
                                                       file_sha256=hashlib.sha256(data).hexdigest())])
    return ref.sha256


def list_uploads(ui: Ui) -> list[dict[str, Any]]:
    """Uploaded files, newest first (each once: the latest upload of the same content wins)."""
    seen: dict[str, dict[str, Any]] = {}
    artifacts = ui.services.artifacts
    for env in ui.services.store.read(stream=UPLOAD_STREAM, types=["file-uploaded"]):
        e = env.event
        if isinstance(e, FileUploaded) and artifacts.exists(e.sha256):
            seen.pop(e.sha256, None)
            seen[e.sha256] = {"sha256": e.sha256, "name": e.name, "size": e.size, "time": env.time,
                              "path": str(artifacts.path(e.sha256, verify=False) / e.name)}
    return list(reversed(seen.values()))
