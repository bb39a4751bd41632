"""Job runner: a job's life from queued to its terminal event, with real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.jobs_support import Env, make_env, running
from tunelog.events import jobs as J

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["cold", "warm"])
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Env:
    """Each test with workers started as new processes, and forked from the warm worker host."""
    return make_env(tmp_path, warm=request.param == "warm")


async def test_lifecycle_with_input_and_output_artifacts(env: Env) -> None:
    data = env.artifacts.put_bytes(b"from the input artifact")
    async with running(env.runner()) as runner:
        row = env.submit(runner, "outputs", inputs={"data": data.sha256}, text="hi")
        assert row.state == "queued"
        await env.wait(row.job_id, "running")
        done = await env.wait(row.job_id)
    assert done.state == "succeeded", done.error
    assert env.tags(row.job_id) == ["job-queued", "job-started", "job-artifact", "job-succeeded"]
    report = done.outputs["report"]
    assert env.artifacts.read_bytes(report) == b"hi\nfrom the input artifact"
    assert done.artifacts == {"report": report}
    assert done.outputs["text"] == "hi\nfrom the input artifact"
    (succeeded,) = env.events(row.job_id, "job-succeeded")
    assert isinstance(succeeded, J.JobSucceeded) and succeeded.duration_s > 0
    assert done.log_path == str(env.paths.jobs / row.job_id / "worker.log")
    assert done.pid and done.slot == "cpu0"


async def test_worker_runs_in_its_job_folder_and_own_process_group(env: Env) -> None:
    async with running(env.runner(slots=["gpu7"])) as runner:
        done = await env.wait(env.submit(runner, "env").job_id)
    seen = done.outputs["seen"]
    assert seen == {"cuda": "7", "cwd": str(env.paths.jobs / done.job_id), "job_id": done.job_id,
                    "no_bytecode": True, "pgid_is_pid": True, "package": "tunelog_plugin_testops"}
    assert not list((env.paths.plugin_code / env.code_hash).rglob("__pycache__"))


async def test_metrics_are_batched_and_complete(env: Env) -> None:
    async with running(env.runner()) as runner:
        done = await env.wait(env.submit(runner, "progress", n=500).job_id)
    assert done.state == "succeeded", done.error
    batches = env.events(done.job_id, "job-metrics")
    points = [p for b in batches for p in b.points]  # type: ignore[attr-defined]
    assert [p["step"] for p in points] == list(range(500))
    assert len(batches) <= 10, "500 points sent at once must land in a few appends"
    assert points[-1] == {"step": 499, "loss": 1.0 / 500, "lr": 0.001}
    assert done.step == 500 and done.total == 500
    assert done.metrics["loss"] == 1.0 / 500
    lines = [line for e in env.events(done.job_id, "job-log") for line in e.lines]  # type: ignore[attr-defined]
    assert lines == [f"point {i}" for i in range(0, 500, 50)]
    log = Path(done.log_path or "").read_text()
    assert "a print() goes to worker.log" in log


async def test_exception_fails_the_job_with_its_traceback(env: Env) -> None:
    async with running(env.runner()) as runner:
        done = await env.wait(env.submit(runner, "fail").job_id)
    assert (done.state, done.cause, done.error) == ("failed", "exception", "ValueError: boom")
    assert 'raise ValueError("boom")' in done.traceback and "backend.py" in done.traceback
    assert "about to fail" in done.last_lines
    (failed,) = env.events(done.job_id, "job-failed")
    assert isinstance(failed, J.JobFailed) and failed.exit_code == 1 and failed.signal is None


@pytest.mark.parametrize(("how", "name"), [("segv", "SIGSEGV"), ("abort", "SIGABRT")])
async def test_crash_fails_the_job_with_the_signal(env: Env, how: str, name: str) -> None:
    async with running(env.runner()) as runner:
        done = await env.wait(env.submit(runner, "crash", how=how).job_id)
    (failed,) = env.events(done.job_id, "job-failed")
    assert isinstance(failed, J.JobFailed)
    assert (failed.cause, failed.signal, failed.exit_code) == ("signal", name, None)
    assert name in failed.error
    log = Path(done.log_path or "").read_text()
    assert "about to crash" in log and "Fatal Python error" in log  # faulthandler's stack dump
    assert failed.last_lines == log.splitlines()[-20:]


async def test_exit_without_result(env: Env) -> None:
    async with running(env.runner()) as runner:
        done = await env.wait(env.submit(runner, "exit", code=3).job_id)
    (failed,) = env.events(done.job_id, "job-failed")
    assert isinstance(failed, J.JobFailed)
    assert (failed.cause, failed.exit_code) == ("exit", 3)
    assert "status 3" in failed.error


async def test_sigkill_from_outside_fails_the_job_and_the_runner_goes_on(env: Env) -> None:
    async with running(env.runner()) as runner:
        victim = env.submit(runner, "hang", seconds=30)
        after = env.submit(runner, "outputs")
        row = await env.until(victim.job_id, lambda r: r.message == "hanging")
        assert row.pid is not None
        os.kill(row.pid, signal.SIGKILL)
        killed = await env.wait(victim.job_id)
        done = await env.wait(after.job_id)
    assert killed.state == "failed" and killed.cause in ("signal", "oom")
    assert "SIGKILL" in killed.error
    assert done.state == "succeeded"


async def test_unknown_operation_and_missing_code_fail_cleanly(env: Env) -> None:
    async with running(env.runner()) as runner:
        bad_op = runner.submit(plugin="testops", operation="nope", params={}, inputs={}, code_hash=env.code_hash,
                               plugin_version="0.1.0", resource="cpu")
        no_code = runner.submit(plugin="testops", operation="env", params={}, inputs={}, code_hash="0" * 64,
                                plugin_version="0.1.0", resource="cpu")
        op_failed = await env.wait(bad_op.job_id)
        start_failed = await env.wait(no_code.job_id)
    assert op_failed.cause == "exception" and "no operation 'nope'" in op_failed.error
    assert start_failed.cause == "start" and "snapshot" in start_failed.error
    assert env.tags(no_code.job_id) == ["job-queued", "job-failed"]


async def test_emitted_events_go_to_allowed_streams_only(env: Env) -> None:
    async with running(env.runner()) as runner:
        done = await env.wait(env.submit(runner, "emit", run_id="r1", stream="run-r1").job_id)
    assert done.state == "succeeded", done.error
    assert [e.type for e in env.store.read(stream="run-r1")] == ["plugin-removed"]
    assert env.store.read(stream="daemon") == []
    # The refusal lines are log lines, batched per flush: one job-log event, or two on a busy machine.
    assert [t for t in env.tags(done.job_id) if t != "job-log"] == ["job-queued", "job-started", "plugin-removed",
                                                                    "job-succeeded"]
    lines = [line for e in env.events(done.job_id, "job-log") for line in e.lines]  # type: ignore[attr-defined]
    assert len(lines) == 2 and all(line.startswith("tunelog: refused") for line in lines)
    assert "'daemon'" in lines[0] and "'job-succeeded'" in lines[1]


def test_daemon_modules_do_not_import_torch() -> None:
    code = ("import sys, tunelog.daemon.jobs.runner, tunelog.daemon.jobs.protocol, tunelog.daemon.jobs.attempt; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
