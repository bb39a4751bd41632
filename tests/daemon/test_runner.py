"""The job runner's own decisions, fast and in-process on a real SQLite store: what a submit
refuses and what it queues, the cancel of a job no worker holds, lookups, reconciliation after a
crash, and which queued job the scheduler gives which slots. The jobs here point at a code
snapshot that does not exist, so an attempt ends at once with JobFailed (cause `start`) and no
worker process is started; tests/daemon/test_jobs_queue.py runs the scheduler with real workers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.daemon.jobs_support import Env, make_env, running
from tunelog.daemon.jobs.backend import BackendChoice
from tunelog.daemon.jobs.processes import record_worker
from tunelog.daemon.jobs.ray_backend import RayBackend
from tunelog.daemon.jobs.runner import JobRunner, _pick_slots, _usable, detect_slots, job_backend, new_job_id
from tunelog.daemon.jobs.warm import WarmWorkers
from tunelog.events import jobs as J
from tunelog.events.errors import ConflictError, JobError, NotFoundError, ValidationError
from tunelog.events.plugins import PluginRemoved

pytestmark = pytest.mark.anyio

MISSING = "0" * 64
"""The code hash of a snapshot that does not exist: the attempt fails before starting a worker."""


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def queue(runner: JobRunner, *, resource: str = "any", devices: int = 1, plugin: str = "testops",
          operation: str = "sleep", **kw: Any) -> str:
    return runner.submit(plugin=plugin, operation=operation, params={}, inputs={}, code_hash=MISSING,
                         plugin_version="0.1.0", resource=resource, devices=devices, **kw).job_id


def ray_runner(env: Env, tmp_path: Path, *, max_jobs: int, local_ops: tuple[str, ...] = (),
               slots: list[str] | None = None) -> JobRunner:
    """A runner with the Ray backend configured (nothing here connects to a cluster)."""
    choice = BackendChoice("ray", address="ray://head:10001", shared=str(tmp_path / "shared"), max_jobs=max_jobs,
                           local_ops=local_ops)
    return env.runner(backend=RayBackend(choice, env.paths), slots=slots or ["cpu0"])


def in_a_plain_thread(fn: Callable[[], str]) -> str:
    """`fn` called from a thread anyio did not start (as a web server's or the CLI's would be)."""
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(timeout=30)
    return out[0]


def refused(err: pytest.ExceptionInfo[Any]) -> list[tuple[str, str]]:
    return [(p["where"], p["message"]) for p in err.value.problems]


def test_slots_come_from_tunelog_gpus_then_cuda_visible_devices_then_nvidia_smi(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_slots({"TUNELOG_GPUS": " 2 ", "CUDA_VISIBLE_DEVICES": "5"}) == ["gpu0", "gpu1"]
    assert detect_slots({"TUNELOG_GPUS": " 1, 3,", "CUDA_VISIBLE_DEVICES": "5"}) == ["gpu1", "gpu3"]
    assert detect_slots({"TUNELOG_GPUS": "", "CUDA_VISIBLE_DEVICES": " 4, -1 ,"}) == ["gpu4"]
    assert detect_slots({"CUDA_VISIBLE_DEVICES": "-1"}) == ["cpu0"]
    # nvidia-smi is a boundary we do not own and this machine has no GPU: stand-in scripts print
    # what it prints (MIG devices are indented under their GPU and are not GPUs of their own).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    monkeypatch.setenv("PATH", str(bin_dir))
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 1\necho 'GPU 0: A100 (UUID: GPU-a)'\n"
                   "echo '  MIG 1g.10gb Device 0: (UUID: MIG-b)'\necho 'GPU 1: A100 (UUID: GPU-c)'\n")
    smi.chmod(0o755)
    assert detect_slots({"CUDA_VISIBLE_DEVICES": " "}) == ["gpu0", "gpu1"]
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA "
                   "driver.'\nexit 9\n")  # a broken driver: no GPU, and no error either
    assert detect_slots({}) == ["cpu0"]
    smi.write_text("#!/nonexistent/interpreter\n")  # cannot be started: OSError
    assert detect_slots({}) == ["cpu0"]


def test_job_ids_are_time_ordered_hex_and_strictly_increasing_within_a_millisecond() -> None:
    before = int(time.time() * 1000)
    ids = [new_job_id() for _ in range(200)]  # far faster than one per millisecond
    after = int(time.time() * 1000)
    assert all(len(i) == 19 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    stamps = [int(i[:11], 16) for i in ids]
    # The clock in milliseconds, or one more than the last id's when the clock has not moved on
    # (ids made faster than one per millisecond run ahead of it).
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)) and stamps[0] >= before
    assert stamps[-1] <= max(after, stamps[0] + len(ids) - 1)
    assert stamps[0] - after < 60_000  # ahead of the clock by the ids made in a burst at most, not by minutes
    assert len({i[11:] for i in ids}) == 200


def test_a_runner_needs_slots_and_keeps_its_own_copy(env: Env) -> None:
    with pytest.raises(ValidationError) as err:
        env.runner(slots=[])
    assert err.value.message == "the job runner needs slots" and refused(err) == [("slots", "give at least one, e.g. cpu0")]
    given = ["cpu0"]
    runner = env.runner(slots=given)
    given.append("cpu1")
    assert runner.slots == runner.local_slots == ["cpu0"]
    assert env.runner(slots=None).local_slots == detect_slots()


def test_submit_queues_every_field_it_was_given(env: Env) -> None:
    runner = env.runner(slots=["cpu0", "cpu1"])
    first = queue(runner, operation="checkpointing")
    env.store.append(f"job-{first}", [J.JobCheckpointed(job_id=first, step=2, sha256="c2", size=1)])
    row = runner.submit(plugin="testops", operation="sleep", params={"seconds": 1}, inputs={"data": "d1"},
                        code_hash=MISSING, plugin_version="0.1.0", resource="cpu", command_id="cmd-7", run_id="r1",
                        resume_of=first, resume_checkpoint="c2", devices=2, nodes=1, uses={"helper": "h1"})
    [envelope] = env.store.read(stream=f"job-{row.job_id}")
    assert envelope.event == J.JobQueued(
        job_id=row.job_id, plugin="testops", operation="sleep", params={"seconds": 1}, inputs={"data": "d1"},
        code_hash=MISSING, plugin_version="0.1.0", resource="cpu", resume_of=first, run_id="r1",
        resume_checkpoint="c2", devices=2, nodes=1, gpu_type="", uses={"helper": "h1"})
    assert envelope.command_id == "cmd-7" and envelope.version == 1
    assert (row.state, row.job_id, row.run_id) == ("queued", envelope.event.job_id, "r1")
    assert queue(runner, uses=None) and env.store.get("jobs", queue(runner)).uses == {}


async def test_a_stopping_runner_takes_no_new_job_but_answers_a_retried_one(env: Env) -> None:
    runner = env.runner()
    done = queue(runner, command_id="cmd-1")
    await runner.shutdown()  # nothing runs: it returns at once
    head = env.store.head()
    with pytest.raises(JobError) as err:
        queue(runner)
    assert (err.value.message, err.value.hint) == ("the daemon is stopping and takes no new jobs",
                                                   "submit again after it restarts")
    assert queue(runner, command_id="cmd-1") == done and env.store.head() == head


def test_a_command_id_used_for_something_else_is_a_conflict(env: Env) -> None:
    runner = env.runner()
    env.store.append("run-r1", [PluginRemoved(name="x", path="/p")], command_id="cmd-run")
    for submit in (lambda: queue(runner, command_id="cmd-run"), lambda: runner.cancel("x", command_id="cmd-run")):
        with pytest.raises(ConflictError, match="^command id 'cmd-run' was already used for another command$"):
            submit()
    assert env.store.read(types=["job-queued"]) == []


def test_devices_nodes_and_gpu_type_are_checked_against_this_machine(env: Env) -> None:
    runner = env.runner(slots=["gpu0", "gpu1", "cpu0"])
    runner.check_devices(resource="gpu", devices=2, nodes=1)
    runner.check_devices(resource="cpu", devices=1, nodes=0)
    runner.check_devices(resource="any", devices=2, nodes=2 - 1)
    cases: list[tuple[dict[str, Any], list[tuple[str, str]], str | None]] = [
        ({"devices": 0}, [("devices", "must be at least 1")], None),
        ({"devices": 1, "nodes": -1}, [("nodes", "1 devices do not spread evenly over -1 nodes")],
         "make devices a multiple of nodes, or set nodes to 0 (wherever they fit)"),
        ({"devices": 3, "nodes": 2}, [("nodes", "3 devices do not spread evenly over 2 nodes")],
         "make devices a multiple of nodes, or set nodes to 0 (wherever they fit)"),
        ({"devices": 2, "nodes": 2}, [("nodes", "asks for 2 nodes and local jobs run on this one machine")],
         "set nodes to 0 or 1, or run it on a Ray cluster: tunectl daemon config set backend ray://HOST:PORT"),
        ({"devices": 1, "gpu_type": "A100"},
         [("gpu_type", "asks for GPU type 'A100' and local jobs cannot choose a GPU model")],
         "leave gpu_type empty (any GPU of this machine), or run it on a Ray cluster: tunectl daemon config set "
         "backend ray://HOST:PORT"),
    ]
    for ask, problems, hint in cases:
        with pytest.raises(ValidationError) as err:
            runner.check_devices(resource="any", **ask)
        assert (err.value.message, refused(err), err.value.hint) == ("cannot queue the job", problems, hint)
    for resource, devices, kind, have in (("gpu", 3, "GPU", 2), ("cpu", 2, "CPU", 1), ("any", 3, "GPU", 2)):
        with pytest.raises(JobError) as job_err:
            runner.check_devices(resource=resource, devices=devices)
        assert job_err.value.message == f"the job needs {devices} {kind} slots and this daemon has {have}"
        assert job_err.value.hint == "lower `devices`, or give the daemon more slots (TUNELOG_SLOTS, TUNELOG_GPUS)"
    with pytest.raises(JobError) as job_err:
        env.runner(slots=["cpu0"]).check_devices(resource="gpu", devices=2)
    assert job_err.value.message == "the job needs 2 CPU slots and this daemon has 0"


def test_with_the_ray_backend_a_local_operation_is_told_to_leave_ray_local_ops(env: Env, tmp_path: Path) -> None:
    runner = ray_runner(env, tmp_path, max_jobs=2, local_ops=("testops.*",))
    runner.check_devices(resource="any", devices=4, nodes=2, gpu_type="A100", where=None)  # the cluster's to place
    with pytest.raises(ValidationError) as err:
        runner.check_devices(resource="any", devices=2, nodes=2, where="testops.*")
    assert err.value.hint == ("set nodes to 0 or 1, or run it on a Ray cluster: tunectl daemon config set backend "
                              "ray://HOST:PORT and take testops.* out of ray_local_ops")
    with pytest.raises(ValidationError, match="cannot queue the job"):
        runner.check_devices(resource="any", devices=0, where=None)
    # A job for the cluster may ask for a GPU this machine lacks; a local one may not.
    remote = queue(runner, plugin="lora_trainer", operation="train", resource="gpu", devices=4, nodes=2,
                   gpu_type="A100")
    assert env.store.get("jobs", remote).gpu_type == "A100"
    narrow = ray_runner(env, tmp_path, max_jobs=1, local_ops=("testops.sl*",))
    with pytest.raises(ValidationError, match="cannot queue the job"):
        queue(narrow, operation="sleep", devices=2, nodes=2)  # kept local by the rule for its operation
    assert queue(narrow, operation="outputs", devices=2, nodes=2)  # not matched: the cluster's
    with pytest.raises(JobError, match="needs a GPU and this machine has none"):
        queue(runner, resource="gpu")


def test_submit_refuses_a_bad_resource_and_a_gpu_job_without_gpus(env: Env) -> None:
    runner = env.runner()
    with pytest.raises(ValidationError) as err:
        queue(runner, resource="tpu")
    assert err.value.message == "cannot queue the job"
    assert refused(err) == [("resource", "'tpu' is not one of cpu, gpu, any")]
    with pytest.raises(JobError) as job_err:
        queue(runner, resource="gpu")
    assert (job_err.value.message, job_err.value.hint) == ("the job needs a GPU and this machine has none",
                                                           "set TUNELOG_GPUS if nvidia-smi cannot see your GPUs")
    assert queue(env.runner(slots=["cpu0", "gpu0"]), resource="gpu")
    with pytest.raises(JobError, match="needs 2 CPU slots"):  # CPU slots, though two GPU slots are free
        queue(env.runner(slots=["cpu0", "gpu0", "gpu1"]), resource="cpu", devices=2)
    assert env.store.read(types=["job-queued"])[0].event.resource == "gpu"


def test_a_resumed_job_and_its_chosen_checkpoint_must_exist(env: Env) -> None:
    runner = env.runner()
    plain = queue(runner)
    with pytest.raises(NotFoundError, match="^no job nope to resume$"):
        queue(runner, resume_of="nope")
    with pytest.raises(JobError) as err:
        queue(runner, resume_of=plain)
    assert (err.value.message, err.value.hint) == (f"job {plain} saved no checkpoint, so it cannot be resumed",
                                                   "run it again from the start")
    with pytest.raises(ValidationError) as verr:
        queue(runner, resume_checkpoint="c1")
    assert verr.value.message == "cannot queue the job"
    assert refused(verr) == [("resume_checkpoint", "needs resume_of: the job that saved the checkpoint")]
    env.store.append(f"job-{plain}", [J.JobCheckpointed(job_id=plain, step=3, sha256="c3" * 8, size=1),
                                      J.JobCheckpointed(job_id=plain, step=6, sha256="c6" * 8, size=1)])
    other = queue(runner)
    env.store.append(f"job-{other}", [J.JobCheckpointed(job_id=other, step=9, sha256="c9" * 8, size=1)])
    with pytest.raises(ValidationError) as verr:
        queue(runner, resume_of=plain, resume_checkpoint="c9" * 8)
    assert verr.value.message == "cannot queue the job"
    assert refused(verr) == [("resume_checkpoint", f"c9c9c9c9c9c9 is not a checkpoint of job {plain} (its steps: 3, 6)")]
    assert queue(runner, resume_of=plain, resume_checkpoint="c3" * 8)
    assert queue(runner, resume_of=plain)


def test_cancelling_a_job_no_worker_holds(env: Env) -> None:
    runner = env.runner()
    job = queue(runner)
    row = runner.cancel(job[:15], command_id="c-1", reason="not needed")
    assert row.state == "cancelled"
    envelopes = env.store.read(stream=f"job-{job}")
    assert [e.event for e in envelopes[1:]] == [J.JobCancelRequested(job_id=job, reason="not needed"),
                                                J.JobCancelled(job_id=job, forced=False)]
    assert envelopes[1].command_id == "c-1"
    assert runner.cancel(job, command_id="c-1") == row  # a retry
    with pytest.raises(JobError, match=f"^job {job} has already ended \\(cancelled\\)$"):
        runner.cancel(job)
    started = queue(runner)
    env.store.append(f"job-{started}", [J.JobStarted(job_id=started, pid=1, slot="cpu0", log_path="x")])
    with pytest.raises(JobError) as err:
        runner.cancel(started)
    assert (err.value.message, err.value.hint) == (f"job {started} is not supervised by this daemon yet",
                                                   "retry in a moment")
    assert env.store.get("jobs", started).state == "running"
    default = queue(runner)
    runner.cancel(default)
    assert env.store.read(stream=f"job-{default}")[1].event == J.JobCancelRequested(job_id=default,
                                                                                    reason="cancelled by user")


def test_find_by_id_or_prefix_names_up_to_ten_matches(env: Env) -> None:
    runner = env.runner()
    ids = [queue(runner) for _ in range(10)]
    ten = os.path.commonprefix(ids)
    with pytest.raises(ValidationError, match=f"^{ten!r} matches 10 jobs"):
        runner.find(ten)
    ids.append(queue(runner))
    common = os.path.commonprefix(ids)
    with pytest.raises(ValidationError) as err:
        runner.find(common)
    assert err.value.message == f"{common!r} matches more than 10 jobs" and err.value.hint == "give more of the id"
    assert refused(err) == [("job", i) for i in ids[:10]]
    with pytest.raises(NotFoundError) as nf:
        runner.find("zzz")
    assert (nf.value.message, nf.value.hint) == ("no job matches 'zzz'", "list jobs with `tunectl jobs`")
    with pytest.raises(ValidationError) as err:
        runner.find("")
    assert (err.value.message, refused(err)) == ("no job id given", [("job", "give a job id or a prefix of one")])
    assert runner.find(ids[4]).job_id == ids[4]


def test_two_matches_are_counted(env: Env) -> None:
    runner = env.runner()
    a = queue(runner)
    time.sleep(0.002)
    b = queue(runner)
    prefix = os.path.commonprefix([a, b])
    with pytest.raises(ValidationError) as err:
        runner.find(prefix)
    assert err.value.message == f"{prefix!r} matches 2 jobs" and refused(err) == [("job", a), ("job", b)]


def test_reconcile_interrupts_only_what_a_previous_daemon_started(env: Env, tmp_path: Path) -> None:
    old = env.runner()
    left, no_pid, queued, forked = queue(old), queue(old), queue(old), queue(old)
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, "TUNELOG_JOB_ID": left})
    # A worker forked by the warm host has the host's environment: it is known by its worker.pid.
    from_host = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (env.paths.jobs / forked).mkdir()
    record_worker(env.paths.jobs / forked, from_host.pid)
    try:
        env.store.append(f"job-{left}", [J.JobStarted(job_id=left, pid=leftover.pid, slot="cpu0", log_path="x")])
        env.store.append(f"job-{forked}", [J.JobStarted(job_id=forked, pid=from_host.pid, slot="cpu0", log_path="x")])
        env.store.append(f"job-{no_pid}", [J.JobStarted(job_id=no_pid, pid=0, slot="cpu0", log_path="x")])
        runner = env.runner()
        mine = queue(runner)  # queued after this runner was made: started by it, not a dead daemon
        env.store.append(f"job-{mine}", [J.JobStarted(job_id=mine, pid=0, slot="cpu0", log_path="x")])
        assert runner.reconcile() == [left, no_pid, forked]
        assert leftover.wait(timeout=5) == from_host.wait(timeout=5) == -9
    finally:
        for proc in (leftover, from_host):
            proc.kill()
            proc.wait()
    for job in (left, no_pid, forked):
        assert env.store.read(stream=f"job-{job}")[-1].event == J.JobInterrupted(job_id=job, reason="daemon restarted")
    assert env.store.get("jobs", mine).state == "running" and env.store.get("jobs", queued).state == "queued"
    assert runner.reconcile() == []
    # With the Ray backend, a job on a cluster slot is followed again, not interrupted.
    ray = ray_runner(env, tmp_path, max_jobs=1)
    env.store.append(f"job-{queued}", [J.JobStarted(job_id=queued, pid=0, slot="ray0", log_path="x")])
    assert ray.reconcile() == [mine]
    assert [r.job_id for r in ray._reattach] == [queued] and env.store.get("jobs", queued).state == "running"


async def test_the_scheduler_gives_each_queued_job_slots_of_its_kind_oldest_first(env: Env) -> None:
    runner = env.runner(slots=["gpu0", "cpu0", "gpu1", "cpu1"])
    cpu = queue(runner, resource="cpu")
    two = queue(runner, resource="any", devices=2)
    gpu = queue(runner, resource="gpu")  # no GPU left: the job after it still runs
    last = queue(runner, resource="cpu")
    async with anyio.create_task_group() as tg:
        runner._start_ready(tg)  # claims synchronously; the attempts run when this task yields
        claimed = {job: a.slot for job, a in runner._attempts.items()}
        busy = dict(runner._busy)
        runner._start_ready(tg)  # nothing is free: nothing more is claimed
        assert {job: a.slot for job, a in runner._attempts.items()} == claimed
    assert claimed == {cpu: "cpu0", two: "gpu0,gpu1", last: "cpu1"}
    assert busy == {"cpu0": cpu, "gpu0": two, "gpu1": two, "cpu1": last}
    # Each attempt ended (no snapshot) and gave its slots back.
    assert runner._attempts == {} and runner._busy == {}
    for job in (cpu, two, last):
        row = env.store.get("jobs", job)
        assert (row.state, row.cause) == ("failed", "start"), row
    assert env.store.get("jobs", gpu).state == "queued"


async def test_a_claimed_job_is_supervised_with_the_runners_settings(env: Env) -> None:
    warm = WarmWorkers(python=sys.executable, log_path=env.paths.log_file, cwd=env.paths.home)  # never started
    runner = env.runner(slots=["cpu0"], grace_s=3.5, flush_s=0.05, python="/opt/py", warm=warm)
    job = queue(runner)
    async with anyio.create_task_group() as tg:
        runner._start_ready(tg)
        attempt = runner._attempts[job]
        assert (attempt.slot, attempt.grace_s, attempt.flush_s, attempt.python, attempt.warm) == (
            "cpu0", 3.5, 0.05, "/opt/py", warm)
    default = env.runner()
    assert (default.grace_s, default.flush_s, default.python) == (2.0, 0.2, sys.executable)


async def test_shutdown_waits_for_its_attempts_and_a_job_whose_worker_never_started_stays_queued(env: Env) -> None:
    runner = env.runner(slots=["cpu0", "cpu1"])
    jobs = [queue(runner), queue(runner)]
    async with anyio.create_task_group() as tg:
        runner._start_ready(tg)
        assert len(runner._attempts) == 2
        await runner.shutdown()  # asks them to stop before they start a worker
        assert runner._attempts == {} and runner._busy == {}
    for job in jobs:
        assert [e.type for e in env.store.read(stream=f"job-{job}")] == ["job-queued"]


async def test_a_stopping_runner_claims_nothing(env: Env) -> None:
    runner = env.runner()
    job = queue(runner)
    await runner.shutdown()
    async with anyio.create_task_group() as tg:
        runner._start_ready(tg)
    assert runner._attempts == {} and env.store.get("jobs", job).state == "queued"


async def test_with_the_ray_backend_only_ray_local_ops_take_local_slots_and_say_why(env: Env, tmp_path: Path) -> None:
    runner = ray_runner(env, tmp_path, max_jobs=0, local_ops=("testops.sl*",))  # no cluster slot is free
    remote = queue(runner, plugin="lora_trainer", operation="train")
    local = queue(runner)
    async with anyio.create_task_group() as tg:
        runner._start_ready(tg)
        assert {job: a.slot for job, a in runner._attempts.items()} == {local: "cpu0"}
    assert env.store.get("jobs", remote).state == "queued"
    logs = [e.event.lines for e in env.store.read(stream=f"job-{local}", types=["job-log"])]
    assert logs == [["tunelog: runs on this machine, not the Ray cluster: testops.sleep matches ray_local_ops "
                     "'testops.sl*' (tunectl daemon config set ray_local_ops ...)"]]


async def test_the_scheduler_starts_the_next_job_when_one_ends(env: Env) -> None:
    runner = env.runner(slots=["cpu0"])
    ids = [queue(runner) for _ in range(3)]  # before the scheduler runs: no wake-up from submit
    async with running(runner):
        for job in ids:
            assert (await env.wait(job, timeout=10)).state == "failed"
        later = queue(runner)  # submit wakes the scheduler
        assert (await env.wait(later, timeout=10)).state == "failed"
        other = await anyio.to_thread.run_sync(lambda: in_a_plain_thread(lambda: queue(runner)))
        assert (await env.wait(other, timeout=10)).state == "failed"
    assert runner._token is None and runner._thread is None


def test_where_jobs_run_is_local_unless_the_settings_choose_ray(env: Env, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNELOG_RAY_ADDRESS", raising=False)
    assert env.runner().backend_status() == {"kind": "local"}
    assert job_backend(env.paths) is None
    monkeypatch.setenv("TUNELOG_RAY_ADDRESS", "ray://head:10001")  # nothing connects until a job runs
    monkeypatch.setenv("TUNELOG_RAY_SHARED", str(tmp_path / "shared"))
    backend = job_backend(env.paths)
    assert isinstance(backend, RayBackend) and (backend.address, backend.location) == ("ray://head:10001",
                                                                                       str(tmp_path / "shared"))
    assert backend.paths == env.paths


def test_a_resource_uses_slots_of_one_kind(env: Env) -> None:
    slots = ["cpu0", "gpu0", "cpu1", "gpu1"]
    assert _usable("gpu", slots) == ["gpu0", "gpu1"]
    assert _usable("cpu", slots) == ["cpu0", "cpu1"]
    assert _usable("cpu", ["gpu0"]) == ["gpu0"]  # a CPU job may run on a GPU slot, never the reverse
    assert _usable("gpu", ["cpu0"]) == []
    assert _usable("any", slots) == ["gpu0", "gpu1"] and _usable("any", ["cpu0"]) == ["cpu0"]
    assert _pick_slots("any", slots, 2) == ["gpu0", "gpu1"] and _pick_slots("any", slots, 3) == []
    assert _pick_slots("cpu", slots, 1) == ["cpu0"]
