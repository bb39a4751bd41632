"""The Ray actor that hosts one job on a cluster node.

It starts the same worker entry point a local job runs (`python -P -m tunelog.daemon.jobs.worker
job.json`, in its own process group, stderr to `worker.log`) and keeps the worker's frames in
memory, each numbered with a per-job sequence id, until the daemon has appended them and
acknowledged their ids. The daemon is the only writer of the log: it pulls frames with `take`,
so a daemon that restarts pulls again from the last id it appended, and nothing is lost or twice.

The actor is detached and named after the job, so it outlives the daemon that started it. The
daemon wraps it with `ray.remote`; what it reads and writes goes through `ray_storage` (a shared
folder in place, or an object store: downloads before the worker starts, uploads before a frame
that announces an artifact goes on).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tunelog.daemon.jobs.processes import killpg, signal_name

_HEADER = struct.Struct(">I")
_TAIL_BYTES = 32_768
_SETTLE_S = 10.0
"""How long a rank whose worker failed waits for the other ranks' exit status before it raises."""


class JobHost:
    """One job's worker process on this node, and its numbered frames."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self._frames: list[tuple[int, bytes]] = []
        self._next = 1
        self._done = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._returncode: int | None = None
        self._rank_ends: dict[int, int] = {}  # a Ray Train run's ranks whose worker ended: exit status
        self._forced = False
        self._started = False
        self._stop_asked = False
        self._lost: str | None = None
        self._log = Path()
        self._location = ""

    def start(self, location: str, spec: bytes, *, fetch: list[str] | None = None,
              train: dict[str, Any] | None = None, grace_s: float = 10.0) -> dict[str, Any]:
        """Place the job on this node (`job.json`, and with an object store the snapshots and
        the `fetch` artifacts it reads) and start the worker (or, given `train`, the
        `ScalingConfig` fields of several devices, a Ray Train run of one worker per device);
        returns where it runs."""
        import ray

        from tunelog.daemon.jobs.ray_storage import job_folder

        if self._proc is not None or self._started:
            return self.where()
        self._started, self._location = True, location
        job = job_folder(location, self.job_id, node_id=ray.get_runtime_context().get_node_id())
        job.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log = job / "worker.log"
        if train is not None:  # each Ray Train worker places the job on its own node
            threading.Thread(target=self._train, args=(job, spec, fetch or [], train, grace_s), daemon=True,
                             name=f"ray train {self.job_id}").start()
            return self.where()
        error = self.run_worker(location, job, spec, fetch=fetch or [])
        return self.where() if error is None else {**self.where(), "error": error}

    def run_worker(self, location: str, job: Path, spec: bytes, *, fetch: list[str]) -> str | None:
        """Place the job in its folder `job` and start its worker, whose frames a thread numbers
        until it ends; the reason it could not be placed (nothing runs then), else None. Needs no
        Ray: `start` calls it on the node the actor was placed on."""
        from tunelog.daemon.jobs.ray_storage import place_job

        self._location, self._log = location, job / "worker.log"
        try:
            place_job(location, job, spec, fetch=fetch)
        except Exception as exc:  # noqa: BLE001 - e.g. an input missing or damaged in the storage
            return str(exc)
        with open(self._log, "ab") as log:
            self._proc = start_worker(job, self.job_id, stdout=subprocess.PIPE, stderr=log)
        threading.Thread(target=self._read, args=(job,), daemon=True, name=f"frames {self.job_id}").start()
        return None

    def where(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": os.uname().nodename,
                "pid": self._proc.pid if self._proc else 0}

    def _read(self, job: Path) -> None:
        """Number every frame the worker writes (its artifacts uploaded first), until its channel
        closes; then wait for its exit."""
        from tunelog.daemon.jobs.ray_storage import finish_job, uploading

        assert self._proc is not None and self._proc.stdout is not None
        try:
            with self._proc.stdout as pipe:  # closed once read: the actor lives on after its worker
                read_frames(pipe, uploading(self._location, job, self.push))
        except Exception as exc:  # noqa: BLE001 - an upload failed: the worker must not go on unseen
            with open(self._log, "a") as log:
                log.write(f"tunelog: {exc}\n")
            killpg(self._proc.pid, signal.SIGKILL)
        returncode = self._proc.wait()
        finish_job(self._location, job, self.job_id)
        self.finish(returncode)

    def push(self, frames: list[bytes]) -> None:
        """Number and keep frames (from our worker, or from rank 0 of a Ray Train run)."""
        with self._done:
            for raw in frames:
                self._frames.append((self._next, raw))
                self._next += 1
            self._done.notify_all()

    def rank_ended(self, rank: int, returncode: int) -> None:
        """A Ray Train run's rank has seen its worker end; the job ends when the whole run has."""
        with self._done:
            self._rank_ends[rank] = returncode

    def rank_ends(self) -> dict[int, int]:
        """The ranks whose worker has ended so far, and their exit status."""
        with self._done:
            return dict(self._rank_ends)

    def finish(self, returncode: int) -> None:
        """The worker has ended (the first exit status counts)."""
        with self._done:
            if self._returncode is None:
                self._returncode = returncode
            self._done.notify_all()

    def stopping(self) -> bool:
        """Whether a stop was asked for (the Ray Train workers poll it)."""
        return self._stop_asked

    def _train(self, job: Path, spec: bytes, fetch: list[str], scaling: dict[str, Any], grace_s: float) -> None:
        """Run the worker on `scaling["num_workers"]` Ray Train workers (DDP: gloo on CPU, NCCL on
        GPUs) and wait. Ray Train keeps its own state in the storage too (`jobs/<id>/ray-train`)."""
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        from tunelog.daemon.jobs.ray_storage import ObjectStore, is_object_store, place_job

        if is_object_store(self._location):
            storage_path, filesystem = ObjectStore(self._location).train_storage(self.job_id)
        else:
            place_job(self._location, job, spec, fetch=fetch)  # the ranks share this folder
            storage_path, filesystem = str(job / "ray-train"), None
        config = {"location": self._location, "folder": str(job), "spec": spec, "fetch": fetch,
                  "job_id": self.job_id, "grace_s": grace_s, "host": ray.get_runtime_context().current_actor}
        trainer = TorchTrainer(train_ddp_worker, train_loop_config=config,
                               scaling_config=ScalingConfig(**scaling),
                               torch_config=TorchConfig(backend="nccl" if scaling.get("use_gpu") else "gloo"),
                               run_config=RunConfig(name=f"tunelog-{self.job_id}", storage_path=storage_path,
                                                    storage_filesystem=filesystem,
                                                    failure_config=FailureConfig(max_failures=0)))
        # The job ends when `fit` returns, not when rank 0's worker does: every rank has then kept
        # its log in the storage, so the daemon never reports an end before the last log is there.
        try:
            trainer.fit()
            self.finish(0)
        except Exception as exc:  # noqa: BLE001 - any failure of the group ends the job
            with open(self._log, "a") as log:
                log.write(f"tunelog: the Ray Train run failed: {exc}\n")
            with self._done:
                returncode, lost = ray_train_outcome(dict(self._rank_ends), str(exc) or type(exc).__name__,
                                                     stop_asked=self._stop_asked)
                self._lost = lost
            self.finish(returncode)

    def take(self, after: int, wait_s: float = 1.0) -> dict[str, Any]:
        """Frames with ids above `after` (waiting up to `wait_s` for one), and the exit status once
        the worker has ended and every frame was read."""
        deadline = time.monotonic() + wait_s
        with self._done:
            while not any(seq > after for seq, _ in self._frames) and self._returncode is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._done.wait(left)
            frames = [f for f in self._frames if f[0] > after]
            ended = self._returncode is not None and not frames
            return {"frames": frames, "returncode": self._returncode if ended else None,
                    "forced": self._forced, "lost": self._lost if ended else None,
                    "tail": self._tail() if ended else []}

    def ack(self, upto: int) -> None:
        """The daemon appended every frame up to this id: forget them."""
        with self._done:
            self._frames = [f for f in self._frames if f[0] > upto]

    def stop(self, grace_s: float) -> None:
        """SIGTERM the worker's process group (it checkpoints and returns), SIGKILL after `grace_s`."""
        self._stop_asked = True
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._forced = True
            killpg(proc.pid, signal.SIGKILL)

    def _tail(self) -> list[str]:
        try:
            with open(self._log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _TAIL_BYTES))
                return f.read().decode("utf-8", "replace").splitlines()[-20:]
        except OSError:
            return []


def start_worker(job: Path, job_id: str, *, stdout: Any, stderr: Any, env: dict[str, str] | None = None,
                 die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """The worker entry point a local job runs, in its own process group, in the job folder.

    `die_with_parent`: SIGKILL it when the process that started it dies (Linux), for ranks whose
    channel goes nowhere and so would not notice.
    """
    env = dict(env or os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", TUNELOG_JOB_ID=job_id)
    return subprocess.Popen([sys.executable, "-P", "-m", "tunelog.daemon.jobs.worker", "job.json"],
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=job, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent if die_with_parent else None)


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def read_frames(pipe: IO[bytes], sink: Callable[[list[bytes]], None]) -> None:
    """Hand every whole frame from a worker's channel to `sink`, until the channel closes."""
    while True:
        header = pipe.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        body = pipe.read(size)
        if len(body) < size:
            return
        sink([header + body])


def train_ddp_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: run the worker entry point as this rank, as torchrun would start it.

    Ray Train has set RANK, WORLD_SIZE and LOCAL_RANK and joined this process to a process group;
    the worker gets its own rendezvous (rank 0 picks the port and tells the others through Ray
    Train's broadcast), so accelerate in the worker sets up DDP exactly as under a local launcher. Rank 0's
    frames go to the job's actor (with an object store, after the artifacts they announce are
    uploaded; each rank then has a folder of its own on its node); a stop asked there reaches
    every rank as SIGTERM.
    """
    import socket

    import ray
    from ray.train.collective import broadcast_from_rank_zero

    from tunelog.daemon.jobs.ray_storage import finish_job, is_object_store, job_folder, place_job, uploading

    rank = int(os.environ["RANK"])
    location = str(config["location"])
    job = Path(config["folder"])
    if is_object_store(location):
        job = job_folder(location, config["job_id"], node_id=ray.get_runtime_context().get_node_id(), rank=rank)
        place_job(location, job, config["spec"], fetch=list(config["fetch"]))
    host = config["host"]
    mine = None
    if rank == 0:
        with socket.socket() as s:
            s.bind(("", 0))
            mine = (ray.util.get_node_ip_address(), s.getsockname()[1])  # type: ignore[no-untyped-call]
    addr, port = broadcast_from_rank_zero(mine)
    env = dict(os.environ, MASTER_ADDR=str(addr), MASTER_PORT=str(port))
    with open(job / "worker.log", "ab") as log:
        proc = start_worker(job, config["job_id"], stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                            stderr=log, env=env, die_with_parent=True)

    def forward() -> None:
        assert proc.stdout is not None
        push = uploading(location, job, lambda frames: ray.get(host.push.remote(frames)))  # in order: one at a time
        try:
            read_frames(proc.stdout, push)
        except Exception as exc:  # noqa: BLE001 - an upload failed: the worker must not go on unseen
            with open(job / "worker.log", "a") as log:
                log.write(f"tunelog: {exc}\n")
            killpg(proc.pid, signal.SIGKILL)

    reader = threading.Thread(target=forward, daemon=True) if rank == 0 else None
    if reader is not None:
        reader.start()
    while proc.poll() is None:
        if ray.get(host.stopping.remote()):
            killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(float(config["grace_s"]))
            except subprocess.TimeoutExpired:
                killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    rc = proc.wait()
    ray.get(host.rank_ended.remote(rank, rc))  # at once: which rank failed first decides the outcome
    if reader is not None:
        reader.join()
    finish_job(location, job, config["job_id"], log_name="worker.log" if rank == 0 else f"worker-rank{rank}.log")
    if rc != 0:
        # Ray Train ends the other ranks as soon as one raises: give a rank whose worker was
        # killed (and so did not fail on its own) the time to say so before this one raises.
        deadline = time.monotonic() + _SETTLE_S
        while len(ray.get(host.rank_ends.remote())) < int(os.environ["WORLD_SIZE"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        raise RuntimeError(f"rank {rank}: the worker exited with status {rc}")


def ray_train_outcome(ends: dict[int, int], error: str, *, stop_asked: bool) -> tuple[int, str | None]:
    """(exit status, reason the job was lost or None) of a Ray Train run whose `fit` raised.

    `ends` holds the exit status of each rank's worker that ended while its Ray Train worker lived.
    A worker that died from a signal (the OOM killer's SIGKILL), or a failure no rank reported (a
    Ray Train worker or its node died), lost a member of the group: the other ranks' collective
    errors follow from it, whichever rank noticed first, so the job is interrupted and its run
    resumes it. Workers that only exited with an error status failed the job, with rank 0's
    status where rank 0 failed. A stop asked for is never a loss: its own outcome counts.
    """
    first = next((line.strip() for line in error.splitlines() if line.strip()), "")[:300]
    killed = sorted(rank for rank, rc in ends.items() if rc < 0)
    failed = {rank: rc for rank, rc in ends.items() if rc > 0}
    returncode = ends.get(0) or next(iter(failed.values()), 1)
    if stop_asked:
        return returncode, None
    if killed:
        rank = killed[0]
        return returncode, (f"the Ray Train run lost a worker: rank {rank}'s worker died from "
                            f"{signal_name(-ends[rank])}; {first}")
    if not failed:
        return returncode, f"the Ray Train run lost a worker or its node: {first}"
    return returncode, None
