"""One job's worker process as the daemon sees it: start it, relay its messages into the log in
batches, stop it when asked, and write the job's terminal event (only the daemon writes one)."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import msgspec

from tunelog.daemon.jobs.launch import cpu_launch_command, free_port, launch_command
from tunelog.daemon.jobs.processes import killpg, oom_kills, record_worker, signal_name, tail_lines
from tunelog.daemon.jobs.protocol import FrameReader, Message, WorkerSpec
from tunelog.daemon.jobs.warm import WarmProcess, WarmUnavailable, WarmWorkers
from tunelog.daemon.paths import UMASK, Paths
from tunelog.events import jobs as J
from tunelog.events.base import Event, decode_payload
from tunelog.events.errors import JobError
from tunelog.events.state import JobRow
from tunelog.events.streams import job_stream, run_stream
from tunelog.store.base import EventStore
from tunelog.store.tables import Tables

log = logging.getLogger(__name__)

_POINTS_PER_EVENT = 1000
_MERGE_STREAM = re.compile(r"merge-[0-9a-f]{16}")
"""Lineage streams of merges (events/merges.py), named by their output artifact."""
_OUT_OF_MEMORY = ("MemoryError", "OutOfMemoryError")
"""What an operation that ran out of memory raises: Python's allocator, torch's CUDA/XPU one."""


class Attempt:
    """Runs one job once, in a worker process in its own process group."""

    def __init__(self, row: JobRow, slot: str, *, store: EventStore, paths: Paths, python: str,
                 grace_s: float, flush_s: float, warm: WarmWorkers | None = None):
        self.row, self.slot, self.store, self.warm = row, slot, store, warm
        self.tables = Tables(store)
        self.python, self.grace_s, self.flush_s = python, grace_s, flush_s
        self.stream = job_stream(row.job_id)
        self.folder = paths.jobs / row.job_id
        self.log_path = self.folder / "worker.log"
        self._code_dir = paths.plugin_code / row.code_hash
        self._artifacts = paths.artifacts
        self._cache = paths.home / "cache"
        self._streams = {self.stream} | ({run_stream(row.run_id)} if row.run_id else set())
        self._stop_reason: str | None = None
        self._stop = anyio.Event()
        self._dirty = anyio.Event()
        self._points: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._progress: J.JobProgress | None = None
        self._result: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._lost: str | None = None
        self._forced = False
        self._started = time.monotonic()
        self._oom_before = 0
        self._proc: anyio.abc.Process | WarmProcess | None = None

    def note(self, line: str) -> None:
        """A line of the job's log from the daemon itself (appended with the next flush)."""
        self._lines.append(line)

    def request_stop(self, reason: str) -> None:
        """Stop the worker: `cancel` or `shutdown`. SIGTERM now, SIGKILL after the grace period.

        Ignored once the operation has returned: its terminal event is on its way.
        """
        if self._stop_reason is None and self._result is None:
            self._stop_reason = reason
            self._stop.set()

    async def run(self) -> None:
        """Run the job to its terminal event, whatever happens (cancellation included).

        A job stopped by the daemon's shutdown before its worker started gets no terminal event:
        it is still queued, and the next daemon runs it.
        """
        terminal: Event | None = None
        try:
            terminal = await self._run_worker() if self._stop_reason is None else self._stopped()
        except Exception as exc:  # a bug here must not take the daemon or other jobs down
            log.exception("job %s: supervising the worker failed", self.row.job_id)
            terminal = self._failed(f"the daemon lost track of the worker: {exc}", cause="lost")
        finally:
            with anyio.CancelScope(shield=True):
                await self._reap()
                if terminal is None and self._proc is not None:
                    terminal = J.JobInterrupted(job_id=self.row.job_id, reason="daemon stopped")
                self._flush([terminal] if terminal is not None else [])

    async def _run_worker(self) -> Event | None:
        try:
            # Shielded: a cancel landing while the process is being created would lose its handle
            # and leave the worker running with no one to reap it.
            with anyio.CancelScope(shield=True):
                proc = await self._spawn()
        except (OSError, JobError) as exc:
            return self._failed(f"could not start the worker: {exc}", cause="start")
        self._proc, self._started, self._oom_before = proc, time.monotonic(), oom_kills()
        record_worker(self.folder, proc.pid)
        self.store.append(self.stream, [J.JobStarted(job_id=self.row.job_id, pid=proc.pid, slot=self.slot,
                                                     log_path=str(self.log_path), run_id=self.row.run_id)])
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_loop)
            tg.start_soon(self._stop_when_asked, proc)
            await self._relay(proc, tg)
            await proc.wait()
            tg.cancel_scope.cancel()
        if isinstance(proc, WarmProcess) and proc.lost and self._result is None:
            self._lost = self._lost or proc.lost
        return self._outcome(proc.returncode if proc.returncode is not None else -signal.SIGKILL)

    async def _spawn(self) -> anyio.abc.Process | WarmProcess:
        if not self._code_dir.is_dir():
            raise JobError(f"the code snapshot {self.row.code_hash[:12]} of plugin {self.row.plugin!r} is missing")
        uses = {name: self._code_dir.parent / digest for name, digest in self.row.uses.items()}
        missing = [f"{name} ({path.name[:12]})" for name, path in uses.items() if not path.is_dir()]
        if missing:
            raise JobError(f"the code snapshot of plugin {', '.join(missing)} that the job calls is missing")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec = WorkerSpec(job_id=self.row.job_id, plugin=self.row.plugin, operation=self.row.operation,
                          params=self.row.params, inputs=self.row.inputs, code_dir=str(self._code_dir),
                          artifacts=str(self._artifacts), workdir=str(self.folder / "work"),
                          resume_sha256=self._resume_sha(), run_id=self.row.run_id,
                          cache_dir=str(self._cache), uses={k: str(v) for k, v in uses.items()})
        spec_fd = os.open(self.folder / "job.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(spec_fd, "wb") as f:
            f.write(msgspec.json.encode(spec))
        with open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as logfile:
            if self.warm is not None and self.warm.available and self.slot.startswith("cpu") and "," not in self.slot:
                try:  # forked from the warm host: torch and friends are imported already
                    return await self.warm.spawn(argv=["tunelog.daemon.jobs.worker", "job.json"], cwd=self.folder,
                                                 env=self._env(), stderr=logfile.fileno())
                except WarmUnavailable as exc:
                    log.info("job %s: starting its worker cold: %s", self.row.job_id, exc.message)
            return await anyio.open_process(
                self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=logfile,
                cwd=self.folder, env=self._env(), start_new_session=True, umask=UMASK)

    def _command(self) -> list[str]:
        """One worker process, or a launcher starting one per slot (rank 0 alone talks to us)."""
        worker = ["-m", "tunelog.daemon.jobs.worker", "job.json"]
        slots = self.slot.split(",")
        if len(slots) == 1:
            return [self.python, "-P", *worker]
        port = free_port()
        if slots[0].startswith("gpu"):
            return launch_command(self.row.params, gpus=len(slots), script_args=worker, main_process_port=port)
        return cpu_launch_command(processes=len(slots), script_args=worker, port=port)

    def _resume_sha(self) -> str | None:
        if not self.row.resume_of:
            return None
        if self.row.resume_checkpoint:
            return str(self.row.resume_checkpoint)
        prev = self.tables.jobs.get(self.row.resume_of)
        if prev is None or not prev.checkpoint_sha256:
            raise JobError(f"job {self.row.resume_of} has no checkpoint to resume from")
        return str(prev.checkpoint_sha256)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", TUNELOG_JOB_ID=self.row.job_id)
        if self.slot.startswith("gpu"):
            env["CUDA_VISIBLE_DEVICES"] = ",".join(s[3:] for s in self.slot.split(","))
        return env

    async def _relay(self, proc: anyio.abc.Process | WarmProcess, tg: anyio.abc.TaskGroup) -> None:
        """Turn the worker's messages into events until its channel closes."""
        if proc.stdout is None:
            raise JobError("the worker has no message channel")
        reader = FrameReader(proc.stdout)
        try:
            while (msg := await reader.receive()) is not None:
                self._handle(msg)
                if msg.kind in ("result", "error"):
                    tg.start_soon(self._kill_if_lingering, proc)
        except JobError as exc:
            self._lost = exc.message
            killpg(proc.pid, signal.SIGKILL)

    def _handle(self, msg: Message) -> None:
        body, jid = msg.body, self.row.job_id
        try:
            if msg.kind == "metrics":
                self._points.append(body)
            elif msg.kind == "log":
                self._lines.append(str(body["line"]))
            elif msg.kind == "progress":
                self._progress = J.JobProgress(job_id=jid, step=int(body["step"]), total=body.get("total"),
                                               message=str(body.get("message", "")))
            elif msg.kind == "artifact":
                self._flush([J.JobArtifact(job_id=jid, name=body["name"], sha256=body["sha256"],
                                           size=body["size"], kind=body.get("kind", "file"))])
            elif msg.kind == "checkpoint":
                self._flush([J.JobCheckpointed(job_id=jid, step=body["step"], sha256=body["sha256"],
                                               size=body["size"])])
            elif msg.kind == "event":
                self._domain_event(body)
            elif msg.kind == "result":
                self._result = dict(body["outputs"])
            elif msg.kind == "error":
                self._error = body
            else:
                self._lines.append(f"tunelog: ignored a message of unknown kind {msg.kind!r}")
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
            raise JobError(f"the worker sent a malformed {msg.kind!r} message ({exc!r})") from None
        self._dirty.set()

    def _domain_event(self, body: dict[str, Any]) -> None:
        """Append an event from `ctx.emit` to its stream, if the job may write there."""
        stream, tag = str(body["stream"]), str(body["type"])
        if not (stream in self._streams or _MERGE_STREAM.fullmatch(stream)) or tag.startswith("job-"):
            self._lines.append(f"tunelog: refused a {tag!r} event for stream {stream!r}: a job may emit only "
                               f"non-job events to {', '.join(sorted(self._streams))} or merge-<sha256[:16]>")
            return
        try:
            event = decode_payload(tag, int(body["schema_version"]), body["payload"])
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._lines.append(f"tunelog: refused an unreadable {tag!r} event: {exc}")
            return
        if stream == self.stream:
            self._flush([event])
        else:
            self._flush()
            self._append(stream, [event], causation_id=self.stream, correlation_id=self.row.run_id)

    def _flush(self, extra: Sequence[Event] = ()) -> None:
        """Append what is buffered (and `extra`) in one append."""
        jid = self.row.job_id
        events: list[Event] = []
        if self._progress is not None:
            events.append(self._progress)
        points, n = self._points, _POINTS_PER_EVENT
        events += [J.JobMetrics(job_id=jid, points=points[i:i + n]) for i in range(0, len(points), n)]
        if self._lines:
            events.append(J.JobLog(job_id=jid, lines=self._lines))
        self._progress, self._points, self._lines = None, [], []
        events += extra
        if events:
            self._append(self.stream, events)

    def _append(self, stream: str, events: list[Event], *, causation_id: str | None = None,
                correlation_id: str | None = None) -> None:
        """Every append of what the worker sent goes through here (a backend may add command ids)."""
        self.store.append(stream, events, causation_id=causation_id, correlation_id=correlation_id)

    async def _flush_loop(self) -> None:
        """Batch metrics, progress and log lines: at most one append per `flush_s`."""
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            self._flush()
            await anyio.sleep(self.flush_s)

    async def _stop_when_asked(self, proc: anyio.abc.Process | WarmProcess) -> None:
        await self._stop.wait()
        killpg(proc.pid, signal.SIGTERM)
        with anyio.move_on_after(self.grace_s):
            await proc.wait()
        if proc.returncode is None:
            self._forced = True
            killpg(proc.pid, signal.SIGKILL)

    async def _kill_if_lingering(self, proc: anyio.abc.Process | WarmProcess) -> None:
        """A worker that has answered gets the grace period to exit (threads, atexit), then SIGKILL."""
        with anyio.move_on_after(self.grace_s):
            await proc.wait()
        if proc.returncode is None:
            killpg(proc.pid, signal.SIGKILL)

    async def _reap(self) -> None:
        """Kill whatever is left of the process group and release the pipe."""
        if self._proc is not None:
            killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.aclose()

    def _stopped(self) -> Event | None:
        """The end of a job we stopped: cancelled, interrupted, or none (still queued) when the
        daemon stopped before its worker started."""
        if self._stop_reason == "cancel":
            return J.JobCancelled(job_id=self.row.job_id, forced=self._forced)
        if self._proc is None:
            return None
        return J.JobInterrupted(job_id=self.row.job_id, reason="daemon stopped")

    def _outcome(self, rc: int) -> Event | None:
        if self._stop_reason is not None:
            return self._stopped()
        if self._result is not None:
            return J.JobSucceeded(job_id=self.row.job_id, outputs=self._result,
                                  duration_s=round(time.monotonic() - self._started, 3))
        sig = signal_name(-rc) if rc < 0 else None
        if self._lost:
            error, cause = f"lost contact with the worker: {self._lost}", "lost"
        elif self._error is not None:
            error = str(self._error.get("error", "the operation raised"))
            cause = "oom" if error.startswith(_OUT_OF_MEMORY) else "exception"
        elif sig == "SIGKILL":
            oom = oom_kills() > self._oom_before
            error = "killed by the kernel's out-of-memory killer" if oom else "killed by SIGKILL (out of memory?)"
            cause = "oom" if oom else "signal"
        elif sig is not None:
            error, cause = f"worker died from {sig} ({signal.strsignal(-rc) or 'unknown signal'})", "signal"
        else:
            error, cause = f"worker exited with status {rc} before returning a result", "exit"
        return self._failed(error, cause=cause, exit_code=rc if rc >= 0 else None, sig=sig, raised=self._error)

    def _failed(self, error: str, *, cause: str, exit_code: int | None = None, sig: str | None = None,
                raised: dict[str, Any] | None = None) -> J.JobFailed:
        """The JobFailed event; `raised` is the worker's `error` message when the operation raised."""
        raised = raised or {}
        problems = raised.get("problems")
        return J.JobFailed(job_id=self.row.job_id, error=error, cause=cause, exit_code=exit_code, signal=sig,
                           traceback=str(raised.get("traceback") or ""), last_lines=tail_lines(self.log_path),
                           error_type=str(raised.get("error_type") or ""), message=str(raised.get("message") or ""),
                           hint=str(raised["hint"]) if raised.get("hint") else None,
                           problems=[p for p in problems if isinstance(p, dict)] if isinstance(problems, list) else [])
