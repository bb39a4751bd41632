"""Derived state as pure folds: `evolve(row, envelope) -> row`.

No clock, no I/O, no randomness: timestamps come from the envelope. The store keeps one table
per projection, updates it in the same transaction as each append, and can rebuild it from the
log with the same functions, so live and rebuilt state cannot disagree.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import msgspec

from tunelog.events import jobs as J
from tunelog.events import plugins as P
from tunelog.events import system as S
from tunelog.events.base import Stamped

replace = msgspec.structs.replace


class JobState(enum.StrEnum):
    """Where a job stands (`JobRow.state`); members equal the strings stored in the log."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


JOB_ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})
"""Job states that may still change."""
JOB_ENDED = frozenset(JobState) - JOB_ACTIVE
"""Job states that are final."""


class DaemonRow(msgspec.Struct, kw_only=True):
    """The daemon's own record (one row, key `daemon`)."""

    key: str = "daemon"
    pid: int = 0
    version: str = ""
    socket: str = ""
    data_dir: str = ""
    running: bool = False
    starts: int = 0
    started_at: float = 0.0
    stopped_at: float | None = None


class PluginRow(msgspec.Struct, kw_only=True):
    """A plugin and the code version jobs get when they ask for it."""

    key: str
    name: str
    status: str
    """`loaded`, `failed` (last change broke; `code_hash` still serves) or `removed`."""
    path: str
    source: str = "user"
    version: str = ""
    code_hash: str = ""
    """Hash of the last good code; empty if it never loaded."""
    failed_hash: str = ""
    error: str = ""
    traceback: str = ""
    problems: list[dict[str, Any]] = []
    manifest: dict[str, Any] = {}
    loads: int = 0
    updated_at: float = 0.0


class JobRow(msgspec.Struct, kw_only=True):
    """A job and where it stands."""

    key: str
    job_id: str
    plugin: str
    operation: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    code_hash: str
    plugin_version: str
    resource: str
    devices: int = 1
    """Slots the job occupies (processes of its worker)."""
    nodes: int = 0
    """Machines its devices are spread over on a Ray cluster (0: wherever they fit)."""
    gpu_type: str = ""
    """GPU model asked for on a Ray cluster (empty: any)."""
    state: str
    """A `JobState`: `queued`, `running`, `succeeded`, `failed`, `cancelled` or `interrupted`."""
    queued_position: int
    """Log position of the JobQueued event: the queue is FIFO by it."""
    queued_at: float
    resume_of: str | None = None
    resume_checkpoint: str | None = None
    """A chosen checkpoint of `resume_of` (else its latest)."""
    run_id: str | None = None
    uses: dict[str, str] = {}
    """Plugin name -> code hash of other plugins whose operations the job calls."""
    cancel_requested: bool = False
    pid: int | None = None
    slot: str | None = None
    log_path: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    step: int = 0
    total: int | None = None
    message: str = ""
    metrics: dict[str, Any] = {}
    """The latest value of each metric."""
    checkpoint_step: int | None = None
    checkpoint_sha256: str | None = None
    artifacts: dict[str, str] = {}
    """Output name -> sha256 of artifacts stored so far."""
    outputs: dict[str, Any] = {}
    error: str = ""
    cause: str = ""
    traceback: str = ""
    last_lines: list[str] = []
    error_type: str = ""
    error_message: str = ""
    """A failed job's whole error message, JobFailed's `message` (`error` is its first line; `message`
    above is the progress note)."""
    hint: str | None = None
    problems: list[dict[str, Any]] = []
    """Every problem of a failed job's problem list."""


Row = DaemonRow | PluginRow | JobRow


def evolve_daemon(row: DaemonRow | None, env: Stamped) -> DaemonRow | None:
    """Fold daemon events."""
    row = row or DaemonRow()
    e = env.event
    if isinstance(e, S.DaemonStarted):
        return replace(row, pid=e.pid, version=e.version, socket=e.socket, data_dir=e.data_dir,
                       running=True, starts=row.starts + 1, started_at=env.time, stopped_at=None)
    if isinstance(e, S.DaemonStopped):
        return replace(row, running=False, stopped_at=env.time)
    return row


def evolve_plugin(row: PluginRow | None, env: Stamped) -> PluginRow | None:
    """Fold plugin events."""
    e = env.event
    if isinstance(e, P.PluginLoaded | P.PluginReloaded):
        return PluginRow(key=e.name, name=e.name, status="loaded", path=e.path, source=e.source,
                         version=e.version, code_hash=e.code_hash, manifest=e.manifest,
                         loads=(row.loads if row else 0) + 1, updated_at=env.time)
    if isinstance(e, P.PluginFailed):
        base = row or PluginRow(key=e.name, name=e.name, status="failed", path=e.path)
        return replace(base, status="failed", path=e.path, failed_hash=e.code_hash, error=e.error,
                       traceback=e.traceback, problems=e.problems, updated_at=env.time)
    if isinstance(e, P.PluginRemoved) and row is not None:
        return replace(row, status="removed", updated_at=env.time)
    return row


def _queued(row: JobRow | None, e: J.JobQueued, env: Stamped) -> JobRow:
    return JobRow(key=e.job_id, job_id=e.job_id, plugin=e.plugin, operation=e.operation, params=e.params,
                  inputs=e.inputs, code_hash=e.code_hash, plugin_version=e.plugin_version, resource=e.resource,
                  devices=e.devices, nodes=e.nodes, gpu_type=e.gpu_type, state="queued", queued_position=env.position, queued_at=env.time, resume_of=e.resume_of,
                  resume_checkpoint=e.resume_checkpoint, run_id=e.run_id, uses=e.uses)


def _metrics(row: JobRow, e: J.JobMetrics, env: Stamped) -> JobRow:
    if not e.points:
        return row
    metrics = row.metrics
    for p in e.points:
        metrics = metrics | p
    return replace(row, metrics=metrics, step=max(row.step, int(metrics.get("step", row.step))))


_JOB_STEPS: dict[type, Callable[[Any, Any, Stamped], JobRow]] = {
    J.JobStarted: lambda row, e, env: replace(row, state="running", pid=e.pid, slot=e.slot, log_path=e.log_path,
                                              started_at=env.time),
    J.JobProgress: lambda row, e, env: replace(row, step=e.step, total=e.total if e.total is not None else row.total,
                                               message=e.message or row.message),
    J.JobMetrics: _metrics,
    J.JobArtifact: lambda row, e, env: replace(row, artifacts={**row.artifacts, e.name: e.sha256}),
    J.JobCheckpointed: lambda row, e, env: replace(row, checkpoint_step=e.step, checkpoint_sha256=e.sha256),
    J.JobCancelRequested: lambda row, e, env: replace(row, cancel_requested=True),
    J.JobSucceeded: lambda row, e, env: replace(row, state="succeeded", outputs=e.outputs, ended_at=env.time),
    J.JobFailed: lambda row, e, env: replace(row, state="failed", error=e.error, cause=e.cause,
                                             traceback=e.traceback, last_lines=e.last_lines, ended_at=env.time,
                                             error_type=e.error_type, error_message=e.message, hint=e.hint,
                                             problems=e.problems),
    J.JobCancelled: lambda row, e, env: replace(row, state="cancelled", ended_at=env.time),
    J.JobInterrupted: lambda row, e, env: replace(row, state="interrupted", error=e.reason, ended_at=env.time),
}


def evolve_job(row: JobRow | None, env: Stamped) -> JobRow | None:
    """Fold job events (a table of small steps: rebuilds fold millions of these)."""
    e = env.event
    if type(e) is J.JobQueued:
        return _queued(row, e, env)
    if row is None:
        return None
    step = _JOB_STEPS.get(type(e))
    return row if step is None else step(row, e, env)


def evolve_jobs(row: JobRow | None, envs: Iterable[Stamped]) -> JobRow | None:
    """`evolve_job` over consecutive events of one job, each run of JobMetrics merged into one
    copy of the metrics dict: a log is mostly metrics, and a dict copy per event would dominate a
    rebuild. One pass, names bound once, no `max` call: this loop runs once per event."""
    metrics: dict[str, Any] | None = None
    step = 0
    for env in envs:
        e = env.event
        if e.__class__ is J.JobMetrics and row is not None:
            points = e.points
            if points:
                if metrics is None:
                    metrics, step = dict(row.metrics), row.step
                    update, get = metrics.update, metrics.get
                for p in points:
                    update(p)
                latest = int(get("step", step))
                if latest > step:
                    step = latest
        else:
            if metrics is not None and row is not None:
                row, metrics = replace(row, metrics=metrics, step=step), None
            row = evolve_job(row, env)
    if metrics is not None and row is not None:
        row = replace(row, metrics=metrics, step=step)
    return row


class Fold(msgspec.Struct, frozen=True):
    """One projection: which events it reads, which row each touches, and how it changes."""

    table: str
    row_type: type[Any]
    tags: frozenset[str]
    key: Callable[[Stamped], str | None]
    """The row an event touches (None: none)."""
    evolve: Callable[[Any, Stamped], Any]
    """The pure fold: (row or None, event) -> row, or None to delete it."""
    evolve_many: Callable[[Any, Iterable[Stamped]], Any] | None = None
    """Optional, for rebuilds: fold consecutive events of one key at once. Must equal `evolve` one by one."""
    counted: tuple[str, ...] = ()
    """Row fields whose number of rows per value the store keeps up to date (`count_by`)."""
    indexes: tuple[tuple[str, ...], ...] = ()
    """Row fields the store indexes, each tuple one index: what `select` and `count_by` filter and
    order by, so a listing or a count costs what it returns, not the table's size."""

    def fold_many(self, row: Any, envs: Iterable[Stamped]) -> Any:
        """Fold consecutive events of one key: `evolve_many` if the fold has one, else one by one."""
        if self.evolve_many is not None:
            return self.evolve_many(row, envs)
        return functools.reduce(self.evolve, envs, row)


def _tags(*classes: type) -> frozenset[str]:
    return frozenset(str(c.__struct_config__.tag) for c in classes)  # type: ignore[attr-defined]


CORE_FOLDS: tuple[Fold, ...] = (
    Fold("daemon", DaemonRow, _tags(S.DaemonStarted, S.DaemonStopped), lambda env: "daemon", evolve_daemon),
    Fold("plugins", PluginRow, _tags(P.PluginLoaded, P.PluginReloaded, P.PluginFailed, P.PluginRemoved),
         attrgetter("event.name"), evolve_plugin),
    Fold("jobs", JobRow, _tags(J.JobQueued, J.JobStarted, J.JobProgress, J.JobMetrics, J.JobArtifact,
                               J.JobCheckpointed, J.JobCancelRequested, J.JobSucceeded, J.JobFailed,
                               J.JobCancelled, J.JobInterrupted),
         attrgetter("event.job_id"), evolve_job, evolve_jobs, counted=("state",),
         indexes=(("state", "queued_position"), ("queued_position",))),
)


def _run_key(env: Stamped) -> str | None:
    """The run an event touches: its `run_id` (a job outside any run has none)."""
    return getattr(env.event, "run_id", None)


def all_folds() -> tuple[Fold, ...]:
    """Every projection, in the order they are applied."""
    from tunelog.events import merges as M
    from tunelog.events import run_state as RS
    from tunelog.events import runs as R

    run_tags = _tags(J.JobStarted, R.RunSubmitted, R.NodeQueued, R.NodeCached, R.NodeCompleted, R.NodeFailed, R.NodeSkipped,
                     R.RunCancelRequested, R.RunResumed, R.RunFinished, R.TrainingStarted)
    return (*CORE_FOLDS,
            Fold("workflows", RS.WorkflowRow, _tags(R.WorkflowSaved), attrgetter("event.name"), RS.evolve_workflow),
            Fold("runs", RS.RunRow, run_tags, _run_key, RS.evolve_run,
                 indexes=(("state", "submitted_position"), ("submitted_position",))),
            Fold("cache", RS.CacheRow, _tags(R.NodeCompleted), attrgetter("event.cache_key"), RS.evolve_cache),
            Fold("adapters", RS.AdapterRow, _tags(R.NodeCompleted, M.AdapterMerged), RS._adapter_key,
                 RS.evolve_adapter, indexes=(("created_position",),)),
            Fold("models", RS.ModelRow, _tags(R.ModelAdded, R.ModelRemoved), attrgetter("event.name"),
                 RS.evolve_model))
