"""The worker process: runs one plugin operation and reports to the daemon in framed messages.

The daemon starts it as `python -P -m tunelog.daemon.jobs.worker job.json` in the job folder, in a
process group of its own, with stderr going to `worker.log` and stdout to a pipe. The worker
keeps that pipe on a private descriptor for its messages and points fd 1 at the log, so
`print()` in plugin code (and in anything it starts) lands in the log. It loads the plugin
snapshot as a package with `plugin_check.import_backend`, the loader the import check uses.

This module may import plugin code (which may import torch); the daemon never imports it.
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from tunelog.daemon.jobs.protocol import FrameWriter, WorkerSpec
from tunelog.daemon.plugin_host.check import import_backend
from tunelog.events.base import Event, encode_payload
from tunelog.events.errors import PluginError, TunelogError
from tunelog.events.streams import job_stream, run_stream
from tunelog.plugins.context import Context, Sink
from tunelog.store.artifacts import ArtifactStore


def event_message(event: Any, *, job_id: str) -> dict[str, Any]:
    """The body of an `event` message for what `ctx.emit` got.

    `event` is an Event, or `{"stream": ..., "event": Event}` to name the stream. Otherwise the
    event's own fields name it: `merge_id` (already `merge-...`), else `run_id` (`run-<run_id>`),
    else the job's own stream. The daemon decides whether the job may write there.
    """
    stream = None
    if isinstance(event, dict):
        stream, event = event.get("stream"), event.get("event")
    if not isinstance(event, Event):
        raise TypeError(f"ctx.emit needs a tunelog event, not {type(event).__name__}")
    if stream is None:
        run_id, merge_id = getattr(event, "run_id", None), getattr(event, "merge_id", None)
        stream = merge_id or (run_stream(run_id) if run_id else job_stream(job_id))
    return {"stream": str(stream), "type": event.tag, "schema_version": type(event).schema_version,
            "payload": encode_payload(event)}


def make_sink(writer: FrameWriter, *, job_id: str) -> Sink:
    """The Context sink: every message becomes a frame to the daemon."""

    def sink(kind: str, body: dict[str, Any]) -> None:
        if kind == "event":
            body = event_message(body["event"], job_id=job_id)
        writer.send(kind, body)

    return sink


def run_operation(spec: WorkerSpec, writer: FrameWriter) -> int:
    """Run the operation and send its result or error; returns the exit status."""
    try:
        artifacts = ArtifactStore(spec.artifacts)
        resume = artifacts.path(spec.resume_sha256) if spec.resume_sha256 else None
        ctx = Context(job_id=spec.job_id, workdir=Path(spec.workdir), artifacts=artifacts,
                      sink=make_sink(writer, job_id=spec.job_id), resume_from=resume, run_id=spec.run_id,
                      cache_dir=Path(spec.cache_dir) if spec.cache_dir else None,
                      uses={name: (_snapshot_loader(name, Path(folder)), Path(folder).name)
                            for name, folder in spec.uses.items()})
        ctx.install_sigterm()
        package = "tunelog_plugin_" + re.sub(r"\W", "_", spec.plugin)
        operation = _operation(import_backend(Path(spec.code_dir), package), spec)
        outputs = operation(ctx, dict(spec.params), dict(spec.inputs))
        if outputs is None:
            outputs = {}
        if not isinstance(outputs, dict):
            raise PluginError(f"{spec.plugin}.{spec.operation} returned a {type(outputs).__name__}, "
                              "not a dict of outputs")
        writer.send("result", {"outputs": outputs})
        return 0
    except BaseException as exc:  # noqa: BLE001 - whatever the plugin raised is the job's failure
        text = traceback.format_exc()
        sys.stderr.write(text)
        writer.send("error", error_body(exc, traceback=text))
        return 1


def _snapshot_loader(name: str, folder: Path) -> Callable[[], ModuleType]:
    """Imports another plugin's pinned snapshot (a folder named by its code hash) as a package of its own."""
    return lambda: import_backend(folder, "tunelog_plugin_" + re.sub(r"\W", "_", name))


def _operation(backend: ModuleType, spec: WorkerSpec) -> Callable[..., Any]:
    found = getattr(backend, spec.operation, None)
    if not callable(found):
        raise PluginError(f"plugin {spec.plugin!r} has no operation {spec.operation!r} in backend.py")
    return found  # type: ignore[no-any-return]


def error_body(exc: BaseException, *, traceback: str) -> dict[str, Any]:
    """The body of an `error` message: the whole error, structured as JobFailed keeps it.

    `error` is its first line (the summary lists show); `message`, `hint` and `problems` are whole,
    so a problem list the user must work through reaches the screen entire.
    """
    message = exc.message if isinstance(exc, TunelogError) else str(exc)
    problems = getattr(exc, "problems", None)
    hint = getattr(exc, "hint", None)
    first = message.strip().splitlines()
    return {"error": f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__,
            "error_type": type(exc).__name__, "message": message.strip(),
            "hint": str(hint) if hint else None, "problems": _plain_problems(problems),
            "traceback": traceback}


def _plain_problems(problems: Any) -> list[dict[str, Any]]:
    """A problem list as JSON-safe dicts (a plugin's own error may carry anything)."""
    if not isinstance(problems, list | tuple):
        return []
    return [msgspec.to_builtins(p, str_keys=True, enc_hook=str) if isinstance(p, dict) else {"message": str(p)}
            for p in problems]


def _take_channel() -> int:
    """Move the message pipe off fd 1 and point fd 1 at the log (fd 2)."""
    sys.stdout.flush()
    channel = os.dup(1)  # not inherited by processes the plugin starts
    os.dup2(2, 1)
    return channel


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m tunelog.daemon.jobs.worker job.json`."""
    args = sys.argv[1:] if argv is None else argv
    channel = _take_channel()
    faulthandler.enable()  # a segfault leaves a Python stack in worker.log
    spec = msgspec.json.decode(Path(args[0]).read_bytes(), type=WorkerSpec)
    if int(os.environ.get("RANK", "0")) != 0:
        # Under a distributed launcher every rank runs the operation; rank 0 alone reports. The
        # others' failures still reach the daemon: the launcher exits non-zero and their
        # tracebacks are in worker.log.
        os.close(channel)
        channel = os.open(os.devnull, os.O_WRONLY)
    return run_operation(spec, FrameWriter(channel))


if __name__ == "__main__":
    raise SystemExit(main())
