"""The Ray job backend: each job runs the local worker entry point inside a detached Ray actor
(`ray_host.JobHost`) on some node of a cluster, and the daemon stays the only writer of the log.

- Storage (`ray_storage`): a folder every node mounts, or an object store at an fsspec URI.
- Code: the plugin snapshot a job runs is copied once, by its code hash, to the storage
  (`plugin-code/<hash>`); snapshots are immutable, so a hash names exactly one tree.
- Events: the daemon pulls the worker's numbered frames from the actor and appends them with
  command ids `ray:<job>:<frame id>`; an append whose id is in the log writes nothing, and a
  daemon that restarts resumes pulling after the highest id its log holds, so a frame is appended
  once, in order.
- Artifacts: workers write to the storage's artifact store (with an object store: their node's
  copy, uploaded before the daemon hears of it); each artifact or checkpoint a worker announces is
  copied into the daemon's store (verified by sha256) before its event is appended, and input
  artifacts are copied the other way before the job starts. One that is missing or damaged in the
  storage fails the job, naming it.
- Failures: cancel asks the actor to SIGTERM the worker (it checkpoints and returns) and SIGKILL it
  after the grace period; a dead actor (its node was lost) makes the job interrupted, so a run
  resumes it from its last checkpoint; a daemon that stops leaves its jobs running and re-attaches
  to them by name when it starts again.

ray is imported only here, and only when this backend is used.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

import anyio
import anyio.to_thread
import msgspec

from tunelog.daemon.jobs.attempt import Attempt
from tunelog.daemon.jobs.backend import BackendChoice
from tunelog.daemon.jobs.protocol import Message, WorkerSpec
from tunelog.daemon.jobs.ray_storage import ObjectStore, SharedFolder, announced, open_storage, shas
from tunelog.daemon.paths import Paths
from tunelog.events import jobs as J
from tunelog.events.base import Event
from tunelog.events.errors import JobError
from tunelog.events.state import JobRow
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.base import EventStore

log = logging.getLogger(__name__)

NAMESPACE = "tunelog"
_decode = msgspec.msgpack.Decoder(Message).decode


class RayBackend:
    """A connection to one Ray cluster and the storage its nodes and the daemon reach."""

    kind = "ray"

    def __init__(self, choice: BackendChoice, paths: Paths):
        assert choice.shared is not None
        self.choice, self.address, self.paths = choice, choice.address, paths
        self.location = choice.shared
        self.storage: SharedFolder | ObjectStore = open_storage(choice.shared)
        self.slots = [f"ray{i}" for i in range(choice.max_jobs)]
        self._lock = threading.Lock()
        self._actor_class: Any = None

    def connect(self) -> None:
        """Join the cluster as a driver (once; blocking: call it from a thread)."""
        with self._lock:
            import ray

            if not ray.is_initialized():
                self.storage.prepare()
                ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False,
                         logging_level=logging.WARNING)
            if self._actor_class is None:
                from tunelog.daemon.jobs.ray_host import JobHost

                self._actor_class = ray.remote(JobHost)

    def actor_name(self, job_id: str) -> str:
        return f"tunelog-job-{job_id}"

    def status(self) -> dict[str, Any]:
        """The cluster: its nodes with their CPUs and GPUs, and what is free now."""
        import ray

        self.connect()
        nodes = [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "alive": bool(n["Alive"]),
                  "cpus": n["Resources"].get("CPU", 0), "gpus": n["Resources"].get("GPU", 0)}
                 for n in ray.nodes()]  # type: ignore[no-untyped-call]
        free = ray.available_resources()  # type: ignore[no-untyped-call]
        alive = [n for n in nodes if n["alive"]]
        return {"kind": "ray", "address": self.address, "shared": self.storage.label,
                "local_ops": list(self.choice.local_ops),
                "nodes": nodes, "cpus": sum(n["cpus"] for n in alive), "gpus": sum(n["gpus"] for n in alive),
                "cpus_free": free.get("CPU", 0), "gpus_free": free.get("GPU", 0)}

    def attempt(self, row: JobRow, slot: str, *, store: EventStore, grace_s: float, flush_s: float,
                reattach: bool = False) -> RayAttempt:
        return RayAttempt(row, slot, backend=self, store=store, grace_s=grace_s, flush_s=flush_s, reattach=reattach)


class RayAttempt(Attempt):
    """One job on the cluster, seen from the daemon (the same events as a local attempt)."""

    def __init__(self, row: JobRow, slot: str, *, backend: RayBackend, store: EventStore, grace_s: float,
                 flush_s: float, reattach: bool):
        super().__init__(row, slot, store=store, paths=backend.paths, python="", grace_s=grace_s, flush_s=flush_s)
        self.backend, self.reattach = backend, reattach
        self.storage = backend.storage
        if isinstance(self.storage, SharedFolder):  # else the log comes here from the store when the job ends
            self.folder = self.storage.root / "jobs" / row.job_id
            self.log_path = self.folder / "worker.log"
        self._local = ArtifactStore(backend.paths.artifacts)
        self._mark = "end"  # the frame id the next append's command id carries
        self._applied = self._last_applied()

    def _last_applied(self) -> int:
        """The highest frame id the log holds for this job (0 for none)."""
        prefix = f"ray:{self.row.job_id}:"
        ids = [int(tail) for e in self.store.read(stream=self.stream)
               if e.command_id and e.command_id.startswith(prefix) and (tail := e.command_id[len(prefix):]).isdigit()]
        return max(ids, default=0)

    def _append(self, stream: str, events: list[Event], *, causation_id: str | None = None,
                correlation_id: str | None = None) -> None:
        jid = self.row.job_id
        command_id = f"ray:{jid}:{self._mark}" if stream == self.stream else f"ray:{jid}:{self._mark}:{stream}"
        self.store.append(stream, events, command_id=command_id, causation_id=causation_id,
                          correlation_id=correlation_id)

    async def _run_worker(self) -> Event | None:
        terminal = await self._follow()
        self._mark = f"note-{secrets.token_hex(6)}"  # lines of our own, not frames: never deduplicated
        self._flush()
        self._mark = "end"  # the terminal event's append (Attempt.run makes it)
        return terminal

    async def _follow(self) -> Event | None:
        """Start or find the job's actor and append what it relays until the worker ends; the
        terminal event, or None when the daemon stops (the job goes on without it)."""
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        try:
            actor = await anyio.to_thread.run_sync(self._start_or_attach)
        except (JobError, OSError) as exc:
            return self._failed(f"could not start the job on Ray: {exc}", cause="start")
        except _NotStarted:
            return self._stopped()  # cancelled; or none: still queued for the next daemon
        except ValueError as exc:  # ray.get_actor: no actor of that name
            return J.JobInterrupted(job_id=self.row.job_id, reason=f"its Ray actor is gone ({exc})")
        lost: str | None = None
        damaged: JobError | None = None
        reply: dict[str, Any] = {}
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stop_on_cluster, actor)
                while self._stop_reason != "shutdown":
                    try:
                        reply = await anyio.to_thread.run_sync(
                            lambda: ray.get(actor.take.remote(self._applied, 1.0), timeout=60))
                    except (GetTimeoutError, ActorUnavailableError):
                        continue
                    except RayActorError as exc:
                        lost = "lost the Ray node running it: " + (str(exc).splitlines()[0] if str(exc)
                                                                    else type(exc).__name__)
                        break
                    try:
                        await self._apply(reply["frames"], actor)
                    except JobError as exc:  # an artifact missing or damaged in the storage
                        damaged = exc
                        break
                    if reply["returncode"] is not None:
                        break
                tg.cancel_scope.cancel()
        except Exception:  # a bug: the job fails (Attempt.run), its worker must not run on
            ray.kill(actor)
            raise
        if self._stop_reason == "shutdown" and damaged is None:
            return None  # left running on the cluster: the next daemon re-attaches
        if damaged is not None:  # the worker must not run on unseen: SIGKILL it before its actor goes
            await anyio.to_thread.run_sync(_stop_now, actor)
        ray.kill(actor)
        if isinstance(self.storage, ObjectStore):
            await anyio.to_thread.run_sync(self.storage.get_log, self.row.job_id, self.log_path)
        if damaged is not None:
            return self._failed(damaged.message, cause="artifact",
                                raised={"message": damaged.message, "hint": damaged.hint})
        self._forced = self._forced or bool(reply.get("forced"))
        lost = lost or reply.get("lost")
        if lost is not None:
            if self._stop_reason == "cancel":
                self._forced = True
                return self._stopped()
            return J.JobInterrupted(job_id=self.row.job_id, reason=lost)
        return self._outcome(int(reply["returncode"]))

    def _start_or_attach(self) -> Any:
        """The job's actor: found by name when re-attaching, else created and started (blocking)."""
        import ray
        from ray.exceptions import GetTimeoutError

        backend = self.backend
        backend.connect()
        name = backend.actor_name(self.row.job_id)
        if self.reattach:
            actor = ray.get_actor(name, namespace=NAMESPACE)
            self._lines.append(f"tunelog: re-attached to Ray actor {name}")
            return actor
        spec, fetch = self._spec()
        row = self.row
        options, train = ray_request(resource=row.resource, devices=row.devices, nodes=row.nodes, gpu_type=row.gpu_type)
        # get_if_exists: a daemon that died between starting the actor and recording it finds it again
        actor = backend._actor_class.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                                             max_restarts=0, max_concurrency=4, **options).remote(self.row.job_id)
        started = actor.start.remote(backend.location, msgspec.json.encode(spec), fetch=fetch, train=train,
                                     grace_s=self.grace_s)
        waited = 0
        while True:  # the actor may wait for the cluster's resources: a cancel or a daemon stop must not
            try:
                where = ray.get(started, timeout=1.0)
                break
            except GetTimeoutError:
                if self._stop_reason is not None:
                    ray.kill(actor)
                    raise _NotStarted() from None
                waited += 1
                if waited == 3:
                    self._mark = f"note-{secrets.token_hex(6)}"
                    self._append(self.stream, [J.JobLog(job_id=self.row.job_id, lines=[
                        f"tunelog: waiting for the Ray cluster to place the job (it needs {train or options})"])])
        if where.get("error"):  # the job could not be placed on the node: nothing ran
            ray.kill(actor)
            raise JobError(where["error"])
        self._mark = "started"
        self._append(self.stream, [J.JobStarted(job_id=self.row.job_id, pid=0, slot=self.slot,
                                                log_path=str(self.log_path), run_id=self.row.run_id)])
        self._lines.append(f"tunelog: running on Ray node {where['node_id'][:12]} ({where['host']}), "
                           f"worker pid {where['pid']}, actor {name}")
        return actor

    def _spec(self) -> tuple[WorkerSpec, list[str]]:
        """Ship the code and the input artifacts to the storage; the worker's spec points there,
        and the artifacts a node must fetch with an object store."""
        code = self._ship_code(self.row.plugin, self.row.code_hash)
        uses = {name: self._ship_code(name, digest) for name, digest in self.row.uses.items()}
        resume = self._resume_sha()
        fetch = sorted(sha for sha in set(shas(self.row.inputs)) | ({resume} if resume else set())
                       if self._local.exists(sha))
        for sha in fetch:
            self.storage.put(self._local, sha)
        if isinstance(self.storage, SharedFolder):
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec = WorkerSpec(job_id=self.row.job_id, plugin=self.row.plugin, operation=self.row.operation,
                          params=self.row.params, inputs=self.row.inputs, code_dir=code, resume_sha256=resume,
                          run_id=self.row.run_id, uses=uses, **self.storage.spec_paths(self.row.job_id))
        return spec, fetch

    def _ship_code(self, plugin: str, code_hash: str) -> str:
        """A plugin's code snapshot in the storage (copied there once)."""
        source = self.backend.paths.plugin_code / code_hash
        if not source.is_dir():
            raise JobError(f"the code snapshot {code_hash[:12]} of plugin {plugin!r} is missing")
        return self.storage.ship_code(code_hash, source)

    async def _apply(self, frames: list[tuple[int, bytes]], actor: Any) -> None:
        """Append frames the log does not hold yet, in order, then let the actor forget them."""
        fresh = [(seq, _decode(raw[4:])) for seq, raw in frames if seq > self._applied]
        if not fresh:
            return
        await anyio.to_thread.run_sync(self._import_artifacts, [m for _, m in fresh])
        for seq, msg in fresh:
            if msg.kind == "event" and msg.body.get("stream") != self.stream:
                self._mark = str(seq - 1)  # what is buffered so far is frames up to seq - 1
                self._flush()
            self._mark = str(seq)
            self._handle(msg)
        self._flush()
        self._applied = fresh[-1][0]
        actor.ack.remote(self._applied)

    def _import_artifacts(self, messages: list[Message]) -> None:
        """Copy the artifacts these messages name from the storage into the daemon's, verified by
        sha256 (blocking). An announced artifact or checkpoint must be there; a hash in a result's
        outputs is copied only if the storage has it (not every hash is an artifact)."""
        for msg in messages:
            for sha in announced(msg.kind, msg.body):
                if self._local.exists(sha):
                    continue
                if msg.kind != "result" or self.storage.has(sha):
                    self.storage.get(sha, self._local)

    async def _stop_on_cluster(self, actor: Any) -> None:
        """Cancel: the actor stops the worker (SIGTERM, grace, SIGKILL); kill the actor if it cannot."""
        import ray

        await self._stop.wait()
        if self._stop_reason != "cancel":
            return
        actor.stop.remote(self.grace_s)
        await anyio.sleep(self.grace_s + 15)
        self._forced = True
        ray.kill(actor)


def ray_request(*, resource: str, devices: int, nodes: int, gpu_type: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What a job asks of the cluster: the options of its actor, and for several devices the
    `ScalingConfig` of the Ray Train run its actor starts (None for one device).

    One device: the actor holds 1 CPU, plus 1 GPU for a GPU operation or a `gpu_type`. Several:
    the actor holds nothing and Ray Train starts `devices` workers, each with a GPU when the job
    wants GPUs; `nodes` 1 packs them on one node (STRICT_PACK), `nodes` = `devices` puts one on
    each node (STRICT_SPREAD), other counts spread them as far as Ray can (SPREAD: Ray cannot pin
    an exact node count), 0 lets Ray pack them where they fit (PACK). `gpu_type` is Ray's
    `accelerator_type` (a node label such as A100 or H100) on the actor or every worker.
    """
    gpu = resource == "gpu" or bool(gpu_type)
    typed = {"accelerator_type": gpu_type} if gpu_type else {}
    if devices <= 1:
        return {"num_cpus": 1, **({"num_gpus": 1} if gpu else {}), **typed}, None
    placement = ("PACK" if nodes == 0 else "STRICT_PACK" if nodes == 1 else
                 "STRICT_SPREAD" if nodes == devices else "SPREAD")
    return {"num_cpus": 0}, {"num_workers": devices, "use_gpu": gpu, "placement_strategy": placement, **typed}


def _stop_now(actor: Any) -> None:
    """SIGKILL the actor's worker and wait for it (blocking; an actor already gone has none)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    try:
        ray.get(actor.stop.remote(0.0), timeout=30)
    except (GetTimeoutError, RayActorError):
        pass


class _NotStarted(Exception):
    """A cancel or a daemon stop came while the actor still waited for the cluster's resources."""
