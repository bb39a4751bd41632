"""The queue lives in the log: a daemon stopped (SIGTERM) or killed (-9) with a job at any state
keeps every job that had not started queued, in its place, and runs it after the restart; a job
whose worker had started ends interrupted, and a run node continues from its checkpoint.

The states: `queued` (a run node's job and a standalone one behind a running job on the only
slot), `starting` (stopped as soon as job-started shows the worker process exists, typically
before it reports), `running` (it reported progress), `checkpointing` (a run node saving its checkpoint on the way out; with
kill -9 the daemon dies once the checkpoint is recorded, before the job's end is).
Real daemons, real workers (the testops fixture plugin); every wait reads the event log."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.daemon_proc import FIXTURES, Daemon, running
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import build_services
from tunelog.events import jobs as J
from tunelog.events.base import Event

ONE_SLOT = {"TUNELOG_SLOTS": "cpu0"}
SIGNALS = [pytest.param(signal.SIGTERM, id="sigterm"), pytest.param(signal.SIGKILL, id="kill9")]
COUNT = {"nodes": {"count": {"op": "testops.checkpointing", "params": {"steps": 200, "step_s": 0.02}}}}
ONE_NODE = {"nodes": {"n": {"op": "testops.outputs", "params": {"text": "queued node"}}}}


def events(d: Daemon, stream: str) -> list[dict[str, Any]]:
    r = d.get("/v1/events", params={"stream": stream, "limit": 10_000})
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


def wait_event(d: Daemon, stream: str, tag: str, *, check: Callable[[dict[str, Any]], bool] = lambda e: True,
               timeout: float = 30.0) -> dict[str, Any]:
    """The first event of `stream` with this tag (whose payload passes `check`), polling the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(d, stream) if e["type"] == tag and check(e["event"])]
        if found:
            return found[0]
        time.sleep(0.05)
    raise TimeoutError(f"no {tag} in {stream}: {[e['type'] for e in events(d, stream)]}")


def wait_in_file(db: Path, stream: str, tag: str, *, timeout: float = 30.0) -> None:
    """Wait for an event by reading the log file itself (a stopping daemon no longer answers)."""
    deadline = time.monotonic() + timeout
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        while not conn.execute("SELECT 1 FROM events WHERE stream = ? AND type = ?", (stream, tag)).fetchone():
            assert time.monotonic() < deadline, f"no {tag} in {stream}"
            time.sleep(0.02)
    finally:
        conn.close()


def wait_job_end(d: Daemon, job_id: str) -> dict[str, Any]:
    return d.wait_job(job_id, ("succeeded", "failed", "cancelled", "interrupted"), timeout=60)


def wait_run_end(d: Daemon, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (view := d.get(f"/v1/runs/{run_id}").json())["run"]["state"] == "running":
        assert time.monotonic() < deadline, view["run"]["nodes"]
        time.sleep(0.05)
    return view  # type: ignore[no-any-return]


def tags(d: Daemon, job_id: str) -> list[str]:
    return [e["type"] for e in events(d, f"job-{job_id}") if e["type"] not in ("job-progress", "job-log",
                                                                              "job-metrics", "job-artifact")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("state", ["queued", "starting", "running", "checkpointing"])
def test_a_daemon_stopped_at_any_job_state_keeps_the_queue(tmp_path: Path, state: str, sig: int) -> None:
    home = tmp_path / "home"
    d = Daemon(home, env=ONE_SLOT).start()
    run_id = None
    if state == "checkpointing":
        run_id = d.post("/v1/runs", json={"graph": COUNT}).json()["run"]["run_id"]
        started = wait_event(d, f"run-{run_id}", "node-queued")["event"]["job_id"]
        wait_event(d, f"job-{started}", "job-progress", check=lambda e: e["step"] >= 3)
    else:
        started = d.submit("sleep", params={"seconds": 60})["job_id"]
        wait_event(d, f"job-{started}", "job-started" if state == "starting" else "job-progress")
    if state == "queued":  # a run node's job, queued behind the running one
        run_id = d.post("/v1/runs", json={"graph": ONE_NODE}).json()["run"]["run_id"]
        node_job = wait_event(d, f"run-{run_id}", "node-queued")["event"]["job_id"]
    queued = d.submit("outputs", params={"text": "after the restart"})["job_id"]  # one slot: it waits
    first_daemon = d.proc.pid if d.proc else 0
    if state == "checkpointing" and sig == signal.SIGKILL:
        d.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]  # the worker checkpoints on its way out
        wait_in_file(home / "log.sqlite", f"job-{started}", "job-checkpointed")  # the API stopped answering
    d.stop(sig)

    with running(home, env=ONE_SLOT) as d2:
        restarted = [e for e in events(d2, "daemon") if e["type"] == "daemon-started"][-1]
        assert restarted["event"]["pid"] != first_daemon
        later = wait_job_end(d2, queued)
        assert later["state"] == "succeeded", later
        assert tags(d2, queued) == ["job-queued", "job-started", "job-succeeded"]
        assert wait_event(d2, f"job-{queued}", "job-started")["position"] > restarted["position"]

        stopped = wait_job_end(d2, started)
        assert stopped["state"] == "interrupted", stopped
        assert tags(d2, started).count("job-started") == 1  # a started standalone job is not run again

        if state == "queued":
            view = wait_run_end(d2, run_id or "")
            node = view["run"]["nodes"]["n"]
            assert view["run"]["state"] == "succeeded" and node["jobs"] == [node_job]
            assert "job-interrupted" not in tags(d2, node_job)
        if state == "checkpointing":
            view = wait_run_end(d2, run_id or "")
            count = view["run"]["nodes"]["count"]
            assert view["run"]["state"] == "succeeded" and count["jobs"][0] == started and len(count["jobs"]) == 2
            assert count["outputs"]["step"] == 200
            assert count["outputs"]["resumed_from"] == stopped["checkpoint_step"] > 0


@pytest.mark.anyio
async def test_only_attempts_that_started_count_against_a_nodes_resume_budget(tmp_path: Path) -> None:
    """A log of an older daemon, which marked queued jobs interrupted at each restart without
    starting them: such attempts never exhaust `max_resumes`; attempts that started do."""
    services = build_services(Paths.from_env(tmp_path / "home"), version="test", plugin_dirs=[FIXTURES],
                              builtin_dir=Path(os.devnull), slots=["cpu0"])  # no scheduler: jobs stay queued
    await services.plugins.scan()
    runs, store = services.runs, services.store
    run_id = runs.submit(ONE_NODE).run_id
    runs.advance()

    def interrupt(*, started: bool) -> Any:
        job_id = runs.find(run_id).nodes["n"].job_id
        before: list[Event] = [J.JobStarted(job_id=job_id, pid=os.getpid(), slot="cpu0", log_path="-")]
        store.append(f"job-{job_id}", [*(before if started else []),
                                       J.JobInterrupted(job_id=job_id, reason="daemon restarted")])
        runs.advance()
        return runs.find(run_id).nodes["n"]

    for _ in range(runs.max_resumes + 2):
        node = interrupt(started=False)
        assert node.state == "queued", node.error
    for _ in range(runs.max_resumes):
        assert interrupt(started=True).state == "queued"
    node = interrupt(started=True)
    assert node.state == "failed" and node.attempt == 2 * runs.max_resumes + 3
    store.close()
