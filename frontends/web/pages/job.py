"""One job: its state and where it ran, the history of its states, the tail of its log (live),
and, when it failed, the whole error: message, cause, exit code or signal, traceback and the
last lines of its log."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from reactpy import component, hooks, html

from tunelog.events import jobs as J
from tunelog.events.base import Envelope
from tunelog.events.state import JobRow
from tunelog.events.streams import job_stream
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.pages.job_failure import failure_view
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import badge, compact, link, run_link, table, when

TAIL = 200
"""Log lines shown."""
QUIET = ("job-metrics", "job-log", "job-progress")
"""Event types left out of the state history (the charts, the log tail and the progress show them)."""


@dataclass
class LogTail:
    """The last TAIL log lines read so far, and the log position read up to."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    position: int = 0
    count: int = 0

    def read(self, ui: Ui, job_id: str) -> LogTail:
        for env in ui.services.store.read(after=self.position, stream=job_stream(job_id), types=["job-log"]):
            if isinstance(env.event, J.JobLog):
                self.lines.extend(env.event.lines)
                self.count += len(env.event.lines)
            self.position = env.position
        return self


def history_row(env: Envelope) -> tuple[str, list[Any]]:
    data = {k: v for k, v in msgspec.to_builtins(env.event).items() if k not in ("job_id", "traceback", "last_lines")}
    return str(env.position), [env.position, when(env.time), html.span({"className": "mono"}, env.type),
                               html.span({"className": "mono"}, compact(data, 160))]


def failure(job: JobRow, env: Envelope | None) -> Any:
    """The whole error of a failed job (message, hint, problems, log tail) and how the worker ended."""
    if env is None or not isinstance(env.event, J.JobFailed):
        return ""
    e = env.event
    how = [f"cause: {e.cause}"] + ([f"exit code {e.exit_code}"] if e.exit_code is not None else []) \
        + ([f"signal {e.signal}"] if e.signal else [])
    return html.section(
        {"className": "panel", "id": "job-error"},
        html.h2("Error"),
        failure_view(job),
        html.p({"className": "muted"}, " · ".join(how)),
        html.pre({"className": "json", "id": "job-traceback"}, e.traceback) if e.traceback else "",
    )


@component
def JobPage(ui: Ui, job_id: str, *, query: dict[str, str]) -> Any:
    """The job page; follows the log."""
    use_head(ui)
    tail = hooks.use_ref(LogTail()).current.read(ui, job_id)
    job = ui.services.tables.jobs.get(job_id)
    if job is None:
        return html.div(html.h1("Job not found"), html.p(f"No job {job_id!r}."), link("/", "All runs"))
    events = [e for e in ui.services.store.read(stream=job_stream(job_id)) if e.type not in QUIET]
    failed = next((e for e in reversed(events) if e.type == "job-failed"), None)
    progress = f"step {job.step}/{job.total}" if job.total else (f"step {job.step}" if job.step else "")
    where = [f"slot {job.slot}" if job.slot else "", f"pid {job.pid}" if job.pid else "",
             f"resource {job.resource}" + (f" ×{job.devices}" if job.devices > 1 else "")]
    return html.div(
        {"data-job": job.job_id, "data-state": job.state},
        html.h1("Job ", html.span({"className": "mono"}, job.job_id), " ", badge(job.state)),
        html.p(html.b(f"{job.plugin}.{job.operation}"), f" {job.plugin_version}  run ", run_link(job.run_id),
               f"  {progress}" + (f" {J.progress_note(job.message)}" if job.message else "")),
        html.p({"className": "muted"}, " · ".join(w for w in [
            f"queued {when(job.queued_at)}", f"started {when(job.started_at)}" if job.started_at else "",
            f"ended {when(job.ended_at)}" if job.ended_at else "", *where] if w)),
        failure(job, failed),
        html.section({"className": "panel"}, html.h2("State history"),
                     table(("POS", "TIME", "EVENT", "DETAIL"), [history_row(e) for e in events], id="job-history")),
        html.section({"className": "panel"},
                     html.h2("Log"),
                     html.p({"className": "muted", "id": "job-log-count", "data-lines": str(tail.count)},
                            f"{tail.count} lines" + (f", the last {len(tail.lines)} shown" if tail.count > TAIL else "")
                            + (f" · file {job.log_path}" if job.log_path else "")),
                     html.pre({"className": "json", "id": "job-log"}, "\n".join(tail.lines) or "(nothing yet)")),
    )
