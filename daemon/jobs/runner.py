"""The job runner: a durable FIFO queue on resource slots, one worker process per job.

The queue is the `jobs` projection itself (rows in state `queued`, in the order of their
JobQueued events): nothing lives only in memory, so a crash or a stop loses no job. A job that
never got a worker is still queued when the next daemon starts, in its place, and runs then. On
start the runner reconciles what had started: a job the previous daemon left running (its worker
is killed if it survived) becomes interrupted, and a new job with `resume_of` can continue it from
its last checkpoint.

Commands (`submit`, `cancel`, `find`) are plain functions callable from any thread; `run` is the
scheduler task. Nothing here imports torch: workers do (see `daemon/jobs/worker.py`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel

from tunelog.daemon.jobs.attempt import Attempt
from tunelog.daemon.jobs.processes import kill_leftover
from tunelog.daemon.jobs.warm import WarmWorkers
from tunelog.daemon.paths import Paths
from tunelog.events import jobs as J
from tunelog.events.base import Event
from tunelog.events.errors import ConflictError, JobError, NotFoundError, ValidationError
from tunelog.events.state import JOB_ACTIVE, JobRow, JobState
from tunelog.events.streams import job_stream, stream_kind
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.base import EventStore
from tunelog.store.tables import Tables

if TYPE_CHECKING:
    from tunelog.daemon.jobs.ray_backend import RayBackend

RESOURCES = ("cpu", "gpu", "any")


def detect_slots(env: Mapping[str, str] = os.environ) -> list[str]:
    """One slot per GPU (`gpu<id>`), or a single `cpu0` slot when there is none.

    GPUs come from `TUNELOG_GPUS` (a count such as `2`, or ids such as `0,3`), else from
    `CUDA_VISIBLE_DEVICES`, else from `nvidia-smi -L`: never from importing torch.
    """
    given = env.get("TUNELOG_GPUS", "").strip()
    if given.isdigit():
        ids = [str(i) for i in range(int(given))]
    elif given:
        ids = [g.strip() for g in given.split(",") if g.strip()]
    elif env.get("CUDA_VISIBLE_DEVICES", "").strip():
        ids = [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    else:
        ids = [str(i) for i in range(_nvidia_smi_count())]
    return [f"gpu{i}" for i in ids] or ["cpu0"]


def _nvidia_smi_count() -> int:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


_last_ms = 0
_id_lock = threading.Lock()


def new_job_id() -> str:
    """A job id that sorts by creation: milliseconds in hex (strictly increasing here), then randomness."""
    global _last_ms
    with _id_lock:
        _last_ms = max(int(time.time() * 1000), _last_ms + 1)
        return f"{_last_ms:011x}{secrets.token_hex(4)}"


class JobRunner:
    """Schedules queued jobs on slots and supervises their worker processes."""

    def __init__(self, store: EventStore, paths: Paths, artifacts: ArtifactStore, *,
                 slots: list[str] | None = None, grace_s: float = 10.0, flush_s: float = 0.2,
                 python: str = sys.executable, backend: RayBackend | None = None, warm: WarmWorkers | None = None):
        self.store, self.paths, self.artifacts = store, paths, artifacts
        self.tables = Tables(store)
        self.backend = backend  # None: local worker processes
        self.local_slots = list(slots) if slots is not None else detect_slots()
        """Slots of local worker processes: every job's without a backend, else those of `ray_local_ops`."""
        self.slots = (backend.slots + self.local_slots) if backend is not None else self.local_slots
        if not self.slots:
            raise ValidationError.collect("the job runner needs slots", [("slots", "give at least one, e.g. cpu0")])
        self.grace_s, self.flush_s, self.python = grace_s, flush_s, python
        self.warm = warm
        """The warm worker host CPU jobs fork from (None: every worker starts cold)."""
        self._boot_head = store.head()  # jobs queued after this are ours, not a dead daemon's
        self._lock = threading.Lock()  # guards the claim of a queued job against a concurrent cancel
        self._attempts: dict[str, Attempt] = {}
        self._busy: dict[str, str] = {}  # slot -> job id
        self._stopping = False
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._thread: int | None = None
        self._wake: anyio.Event | None = None
        self._reattach: list[JobRow] = []

    # -- commands ----------------------------------------------------------------------------

    def submit(self, *, plugin: str, operation: str, params: dict[str, object], inputs: dict[str, object],
               code_hash: str, plugin_version: str, resource: str, command_id: str | None = None,
               run_id: str | None = None, resume_of: str | None = None,
               resume_checkpoint: str | None = None, devices: int = 1, nodes: int = 0,
               gpu_type: str = "", uses: dict[str, str] | None = None) -> JobRow:
        """Queue a job (JobQueued) and wake the scheduler; a retried `command_id` returns the same job.

        `devices` > 1 occupies that many slots at once and runs the worker under a distributed
        launcher (accelerate launch on GPUs, torchrun on CPU slots).

        `resume_of` continues that job from its latest checkpoint, or from `resume_checkpoint` (the
        sha256 of one of its earlier checkpoints) when given.

        `nodes` and `gpu_type` are for a Ray cluster (see `check_devices`).
        """
        done = self._answered(command_id)
        if done is not None:
            return done
        if self._stopping:
            raise JobError("the daemon is stopping and takes no new jobs", hint="submit again after it restarts")
        where = self.local_rule(plugin, operation)
        self._check_submit(resource=resource, resume_of=resume_of, resume_checkpoint=resume_checkpoint,
                           local=self.backend is None or where is not None)
        self.check_devices(resource=resource, devices=devices, nodes=nodes, gpu_type=gpu_type, where=where)
        job_id = new_job_id()
        self.store.append(job_stream(job_id), [J.JobQueued(
            job_id=job_id, plugin=plugin, operation=operation, params=params, inputs=inputs, code_hash=code_hash,
            plugin_version=plugin_version, resource=resource, resume_of=resume_of, run_id=run_id,
            resume_checkpoint=resume_checkpoint, devices=devices, nodes=nodes, gpu_type=gpu_type,
            uses=dict(uses or {}),
        )], expected_version=0, command_id=command_id)
        self._in_loop(self._wake_up)
        return self._row(job_id)

    def local_rule(self, plugin: str, operation: str) -> str | None:
        """With the Ray backend, the `ray_local_ops` pattern that keeps this operation local (else None)."""
        return self.backend.choice.runs_locally(plugin, operation) if self.backend is not None else None

    def check_devices(self, *, resource: str, devices: int, nodes: int = 0, gpu_type: str = "",
                      where: str | None = "local") -> None:
        """Refuse a job that asks for what it cannot get: more slots of its kind than this daemon
        has, or, on this machine, several nodes or a GPU model. `where`: None when the job goes to
        the Ray cluster (which has the devices: Ray places them, see `ray_backend.ray_request`)."""
        if devices < 1:
            raise ValidationError.collect("cannot queue the job", [("devices", "must be at least 1")])
        if nodes < 0 or (nodes and devices % nodes):
            raise ValidationError.collect("cannot queue the job", [
                ("nodes", f"{devices} devices do not spread evenly over {nodes} nodes")],
                hint="make devices a multiple of nodes, or set nodes to 0 (wherever they fit)")
        if self.backend is not None and where is None:
            return
        to_ray = "or run it on a Ray cluster: tunectl daemon config set backend ray://HOST:PORT" + (
            f" and take {where} out of ray_local_ops" if self.backend is not None else "")
        if nodes > 1:
            raise ValidationError.collect("cannot queue the job", [
                ("nodes", f"asks for {nodes} nodes and local jobs run on this one machine")],
                hint=f"set nodes to 0 or 1, {to_ray}")
        if gpu_type:
            raise ValidationError.collect("cannot queue the job", [
                ("gpu_type", f"asks for GPU type {gpu_type!r} and local jobs cannot choose a GPU model")],
                hint=f"leave gpu_type empty (any GPU of this machine), {to_ray}")
        usable = _usable(resource, self.local_slots)
        if devices > len(usable):
            kinds = "GPU" if any(s.startswith("gpu") for s in usable) else "CPU"
            raise JobError(f"the job needs {devices} {kinds} slots and this daemon has {len(usable)}",
                           hint="lower `devices`, or give the daemon more slots (TUNELOG_SLOTS, TUNELOG_GPUS)")

    def _check_submit(self, *, resource: str, resume_of: str | None, resume_checkpoint: str | None,
                      local: bool) -> None:
        if resource not in RESOURCES:
            raise ValidationError.collect("cannot queue the job", [("resource", f"{resource!r} is not one of "
                                                                                f"{', '.join(RESOURCES)}")])
        if resource == "gpu" and local and not any(s.startswith("gpu") for s in self.local_slots):
            raise JobError("the job needs a GPU and this machine has none",
                           hint="set TUNELOG_GPUS if nvidia-smi cannot see your GPUs")
        if resume_of is not None:
            prev = self.tables.jobs.get(resume_of)
            if prev is None:
                raise NotFoundError(f"no job {resume_of} to resume")
            if not prev.checkpoint_sha256:
                raise JobError(f"job {resume_of} saved no checkpoint, so it cannot be resumed",
                               hint="run it again from the start")
        if resume_checkpoint is not None:
            self._check_checkpoint(resume_of, resume_checkpoint)

    def _check_checkpoint(self, resume_of: str | None, sha256: str) -> None:
        """A chosen checkpoint must be one the resumed job recorded."""
        if resume_of is None:
            raise ValidationError.collect("cannot queue the job", [
                ("resume_checkpoint", "needs resume_of: the job that saved the checkpoint")])
        saved = [e.event for e in self.store.read(stream=job_stream(resume_of), types=["job-checkpointed"])
                 if isinstance(e.event, J.JobCheckpointed)]
        if not any(c.sha256 == sha256 for c in saved):
            steps = ", ".join(str(c.step) for c in saved) or "none"
            raise ValidationError.collect("cannot queue the job", [
                ("resume_checkpoint", f"{sha256[:12]} is not a checkpoint of job {resume_of} (its steps: {steps})")])

    def cancel(self, job_id: str, *, command_id: str | None = None, reason: str = "cancelled by user") -> JobRow:
        """Cancel a job: a queued one at once, a running one by SIGTERM, then SIGKILL after the grace period."""
        done = self._answered(command_id)
        if done is not None:
            return done
        job_id = self.find(job_id).job_id
        for _ in range(100):  # the job's own events may land between our read and our append
            try:
                attempt = self._append_cancel(job_id, reason=reason, command_id=command_id)
                break
            except ConflictError:
                continue
        else:
            raise JobError(f"job {job_id} changed too often to cancel it", hint="retry the cancel")
        if attempt is not None:
            self._in_loop(lambda: attempt.request_stop("cancel"))
        return self._row(job_id)

    def _append_cancel(self, job_id: str, *, reason: str, command_id: str | None) -> Attempt | None:
        """Record the cancel request (and, for a job no worker has claimed, the cancel itself)."""
        stream = job_stream(job_id)
        with self._lock:
            version = self.store.stream_version(stream)
            row, attempt = self._row(job_id), self._attempts.get(job_id)
            if row.state not in JOB_ACTIVE:
                raise JobError(f"job {job_id} has already ended ({row.state})")
            if attempt is None and row.state == JobState.RUNNING:
                raise JobError(f"job {job_id} is not supervised by this daemon yet", hint="retry in a moment")
            events: list[Event] = [J.JobCancelRequested(job_id=job_id, reason=reason)]
            if attempt is None:
                events.append(J.JobCancelled(job_id=job_id, forced=False))
            self.store.append(stream, events, expected_version=version, command_id=command_id)
            return attempt

    def find(self, prefix: str) -> JobRow:
        """A job by id or unique id prefix."""
        if not prefix:
            raise ValidationError.collect("no job id given", [("job", "give a job id or a prefix of one")])
        row = self.tables.jobs.get(prefix)
        if row is not None:
            return row
        matches = self.tables.jobs.with_prefix(prefix, limit=11)
        if not matches:
            raise NotFoundError(f"no job matches {prefix!r}", hint="list jobs with `tunectl jobs`")
        if len(matches) > 1:
            many = "more than 10" if len(matches) > 10 else str(len(matches))
            raise ValidationError.collect(f"{prefix!r} matches {many} jobs",
                                          [("job", r.job_id) for r in matches[:10]], hint="give more of the id")
        return matches[0]

    def _answered(self, command_id: str | None) -> JobRow | None:
        """The job a command with this id already acted on, if it ran before (idempotent retry)."""
        if command_id is None:
            return None
        done = self.store.append(job_stream(""), [], command_id=command_id)  # an empty append only looks the id up
        if not done:
            return None
        job_id = getattr(done[0].event, "job_id", None)
        if stream_kind(done[0].stream) != "job" or job_id is None:
            raise ConflictError(f"command id {command_id!r} was already used for another command")
        return self._row(job_id)

    def _row(self, job_id: str) -> JobRow:
        row = self.tables.jobs.get(job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        return row

    # -- the scheduler -----------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Reconcile, then start queued jobs on free slots until cancelled."""
        self._token, self._thread = anyio.lowlevel.current_token(), threading.get_ident()
        self._wake = wake = anyio.Event()
        try:
            self.reconcile()
            async with anyio.create_task_group() as tg:
                if self.warm is not None:
                    await tg.start(self.warm.run)
                self._start_reattached(tg)
                task_status.started()
                while True:
                    self._start_ready(tg)
                    await wake.wait()
                    self._wake = wake = anyio.Event()
        finally:
            self._token = self._thread = None

    def reconcile(self) -> list[str]:
        """Mark every job a previous daemon left running as interrupted; returns their ids.

        Queued jobs stay queued: the scheduler starts them in their order.
        """
        found = []
        for row in self.tables.jobs.select(order="queued_position", where={"state": JobState.RUNNING}):
            if row.queued_position <= self._boot_head and row.job_id not in self._attempts:
                if self.backend is not None and row.slot in self.backend.slots:
                    self._reattach.append(row)  # still running on the cluster: follow it again
                    continue
                if row.pid:
                    kill_leftover(row.pid, row.job_id, self.paths.jobs / row.job_id)
                self.store.append(job_stream(row.job_id), [J.JobInterrupted(job_id=row.job_id,
                                                                             reason="daemon restarted")])
                found.append(row.job_id)
        return found

    def _start_ready(self, tg: anyio.abc.TaskGroup) -> None:
        """Claim queued jobs, oldest first, for the free slots that can run them."""
        with self._lock:
            free = [s for s in self.slots if s not in self._busy]
            if self._stopping or not free:
                return
            queued = self.tables.jobs.select(order="queued_position", where={"state": JobState.QUEUED})
            for row in (r for r in queued if r.job_id not in self._attempts):
                if self.backend is not None and self.local_rule(row.plugin, row.operation) is None:
                    slots = [s for s in free if s in self.backend.slots][:1]
                else:
                    slots = _pick_slots(row.resource, [s for s in free if s in self.local_slots], row.devices)
                if not slots:
                    continue
                for slot in slots:
                    free.remove(slot)
                    self._busy[slot] = row.job_id
                self._launch(tg, row, ",".join(slots))
                if not free:
                    break

    def _launch(self, tg: anyio.abc.TaskGroup, row: JobRow, slot: str, *, reattach: bool = False) -> None:
        """Supervise one job on its slot(s): a local worker process, or an actor on the Ray cluster."""
        attempt: Attempt
        if self.backend is not None and slot in self.backend.slots:
            attempt = self.backend.attempt(row, slot, store=self.store, grace_s=self.grace_s, flush_s=self.flush_s,
                                           reattach=reattach)
        else:
            attempt = Attempt(row, slot, store=self.store, paths=self.paths, python=self.python,
                              grace_s=self.grace_s, flush_s=self.flush_s, warm=self.warm)
            rule = self.local_rule(row.plugin, row.operation)
            if rule is not None:
                attempt.note(f"tunelog: runs on this machine, not the Ray cluster: {row.plugin}.{row.operation} "
                             f"matches ray_local_ops {rule!r} (tunectl daemon config set ray_local_ops ...)")
        self._attempts[row.job_id] = attempt
        tg.start_soon(self._supervise, attempt, name=f"job {row.job_id}")

    def _start_reattached(self, tg: anyio.abc.TaskGroup) -> None:
        """Follow the Ray jobs a previous daemon left running, each on the slot it had."""
        with self._lock:
            for row in self._reattach:
                self._busy[str(row.slot)] = row.job_id
                self._launch(tg, row, str(row.slot), reattach=True)
            self._reattach = []

    def backend_status(self) -> dict[str, object]:
        """Where jobs run: `{"kind": "local"}`, or the Ray cluster's nodes and free CPUs and GPUs."""
        if self.backend is None:
            return {"kind": "local"}
        try:
            return self.backend.status()
        except Exception as exc:  # the cluster may be unreachable: status must still answer
            return {"kind": "ray", "address": self.backend.address, "error": str(exc).splitlines()[0]}

    async def _supervise(self, attempt: Attempt) -> None:
        try:
            await attempt.run()
        finally:
            with self._lock:
                self._attempts.pop(attempt.row.job_id, None)
                for slot in attempt.slot.split(","):
                    self._busy.pop(slot, None)
            self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _in_loop(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the scheduler's event loop thread (now, if this is that thread)."""
        token = self._token
        if token is None:
            return  # not running: `run` looks at the queue when it starts
        if threading.get_ident() == self._thread:
            fn()
        else:
            anyio.from_thread.run_sync(fn, token=token)

    @property
    def stopping(self) -> bool:
        """Whether the daemon is stopping: no job is taken any more, the next daemon takes them."""
        return self._stopping

    async def shutdown(self) -> None:
        """Stop starting jobs; stop running workers (SIGTERM, grace, SIGKILL) and mark them interrupted.

        A job claimed whose worker had not started yet stays queued for the next daemon.
        """
        with self._lock:
            self._stopping = True
            attempts = list(self._attempts.values())
        for attempt in attempts:
            attempt.request_stop("shutdown")
        with anyio.move_on_after(self.grace_s + 5):
            while self._attempts:
                await anyio.sleep(0.02)


def job_backend(paths: Paths) -> RayBackend | None:
    """The Ray backend when the daemon's settings choose it (see `daemon/jobs/backend.py`), else None."""
    from tunelog.daemon.jobs.backend import choose_backend

    choice = choose_backend(paths)
    if choice.kind != "ray":
        return None
    from tunelog.daemon.jobs.ray_backend import RayBackend

    return RayBackend(choice, paths)


def _usable(resource: str, slots: list[str]) -> list[str]:
    """Slots that can hold this resource's processes, best first. Several processes of one job are
    all GPU or all CPU: a job never mixes them."""
    gpus = [s for s in slots if s.startswith("gpu")]
    cpus = [s for s in slots if not s.startswith("gpu")]
    if resource == "gpu":
        return gpus
    if resource == "cpu":
        return cpus or gpus
    return gpus or cpus


def _pick_slots(resource: str, free: list[str], n: int) -> list[str]:
    """`n` free slots of one kind for the resource, or [] when there are not enough now."""
    usable = _usable(resource, free)
    return usable[:n] if len(usable) >= n else []
