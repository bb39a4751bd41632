"""One job's attempt, the daemon's side of a worker: the worker's messages turned into events in the
real SQLite log (batched, in order, to the streams a job may write), the terminal event for each
way a worker ends, the worker's command line, environment and spec file, and the refusals before a
worker starts. Fast and in-process: the messages are the `Message`s a worker's frames decode to;
tests/daemon/test_jobs.py runs the same code with real worker processes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.daemon.jobs_support import Env, make_env
from tunelog.daemon.jobs.attempt import Attempt
from tunelog.daemon.jobs.processes import oom_kills
from tunelog.daemon.jobs.protocol import Message, encode_frame
from tunelog.events import jobs as J
from tunelog.events.base import Envelope
from tunelog.events.errors import JobError
from tunelog.events.plugins import PluginRemoved

pytestmark = pytest.mark.anyio

NOTE = PluginRemoved(name="note", path="/p")
"""A non-job event for `ctx.emit`."""


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def attempt(env: Env, *, slot: str = "cpu0", run_id: str | None = None, operation: str = "env",
            **params: Any) -> Attempt:
    row = env.submit(env.runner(), operation, run_id=run_id, **params)
    return Attempt(row, slot, store=env.store, paths=env.paths, python=sys.executable, grace_s=2.0, flush_s=0.01)


def appended(env: Env, stream: str) -> list[Envelope]:
    return [e for e in env.store.read(stream=stream) if e.type != "job-queued"]


def emitted(event: Any, stream: str) -> Message:
    return Message("event", {"stream": stream, "type": event.tag, "schema_version": event.schema_version,
                             "payload": msgspec.json.encode(event).decode()})


def test_progress_metrics_and_log_lines_wait_for_one_flush_in_that_order(env: Env) -> None:
    a = attempt(env)
    jid, stream = a.row.job_id, a.stream
    a.note("tunelog: from the daemon")
    a._handle(Message("progress", {"step": 1, "total": 9, "message": "first"}))
    a._handle(Message("progress", {"step": 2}))  # only the latest progress is kept
    points = [{"step": i, "loss": 1.0} for i in range(1001)]
    for p in points:
        a._handle(Message("metrics", p))
    a._handle(Message("log", {"line": 7}))
    assert appended(env, stream) == []
    a._flush()
    assert [e.event for e in appended(env, stream)] == [
        J.JobProgress(job_id=jid, step=2, total=None, message=""),
        J.JobMetrics(job_id=jid, points=points[:1000]), J.JobMetrics(job_id=jid, points=points[1000:]),
        J.JobLog(job_id=jid, lines=["tunelog: from the daemon", "7"])]
    assert len({e.position for e in appended(env, stream)}) == 4 and env.store.stream_version(stream) == 5
    a._flush()
    assert len(appended(env, stream)) == 4, "a second flush sent the buffers again"
    a._handle(Message("progress", {"step": "3", "total": 9, "message": 5}))
    a._flush()
    assert appended(env, stream)[-1].event == J.JobProgress(job_id=jid, step=3, total=9, message="5")


def test_artifacts_and_checkpoints_are_appended_at_once_after_what_was_buffered(env: Env) -> None:
    a = attempt(env)
    jid = a.row.job_id
    a._handle(Message("log", {"line": "saving"}))
    a._handle(Message("artifact", {"name": "adapter", "sha256": "a1", "size": 5}))
    a._handle(Message("artifact", {"name": "folder", "sha256": "a2", "size": 6, "kind": "dir"}))
    a._handle(Message("checkpoint", {"step": 4, "sha256": "c1", "size": 7}))
    envs = appended(env, a.stream)
    assert [e.event for e in envs] == [
        J.JobLog(job_id=jid, lines=["saving"]), J.JobArtifact(job_id=jid, name="adapter", sha256="a1", size=5),
        J.JobArtifact(job_id=jid, name="folder", sha256="a2", size=6, kind="dir"),
        J.JobCheckpointed(job_id=jid, step=4, sha256="c1", size=7)]
    assert envs[0].position + 1 == envs[1].position and envs[2].version == envs[1].version + 1


def test_a_message_of_an_unknown_kind_is_noted_in_the_log(env: Env) -> None:
    a = attempt(env)
    a._handle(Message("telemetry", {"x": 1}))
    a._flush()
    assert [e.event for e in appended(env, a.stream)] == [
        J.JobLog(job_id=a.row.job_id, lines=["tunelog: ignored a message of unknown kind 'telemetry'"])]


@pytest.mark.parametrize(("msg", "error"), [
    (Message("log", {}), "the worker sent a malformed 'log' message (KeyError('line'))"),
    (Message("progress", {"total": 3}), "the worker sent a malformed 'progress' message (KeyError('step'))"),
    (Message("progress", {"step": "x"}),
     "the worker sent a malformed 'progress' message (ValueError(\"invalid literal for int() with base 10: 'x'\"))"),
    (Message("progress", {"step": None}), "the worker sent a malformed 'progress' message (TypeError("),
    (Message("artifact", {"name": "a", "size": 1}), "the worker sent a malformed 'artifact' message (KeyError('sha256'))"),
    (Message("artifact", {"name": "a", "sha256": "s", "size": "big"}),
     "the worker sent a malformed 'artifact' message (ValidationError('Expected `int`, got `str` - at `$.size`'))"),
    (Message("checkpoint", {"sha256": "s", "size": 1}), "the worker sent a malformed 'checkpoint' message (KeyError('step'))"),
    (Message("result", {}), "the worker sent a malformed 'result' message (KeyError('outputs'))"),
    (Message("result", {"outputs": 3}), "the worker sent a malformed 'result' message (TypeError("),
    (Message("event", {"type": "x"}), "the worker sent a malformed 'event' message (KeyError('stream'))"),
])
def test_a_malformed_message_is_a_job_error_naming_its_kind_and_appends_nothing(env: Env, msg: Message,
                                                                                 error: str) -> None:
    a = attempt(env)
    with pytest.raises(JobError) as err:
        a._handle(msg)
    assert err.value.message.startswith(error)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    a._flush()
    assert appended(env, a.stream) == []


def test_events_a_job_emits_go_to_its_own_streams_only(env: Env) -> None:
    a = attempt(env, run_id="r1")
    jid, stream = a.row.job_id, a.stream
    merge = "merge-0123456789abcdef"
    a._handle(Message("log", {"line": "before"}))
    a._handle(emitted(NOTE, stream))  # with what was buffered, in one append
    a._handle(Message("log", {"line": "between"}))
    a._handle(emitted(NOTE, "run-r1"))  # the buffer goes first, to the job's stream
    a._handle(emitted(NOTE, merge))
    refused = [emitted(NOTE, "daemon"), emitted(NOTE, "run-r2"), emitted(NOTE, "merge-0123456789abcde"),
               emitted(NOTE, merge + "0"), emitted(NOTE, "merge-0123456789ABCDEF"),
               emitted(J.JobSucceeded(job_id=jid, outputs={}, duration_s=0.0), stream)]
    for msg in refused:
        a._handle(msg)
    a._handle(Message("event", {"stream": stream, "type": "plugin-removed", "schema_version": 1, "payload": "{"}))
    a._handle(Message("event", {"stream": stream, "type": "plugin-removed", "payload": "{}"}))
    a._handle(Message("event", {"stream": stream, "type": "plugin-removed", "schema_version": 1,
                                "payload": '{"type": "plugin-removed", "name": 3, "path": "/p"}'}))
    a._flush()
    mine = appended(env, stream)
    assert [e.event for e in mine[:3]] == [J.JobLog(job_id=jid, lines=["before"]), NOTE,
                                           J.JobLog(job_id=jid, lines=["between"])]
    assert mine[0].position + 1 == mine[1].position
    [to_run] = env.store.read(stream="run-r1")
    [to_merge] = env.store.read(stream=merge)
    assert to_run.position == mine[2].position + 1
    for envelope in (to_run, to_merge):
        assert (envelope.event, envelope.causation_id, envelope.correlation_id) == (NOTE, stream, "r1")
    assert mine[1].causation_id is None and mine[1].correlation_id is None
    [log] = mine[3:]
    allowed = f"non-job events to {stream}, run-r1 or merge-<sha256[:16]>"
    assert log.event.lines[:6] == [f"tunelog: refused a {m.body['type']!r} event for stream {m.body['stream']!r}: "
                                   f"a job may emit only {allowed}" for m in refused]
    assert [line.split(":")[:2] for line in log.event.lines[6:]] == [
        ["tunelog", " refused an unreadable 'plugin-removed' event"]] * 3
    assert log.event.lines[7] == "tunelog: refused an unreadable 'plugin-removed' event: 'schema_version'"
    assert "Expected `str`, got `int`" in log.event.lines[8]
    assert env.store.read(stream="daemon") == []


def test_a_job_outside_a_run_may_write_only_its_own_stream(env: Env) -> None:
    a = attempt(env)
    a._handle(emitted(NOTE, "run-r1"))
    a._flush()
    [log] = [e.event for e in appended(env, a.stream)]
    assert log.lines == [f"tunelog: refused a 'plugin-removed' event for stream 'run-r1': a job may emit only "
                         f"non-job events to {a.stream} or merge-<sha256[:16]>"]


def outcome(env: Env, rc: int, *messages: Message, log: str = "", stop: str | None = None, ran_s: float = 0.0,
            oom_kills_during: int = 0) -> J.JobFailed | Any:
    """The terminal event of a worker that ran `ran_s` seconds, during which the kernel's OOM killer
    (its count in our cgroup, read before and after) struck `oom_kills_during` times."""
    a = attempt(env)
    a._started -= ran_s
    a._oom_before = oom_kills() - oom_kills_during
    a.folder.mkdir(parents=True)
    a.log_path.write_text(log)
    for msg in messages:
        a._handle(msg)
    if stop:
        a.request_stop(stop)
    return a._outcome(rc)


def failed(job_id: str, error: str, cause: str, **kw: Any) -> J.JobFailed:
    return J.JobFailed(job_id=job_id, error=error, cause=cause, **kw)


def test_how_the_worker_ended_decides_the_terminal_event(env: Env) -> None:
    def jid(event: Any) -> str:
        return str(event.job_id)

    done = outcome(env, 0, Message("result", {"outputs": {"adapter": "a1"}}), stop="cancel", ran_s=1.23456)
    assert isinstance(done, J.JobSucceeded) and done.outputs == {"adapter": "a1"} and 1.234 <= done.duration_s < 30
    assert done.duration_s == round(done.duration_s, 3) != round(done.duration_s, 2)
    e = outcome(env, 0, log="one\ntwo\n")
    assert e == failed(jid(e), "worker exited with status 0 before returning a result", "exit", exit_code=0,
                       last_lines=["one", "two"])
    e = outcome(env, 3)
    assert e == failed(jid(e), "worker exited with status 3 before returning a result", "exit", exit_code=3)
    e = outcome(env, -11)
    assert e == failed(jid(e), "worker died from SIGSEGV (Segmentation fault)", "signal", signal="SIGSEGV")
    e = outcome(env, -9)
    assert e == failed(jid(e), "killed by SIGKILL (out of memory?)", "signal", signal="SIGKILL")
    e = outcome(env, -9, oom_kills_during=1)
    assert e == failed(jid(e), "killed by the kernel's out-of-memory killer", "oom", signal="SIGKILL")
    e = outcome(env, -32)  # glibc has no description for it
    assert e == failed(jid(e), "worker died from signal 32 (unknown signal)", "signal", signal="signal 32")
    e = outcome(env, -34)
    assert e == failed(jid(e), "worker died from SIGRTMIN (Real-time signal 0)", "signal", signal="SIGRTMIN")
    e = outcome(env, 1, Message("error", {"error": "ValueError: bad row", "traceback": "Traceback ...",
                                          "error_type": "ValueError", "message": "bad row\nrow 3", "hint": "fix it",
                                          "problems": [{"where": "row 3"}, "not a problem", {"where": "row 4"}]}))
    assert e == failed(jid(e), "ValueError: bad row", "exception", exit_code=1, traceback="Traceback ...",
                       error_type="ValueError", message="bad row\nrow 3", hint="fix it",
                       problems=[{"where": "row 3"}, {"where": "row 4"}])
    e = outcome(env, -15, Message("error", {"hint": "", "problems": "row 3"}))
    assert e == failed(jid(e), "the operation raised", "exception", signal="SIGTERM")
    for raised in ["MemoryError", "OutOfMemoryError: CUDA out of memory"]:
        e = outcome(env, 1, Message("error", {"error": raised}))
        assert e == failed(jid(e), raised, "oom", exit_code=1)
    e = outcome(env, 1, Message("error", {"error": "RuntimeError: MemoryError"}))
    assert e.cause == "exception"


def test_a_lost_worker_and_a_stopped_one_end_as_such(env: Env) -> None:
    a = attempt(env)
    a._lost = "the worker sent a frame of 99 bytes"
    a._handle(Message("error", {"error": "ValueError"}))
    e = a._outcome(-9)
    assert (e.error, e.cause, e.exit_code, e.signal) == ("lost contact with the worker: the worker sent a frame of 99 "
                                                         "bytes", "lost", None, "SIGKILL")
    assert isinstance(e, J.JobFailed) and e.error_type == "" and e.last_lines == []
    cancelled = outcome(env, -15, stop="cancel")
    assert cancelled == J.JobCancelled(job_id=cancelled.job_id, forced=False)
    assert outcome(env, -15, stop="shutdown") is None  # never started: still queued for the next daemon


def test_a_stop_request_is_kept_once_and_ignored_after_a_result(env: Env) -> None:
    a = attempt(env)
    a.request_stop("cancel")
    a.request_stop("shutdown")
    assert a._stop_reason == "cancel" and a._stop.is_set()
    b = attempt(env)
    b._handle(Message("result", {"outputs": {}}))
    b.request_stop("cancel")
    assert b._stop_reason is None and not b._stop.is_set()


async def test_a_job_stopped_before_its_worker_started(env: Env) -> None:
    shut = attempt(env)
    shut.request_stop("shutdown")
    await shut.run()
    assert appended(env, shut.stream) == []
    cancel = attempt(env)
    cancel.note("tunelog: about to be cancelled")
    cancel.request_stop("cancel")
    await cancel.run()
    assert [e.event for e in appended(env, cancel.stream)] == [
        J.JobLog(job_id=cancel.row.job_id, lines=["tunelog: about to be cancelled"]),
        J.JobCancelled(job_id=cancel.row.job_id)]


async def test_a_worker_that_cannot_start_fails_the_job_saying_why(env: Env) -> None:
    missing = attempt(env)
    missing._code_dir = env.paths.plugin_code / ("0" * 64)
    await missing.run()
    [e] = [e.event for e in appended(env, missing.stream)]
    assert e == J.JobFailed(job_id=missing.row.job_id, cause="start", error=(
        f"could not start the worker: the code snapshot {env.code_hash[:12]} of plugin 'testops' is missing"))
    uses = attempt(env)
    uses.row = msgspec.structs.replace(uses.row, uses={"helper": "ab" * 32, "other": env.code_hash,
                                                       "third": "cd" * 32})
    await uses.run()
    [e] = [e.event for e in appended(env, uses.stream)]
    assert e.error == ("could not start the worker: the code snapshot of plugin helper (abababababab), "
                       "third (cdcdcdcdcdcd) that the job calls is missing") and e.cause == "start"
    assert not uses.folder.exists()
    resume = attempt(env)
    resume.row = msgspec.structs.replace(resume.row, resume_of="nope")
    await resume.run()
    [e] = [e.event for e in appended(env, resume.stream)]
    assert e.error == "could not start the worker: job nope has no checkpoint to resume from"


def test_the_checkpoint_a_resumed_job_starts_from(env: Env) -> None:
    a = attempt(env)
    assert a._resume_sha() is None
    prev = a.row.job_id
    a.row = msgspec.structs.replace(a.row, resume_of=prev)
    with pytest.raises(JobError, match=f"^job {prev} has no checkpoint to resume from$"):
        a._resume_sha()
    env.store.append(a.stream, [J.JobCheckpointed(job_id=prev, step=3, sha256="c3", size=1)])
    assert a._resume_sha() == "c3"
    a.row = msgspec.structs.replace(a.row, resume_checkpoint="c1")
    assert a._resume_sha() == "c1"


def test_the_worker_command_and_environment_follow_the_slot(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("TUNELOG_TEST_INHERITED", "yes")
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        monkeypatch.delenv(name, raising=False)
    worker = ["-m", "tunelog.daemon.jobs.worker", "job.json"]
    one = attempt(env)
    assert one._command() == [sys.executable, "-P", *worker]
    cpu = attempt(env, slot="cpu0,cpu1,cpu2")._command()
    assert cpu[:8] == [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "3",
                       "--master_port"] and cpu[8].isdigit() and cpu[9:] == worker
    gpu = attempt(env, slot="gpu1,gpu3")._command()
    assert "accelerate" in " ".join(gpu) and gpu[-3:] == worker and "--num_processes" in gpu
    assert gpu[gpu.index("--num_processes") + 1] == "2" and gpu[gpu.index("--main_process_port") + 1].isdigit()
    seen = one._env()
    assert {k: seen[k] for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "TUNELOG_JOB_ID",
                                 "TUNELOG_TEST_INHERITED")} == {
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "TUNELOG_JOB_ID": one.row.job_id,
        "TUNELOG_TEST_INHERITED": "yes"}
    assert "CUDA_VISIBLE_DEVICES" not in seen and "TUNELOG_JOB_ID" not in os.environ
    assert attempt(env, slot="gpu1,gpu3")._env()["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert attempt(env, slot="gpu0")._env()["CUDA_VISIBLE_DEVICES"] == "0"


async def test_a_worker_runs_from_a_private_spec_and_its_start_and_end_are_logged(env: Env) -> None:
    a = attempt(env, run_id="r7")
    a.row = msgspec.structs.replace(a.row, uses={"testops": env.code_hash}, inputs={"x": 1})
    await a.run()
    jid = a.row.job_id
    events = appended(env, a.stream)
    started, done = events[0].event, events[-1].event
    assert started == J.JobStarted(job_id=jid, pid=started.pid, slot="cpu0", log_path=str(a.log_path), run_id="r7")
    assert isinstance(done, J.JobSucceeded), done
    assert (a.folder / "worker.pid").read_text().split()[0] == str(started.pid)  # how a dead daemon's heir finds it
    assert done.outputs["seen"]["cwd"] == str(env.paths.jobs / jid) and done.outputs["seen"]["job_id"] == jid
    assert done.outputs["seen"]["pgid_is_pid"] is True and done.outputs["seen"]["no_bytecode"] is True
    spec = json.loads((a.folder / "job.json").read_text())
    snapshots = str(env.paths.plugin_code / env.code_hash)
    assert spec == {"job_id": jid, "plugin": "testops", "operation": "env", "params": a.row.params, "inputs": {"x": 1},
                    "code_dir": snapshots, "artifacts": str(env.paths.artifacts), "workdir": str(a.folder / "work"),
                    "resume_sha256": None, "run_id": "r7", "cache_dir": str(env.paths.home / "cache"),
                    "uses": {"testops": snapshots}}
    assert stat.S_IMODE((a.folder / "job.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(a.log_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(a.folder.stat().st_mode) == 0o700


def stand_in(tmp_path: Path, script: str) -> str:
    """A stand-in for the worker's interpreter: a shell script run instead of `python -P -m
    tunelog.daemon.jobs.worker job.json` (it ignores those arguments), for the ways a worker can
    misbehave that the real worker never does. A real process with the real pipe and process group."""
    path = tmp_path / "stand-in-python"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def gone(pgid: int, timeout: float = 5.0) -> bool:
    """Whether the process group is gone within `timeout` (a killed orphan is reaped by init, later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


async def test_a_worker_whose_channel_breaks_is_killed_with_its_group_and_the_job_lost(env: Env, tmp_path: Path) -> None:
    a = attempt(env)
    # a child left in the group, then a frame header announcing 4 GiB
    a.python = stand_in(tmp_path, "sleep 60 &\nprintf '\\377\\377\\377\\377'\nwait")
    with anyio.fail_after(20):
        await a.run()
    started, done = (e.event for e in appended(env, a.stream))
    assert isinstance(done, J.JobFailed)
    assert (done.cause, done.error, done.signal, done.exit_code) == (
        "lost", "lost contact with the worker: the worker sent a frame of 4294967295 bytes (limit 67108864)",
        "SIGKILL", None)
    assert gone(started.pid)


@pytest.mark.parametrize(("kind", "body", "ending"), [
    ("result", {"outputs": {"a": 1}}, "job-succeeded"),
    ("error", {"error": "ValueError: bad"}, "job-failed"),
])
async def test_a_worker_that_answered_and_lingers_is_killed_after_the_grace_period(
        env: Env, tmp_path: Path, kind: str, body: dict[str, Any], ending: str) -> None:
    a = attempt(env)
    a.grace_s = 0.5
    # The job's folder is there already (a daemon that died before the worker started): the spec
    # is written anew, the log goes on.
    a.folder.mkdir(mode=0o700, parents=True)
    (a.folder / "job.json").write_text("x" * 10_000)
    a.log_path.write_text("from before\n")
    octal = "".join(f"\\{b:03o}" for b in encode_frame(kind, body))  # printf's escapes
    a.python = stand_in(tmp_path, "sleep 60 &\necho 'to the log' >&2\n: > made-by-worker\n"
                                  f"readlink /proc/self/fd/0 > stdin-is\nprintf '{octal}'\nwait")
    started = time.monotonic()
    with anyio.fail_after(20):
        await a.run()
    took = time.monotonic() - started
    events = [e.event for e in appended(env, a.stream)]
    assert [e.tag for e in events] == ["job-started", ending] and 0.5 <= took < 10
    assert gone(events[0].pid)
    assert json.loads((a.folder / "job.json").read_text())["job_id"] == a.row.job_id
    assert a.log_path.read_text() == "from before\nto the log\n"
    assert stat.S_IMODE((a.folder / "made-by-worker").stat().st_mode) == 0o600  # the daemon's umask
    assert (a.folder / "stdin-is").read_text() == "/dev/null\n"
    if kind == "result":
        assert events[-1].outputs == {"a": 1}
    else:
        assert (events[-1].error, events[-1].cause, events[-1].signal, events[-1].last_lines) == (
            "ValueError: bad", "exception", "SIGKILL", ["from before", "to the log"])


async def test_a_worker_that_exits_without_answering_fails_with_its_status_and_log(env: Env, tmp_path: Path) -> None:
    a = attempt(env)
    shutil.rmtree(env.paths.jobs)  # removed while the daemon runs: made again
    a.python = stand_in(tmp_path, "echo 'giving up' >&2\nexit 3")
    with anyio.fail_after(20):
        await a.run()
    [_, e] = [e.event for e in appended(env, a.stream)]
    assert e == J.JobFailed(job_id=a.row.job_id, error="worker exited with status 3 before returning a result",
                            cause="exit", exit_code=3, last_lines=["giving up"])


@pytest.mark.parametrize(("on_term", "reason", "forced"), [
    ("exit 0", "cancel", False), ("", "cancel", True), ("", "shutdown", True)])
async def test_a_running_worker_is_stopped_by_sigterm_then_sigkill_after_the_grace_period(
        env: Env, tmp_path: Path, on_term: str, reason: str, forced: bool) -> None:
    a = attempt(env)
    a.grace_s = 0.5
    # `trap '' TERM` ignores SIGTERM in the script and in the child it leaves in the group.
    a.python = stand_in(tmp_path, f"trap '{on_term}' TERM\n: > ready\nwhile :; do sleep 0.05; done")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        with anyio.fail_after(20):
            while not (a.folder / "ready").exists():
                await anyio.sleep(0.01)
        asked = time.monotonic()
        a.request_stop(reason)
    took = time.monotonic() - asked
    events = [e.event for e in appended(env, a.stream)]
    assert gone(events[0].pid)
    if reason == "cancel":
        assert events[1:] == [J.JobCancelled(job_id=a.row.job_id, forced=forced)]
    else:
        assert events[1:] == [J.JobInterrupted(job_id=a.row.job_id, reason="daemon stopped")], events
    assert 0.5 <= took < 10 or not forced


async def test_what_a_running_worker_sends_is_appended_while_it_runs(env: Env, tmp_path: Path) -> None:
    a = attempt(env)
    octal = "".join(f"\\{b:03o}" for b in encode_frame("log", {"line": "halfway"}))
    a.python = stand_in(tmp_path, f"printf '{octal}'\nsleep 60 &\nwait")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        with anyio.fail_after(20):  # the flush loop appends it, not the end of the job
            while not env.store.read(stream=a.stream, types=["job-log"]):
                await anyio.sleep(0.01)
        assert env.store.read(stream=a.stream, types=["job-cancelled"]) == []
        a.request_stop("cancel")
    assert [e.event.tag for e in appended(env, a.stream)] == ["job-started", "job-log", "job-cancelled"]


async def test_a_worker_whose_supervisor_is_cancelled_is_killed_and_the_job_interrupted(env: Env,
                                                                                       tmp_path: Path) -> None:
    a = attempt(env)
    a.python = stand_in(tmp_path, "trap '' TERM\nsleep 60 &\n: > ready\nwait\nwait")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        with anyio.fail_after(20):
            while not (a.folder / "ready").exists():
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()  # the daemon's task group torn down, no stop request
    events = [e.event for e in appended(env, a.stream)]
    assert events[1:] == [J.JobInterrupted(job_id=a.row.job_id, reason="daemon stopped")], events
    assert gone(events[0].pid)


async def test_a_worker_that_cannot_be_executed_fails_the_job_at_start(env: Env, tmp_path: Path) -> None:
    a = attempt(env)
    a.python = str(tmp_path / "no-such-python")
    await a.run()
    [e] = [e.event for e in appended(env, a.stream)]
    assert isinstance(e, J.JobFailed) and e.cause == "start"
    assert e.error.startswith("could not start the worker: [Errno 2] No such file or directory")
