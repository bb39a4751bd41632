"""Job runner: the durable FIFO queue, slots, reconciliation after a crash, resume, lookups."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.daemon.jobs_support import Env, make_env, running
from tunelog.daemon.jobs.runner import detect_slots
from tunelog.events import jobs as J
from tunelog.events.errors import JobError, NotFoundError, ValidationError

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


async def test_one_slot_runs_jobs_one_at_a_time_in_fifo_order(env: Env) -> None:
    async with running(env.runner()) as runner:
        ids = [env.submit(runner, "sleep", seconds=0.1).job_id for _ in range(3)]
        rows = [await env.wait(i) for i in ids]
    assert [r.state for r in rows] == ["succeeded"] * 3
    starts = [r.started_at or 0 for r in rows]
    assert starts == sorted(starts)
    for before, after in zip(rows, rows[1:], strict=False):
        assert (after.started_at or 0) >= (before.ended_at or 0)


async def test_two_slots_run_two_jobs_at_once(env: Env) -> None:
    async with running(env.runner(slots=["cpu0", "cpu1"])) as runner:
        a, b = (env.submit(runner, "sleep", seconds=30) for _ in range(2))
        third = env.submit(runner, "outputs")
        ra, rb = await env.wait(a.job_id, "running"), await env.wait(b.job_id, "running")
        assert {ra.slot, rb.slot} == {"cpu0", "cpu1"}
        assert env.store.get("jobs", third.job_id).state == "queued"
        runner.cancel(a.job_id)
        done = await env.wait(third.job_id)
        assert done.state == "succeeded" and done.slot == ra.slot
        runner.cancel(b.job_id)
        ended_a = await env.wait(a.job_id)
    # The third job waited for a slot: it started only after the first job had ended.
    assert (done.started_at or 0) >= (ended_a.ended_at or 0)


async def test_reconcile_interrupts_what_had_started_and_keeps_the_queue(env: Env) -> None:
    queued = env.submit(env.runner(), "outputs")  # no scheduler: stays queued, as after a crash
    running_job = env.submit(env.runner(), "sleep")
    stranger = env.submit(env.runner(), "sleep")
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True,
                                env={**os.environ, "TUNELOG_JOB_ID": running_job.job_id})
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)  # its pid is recorded, it is not ours
    try:
        for row, proc in ((running_job, leftover), (stranger, unrelated)):
            env.store.append(f"job-{row.job_id}", [J.JobStarted(job_id=row.job_id, pid=proc.pid, slot="cpu0",
                                                                log_path="x")])
        async with running(env.runner()):
            for row in (running_job, stranger):
                done = await env.wait(row.job_id)
                assert (done.state, done.error) == ("interrupted", "daemon restarted")
            assert (await env.wait(queued.job_id)).state == "succeeded"
        assert env.tags(queued.job_id)[:2] == ["job-queued", "job-started"]
        assert leftover.wait(timeout=5) == -9
        assert unrelated.poll() is None
    finally:
        for proc in (leftover, unrelated):
            proc.kill()
            proc.wait()


async def test_jobs_submitted_before_run_starts_are_not_reconciled(env: Env) -> None:
    runner = env.runner()
    row = env.submit(runner, "outputs")
    async with running(runner):
        assert (await env.wait(row.job_id)).state == "succeeded"


async def test_resume_of_passes_the_checkpoint(env: Env) -> None:
    async with running(env.runner()) as runner:
        first = env.submit(runner, "checkpointing", steps=100_000)
        await env.until(first.job_id, lambda r: r.step > 5)
        runner.cancel(first.job_id)
        stopped = await env.wait(first.job_id)
        assert stopped.checkpoint_step
        target = stopped.checkpoint_step + 5
        second = env.submit(runner, "checkpointing", steps=target, resume_of=first.job_id)
        done = await env.wait(second.job_id)
    assert done.state == "succeeded", done.error
    assert done.outputs == {"step": target, "resumed_from": stopped.checkpoint_step}


async def test_resume_needs_a_checkpoint(env: Env) -> None:
    async with running(env.runner()) as runner:
        plain = await env.wait(env.submit(runner, "outputs").job_id)
        with pytest.raises(JobError, match="no checkpoint"):
            env.submit(runner, "checkpointing", resume_of=plain.job_id)
        with pytest.raises(NotFoundError):
            env.submit(runner, "checkpointing", resume_of="nope")


def test_submit_is_idempotent_by_command_id(env: Env) -> None:
    runner = env.runner()
    first = env.submit(runner, "sleep", command_id="cmd-1")
    again = env.submit(runner, "sleep", command_id="cmd-1")
    assert again == first
    assert len(env.store.read(types=["job-queued"])) == 1


def test_submit_checks_the_resource(env: Env) -> None:
    runner = env.runner()
    with pytest.raises(JobError, match="needs a GPU"):
        runner.submit(plugin="testops", operation="env", params={}, inputs={}, code_hash=env.code_hash,
                      plugin_version="0.1.0", resource="gpu")
    with pytest.raises(ValidationError):
        runner.submit(plugin="testops", operation="env", params={}, inputs={}, code_hash=env.code_hash,
                      plugin_version="0.1.0", resource="tpu")


def test_find_by_id_or_unique_prefix(env: Env) -> None:
    runner = env.runner()
    rows = [env.submit(runner, "sleep") for _ in range(3)]
    assert runner.find(rows[1].job_id) == rows[1]
    assert runner.find(rows[2].job_id[:-3]).job_id == rows[2].job_id
    with pytest.raises(ValidationError, match="matches 3 jobs"):
        runner.find(rows[0].job_id[:4])
    with pytest.raises(NotFoundError):
        runner.find("zzz")
    with pytest.raises(ValidationError):
        runner.find("")


def test_job_ids_sort_by_submission(env: Env) -> None:
    runner = env.runner()
    ids = [env.submit(runner, "sleep").job_id for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_detect_slots_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_slots({"TUNELOG_GPUS": "2"}) == ["gpu0", "gpu1"]
    assert detect_slots({"TUNELOG_GPUS": "0"}) == ["cpu0"]
    assert detect_slots({"TUNELOG_GPUS": "1,3"}) == ["gpu1", "gpu3"]
    assert detect_slots({"CUDA_VISIBLE_DEVICES": "2"}) == ["gpu2"]
    # nvidia-smi is a boundary we do not own and this machine has no GPU: a stand-in script
    # prints what `nvidia-smi -L` prints on a two-GPU machine.
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert detect_slots({}) == ["gpu0", "gpu1"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert detect_slots({}) == ["cpu0"]
