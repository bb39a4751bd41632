"""Job runner: cancelling queued, cooperative and stubborn jobs, and stopping the daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from tests.daemon.jobs_support import Env, make_env, running
from tunelog.events import jobs as J
from tunelog.events.errors import JobError, NotFoundError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["cold", "warm"])
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
    """Each test with workers started as new processes, and forked from the warm worker host."""
    return make_env(tmp_path, warm=request.param == "warm")


async def test_cancel_of_a_job_that_ignores_sigterm_kills_it_after_the_grace_period(env: Env) -> None:
    async with running(env.runner(grace_s=1.0)) as runner:
        row = env.submit(runner, "hang", seconds=60)
        await env.until(row.job_id, lambda r: r.message == "hanging")  # SIGTERM is ignored from now on
        started = time.monotonic()
        asked = runner.cancel(row.job_id)
        assert asked.cancel_requested and asked.state == "running"
        done = await env.wait(row.job_id)
        took = time.monotonic() - started
    assert done.state == "cancelled"
    assert env.events(row.job_id)[-1] == J.JobCancelled(job_id=row.job_id, forced=True)
    assert 1.0 <= took < 1.0 + 2.0


async def test_cancel_of_a_cooperative_job_saves_a_checkpoint(env: Env) -> None:
    async with running(env.runner()) as runner:
        row = env.submit(runner, "checkpointing", steps=100_000)
        await env.until(row.job_id, lambda r: r.step > 10)
        runner.cancel(row.job_id, reason="enough")
        done = await env.wait(row.job_id)
    assert env.tags(row.job_id)[-3:] == ["job-progress", "job-checkpointed", "job-cancelled"]
    assert env.events(row.job_id, "job-cancel-requested") == [J.JobCancelRequested(job_id=row.job_id,
                                                                                  reason="enough")]
    assert env.events(row.job_id)[-1] == J.JobCancelled(job_id=row.job_id, forced=False)
    assert done.checkpoint_sha256 and done.checkpoint_step and done.checkpoint_step > 0
    state = env.artifacts.path(done.checkpoint_sha256) / "state.json"
    assert f'"step": {done.checkpoint_step}' in state.read_text()


async def test_cancel_of_a_queued_job_is_immediate_and_it_never_starts(env: Env) -> None:
    async with running(env.runner()) as runner:
        busy = env.submit(runner, "sleep", seconds=30)
        waiting = env.submit(runner, "outputs")
        await env.wait(busy.job_id, "running")
        row = runner.cancel(waiting.job_id)
        assert row.state == "cancelled"
        runner.cancel(busy.job_id)
        await env.wait(busy.job_id)
        # The slot is free again: a job queued after the cancelled one runs, so the scheduler has
        # looked at the queue since (FIFO: the cancelled job would have started first).
        later = env.submit(runner, "outputs")
        assert (await env.wait(later.job_id)).state == "succeeded"
    assert env.tags(waiting.job_id) == ["job-queued", "job-cancel-requested", "job-cancelled"]
    assert env.store.get("jobs", busy.job_id).state == "cancelled"


async def test_cancel_of_a_finished_job_is_an_error_but_a_retry_is_not(env: Env) -> None:
    async with running(env.runner()) as runner:
        row = env.submit(runner, "sleep", seconds=30)
        await env.wait(row.job_id, "running")
        first = runner.cancel(row.job_id[:12], command_id="c-1")
        await env.wait(row.job_id)
        again = runner.cancel(row.job_id, command_id="c-1")
        assert again.job_id == first.job_id and again.state == "cancelled"
        with pytest.raises(JobError, match="already ended"):
            runner.cancel(row.job_id)
        with pytest.raises(NotFoundError):
            runner.cancel("ffffffff")
    assert len(env.events(row.job_id, "job-cancel-requested")) == 1


async def test_cancel_from_another_thread(env: Env) -> None:
    async with running(env.runner()) as runner:
        row = env.submit(runner, "sleep", seconds=30)
        await env.wait(row.job_id, "running")
        await anyio.to_thread.run_sync(lambda: runner.cancel(row.job_id))
        done = await env.wait(row.job_id)
    assert done.state == "cancelled"


async def test_shutdown_interrupts_running_jobs_after_they_checkpoint(env: Env) -> None:
    runner = env.runner()
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        row = env.submit(runner, "checkpointing", steps=100_000)
        queued = env.submit(runner, "outputs")
        await env.until(row.job_id, lambda r: r.step > 0)
        await runner.shutdown()
        tg.cancel_scope.cancel()
    done = env.store.get("jobs", row.job_id)
    assert (done.state, done.error) == ("interrupted", "daemon stopped")
    assert done.checkpoint_sha256
    assert env.store.get("jobs", queued.job_id).state == "queued"  # the next start reconciles it


async def test_a_cancelled_scheduler_leaves_no_worker_behind(env: Env) -> None:
    runner = env.runner()
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        row = env.submit(runner, "hang", seconds=60)
        started = await env.until(row.job_id, lambda r: r.message == "hanging")
        tg.cancel_scope.cancel()  # no shutdown(): the daemon's task group is torn down
    done = env.store.get("jobs", row.job_id)
    assert (done.state, done.error) == ("interrupted", "daemon stopped")
    assert started.pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(started.pid, 0)
