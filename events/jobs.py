"""Events of a job: one plugin operation run in its own worker process."""

from __future__ import annotations

from typing import Any

from tunelog.events.base import Event


class JobQueued(Event, frozen=True, tag="job-queued"):
    """A job was accepted and waits for a slot."""

    job_id: str
    """Job id (also the stream id suffix)."""
    plugin: str
    """Plugin name."""
    operation: str
    """Operation name within the plugin."""
    params: dict[str, Any]
    """Fully resolved parameters (defaults applied)."""
    code_hash: str
    """Code hash of the plugin version the job will run."""
    plugin_version: str
    """Manifest version of that plugin."""
    inputs: dict[str, Any] = {}
    """Input port values: artifact sha256 references or plain values."""
    resource: str = "cpu"
    """Slot kind it needs: `cpu` or `gpu`."""
    devices: int = 1
    """Slots it occupies at once; more than one runs the worker under a distributed launcher."""
    resume_of: str | None = None
    """Job id this job resumes from (its latest checkpoint), if any."""
    run_id: str | None = None
    """The run this job belongs to, if it is part of one."""
    resume_checkpoint: str | None = None
    """sha256 of the checkpoint of `resume_of` to start from (a fork at an earlier step); None: its latest."""
    nodes: int = 0
    """Machines to spread its `devices` over (Ray backend); 0: wherever they fit."""
    gpu_type: str = ""
    """The GPU model it asks for (Ray `accelerator_type`, e.g. A100); empty: any."""
    uses: dict[str, str] = {}
    """Plugin name -> code hash of other plugins whose operations the job calls (pinned by its run)."""


class JobStarted(Event, frozen=True, tag="job-started"):
    """A worker process was started for the job."""

    job_id: str
    """Job id."""
    pid: int
    """Worker process id (also its process group id)."""
    slot: str
    """Resource slot it occupies, e.g. `cpu0` or `gpu1`."""
    log_path: str
    """File that receives the worker's stdout and stderr."""
    run_id: str | None = None
    """The run the job belongs to, if any (its node shows `running` from here on)."""


class JobProgress(Event, frozen=True, tag="job-progress"):
    """Where a job stands; sent by the worker, appended in batches."""

    job_id: str
    """Job id."""
    step: int
    """Steps done."""
    total: int | None = None
    """Steps in all, when known."""
    message: str = ""
    """Short human note on its first line, e.g. `loading model`; lines after it, if any, hold details
    an operation documents for readers that know it (evaluate.generate's answers so far)."""


def progress_note(message: str) -> str:
    """What a progress message says to show as the job's note: its first line."""
    return message.partition("\n")[0]


class JobMetrics(Event, frozen=True, tag="job-metrics"):
    """A batch of metric points (loss, lr, tokens/s...) from a worker."""

    job_id: str
    """Job id."""
    points: list[dict[str, Any]]
    """Each point has `step` and named values, in step order."""


class JobLog(Event, frozen=True, tag="job-log"):
    """Lines a worker logged through its context (batched)."""

    job_id: str
    """Job id."""
    lines: list[str]
    """The lines, oldest first."""


class JobArtifact(Event, frozen=True, tag="job-artifact"):
    """A job stored a file or folder in the content-addressed artifact store."""

    job_id: str
    """Job id."""
    name: str
    """Output name, e.g. `adapter`."""
    sha256: str
    """Content hash (the artifact's address)."""
    size: int
    """Bytes stored."""
    kind: str = "file"
    """`file` or `dir`."""


class JobCheckpointed(Event, frozen=True, tag="job-checkpointed"):
    """A worker saved a checkpoint it can be resumed from."""

    job_id: str
    """Job id."""
    step: int
    """Optimizer step the checkpoint was taken after."""
    sha256: str
    """Artifact holding the checkpoint folder."""
    size: int
    """Bytes stored."""


class JobCancelRequested(Event, frozen=True, tag="job-cancel-requested"):
    """Someone asked to cancel the job."""

    job_id: str
    """Job id."""
    reason: str = "cancelled by user"
    """Why."""


class JobSucceeded(Event, frozen=True, tag="job-succeeded"):
    """Terminal: the operation returned normally."""

    job_id: str
    """Job id."""
    outputs: dict[str, Any]
    """Output port values (artifact references or plain values)."""
    duration_s: float
    """Wall time from start to end."""


class JobFailed(Event, frozen=True, tag="job-failed"):
    """Terminal: the operation raised, the worker died, or it could not start."""

    job_id: str
    """Job id."""
    error: str
    """One line a user can act on (the summary; `message`, `problems` and `hint` have the rest)."""
    cause: str
    """`exception`, `signal`, `exit`, `oom`, `lost`, `start` or `artifact` (one missing or damaged in the
    Ray backend's storage)."""
    exit_code: int | None = None
    """Worker exit status, if it exited."""
    signal: str | None = None
    """Name of the signal that ended the worker, if any."""
    traceback: str = ""
    """Python traceback, when the operation raised."""
    last_lines: list[str] = []
    """Last lines of the worker's log."""
    error_type: str = ""
    """Class name of the exception the operation raised, e.g. `ValidationError`; empty when it did not raise."""
    message: str = ""
    """The whole error message, every line of it (empty when it did not raise)."""
    hint: str | None = None
    """What to do about it, when the error said."""
    problems: list[dict[str, Any]] = []
    """Every problem of the error's problem list (e.g. `{"where": "row 3", "message": ...}`), in its order."""


class JobCancelled(Event, frozen=True, tag="job-cancelled"):
    """Terminal: the job was cancelled."""

    job_id: str
    """Job id."""
    forced: bool = False
    """True when the worker ignored SIGTERM and was killed after the grace period."""


class JobInterrupted(Event, frozen=True, tag="job-interrupted"):
    """Terminal for this attempt: the daemon stopped or crashed while the job was running or queued."""

    job_id: str
    """Job id."""
    reason: str
    """Why, e.g. `daemon restarted`."""


TERMINAL = frozenset({"job-succeeded", "job-failed", "job-cancelled", "job-interrupted"})
"""Tags after which a job's worker never runs again."""
