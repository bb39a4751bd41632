"""The real daemon in a subprocess on a real Unix socket: status, follow, jobs, cancel, crashes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.daemon.daemon_proc import Daemon, running


def wait_message(d: Daemon, job_id: str, message: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the job until its progress message is `message` (what the operation reports once ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = d.get(f"/v1/jobs/{job_id}").json()["job"]
        if job["message"] == message:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never reported {message!r}")


def sse_events(resp: httpx.Response, *, until: int) -> list[dict[str, Any]]:
    """Parse SSE frames until an event with position `until` arrives."""
    out: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    for line in resp.iter_lines():
        if line == "":
            if "data" in frame:
                out.append({"id": int(frame["id"]), "event": frame["event"], "data": json.loads(frame["data"])})
                if out[-1]["id"] >= until:
                    return out
            frame = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            frame[key] = value
    return out


def test_status_permissions_and_a_single_instance(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        status = d.get("/v1/status").json()
        assert status["head"] >= 2 and status["plugins"] == {"loaded": 1} and status["slots"] == {"cpu0": None}
        assert stat.S_IMODE(os.stat(d.paths.socket).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(d.paths.runtime).st_mode) == 0o700
        second = subprocess.run([sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run"], env=d.env, capture_output=True,
                                text=True, timeout=30)
        assert second.returncode == 3
        assert "already running" in second.stderr and f"pid {d.proc.pid}" in second.stderr  # type: ignore[union-attr]
        assert d.get("/v1/status").status_code == 200
    assert not d.paths.socket.exists()


def test_follow_has_no_gap_between_history_and_live_and_resumes(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        first = d.submit("sleep", params={"seconds": 0})
        d.wait_job(first["job_id"], ("succeeded",))
        head = d.get("/v1/status").json()["head"]
        got: list[dict[str, Any]] = []

        def follow() -> None:
            with d.client(timeout=30) as c, c.stream("GET", "/v1/events?follow=1&after=0") as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                got.extend(sse_events(resp, until=head + 6))

        t = threading.Thread(target=follow)
        t.start()
        second = d.submit("progress", params={"n": 3})
        d.wait_job(second["job_id"], ("succeeded",))
        t.join(20)
        ids = [e["id"] for e in got]
        assert ids == list(range(1, len(ids) + 1)) and ids[-1] >= head + 6
        assert got[0]["data"]["type"] == "daemon-started"
        # Reconnect as a browser would after a drop: Last-Event-ID wins over ?after.
        with d.client() as c, c.stream("GET", "/v1/events?follow=1&after=0",
                                      headers={"Last-Event-ID": str(head)}) as resp:
            again = sse_events(resp, until=head + 2)
        assert [e["id"] for e in again] == [head + 1, head + 2]
        page = d.get("/v1/events", params={"after": head, "limit": 2, "stream": f"job-{second['job_id']}"})
        assert [e["stream"] for e in page.json()["events"]] == [f"job-{second['job_id']}"] * 2


def test_job_lifecycle_and_batched_metrics(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        job = d.submit("progress", params={"n": 2000}, command_id="cmd-progress")
        assert d.submit("progress", params={"n": 2000}, command_id="cmd-progress")["job_id"] == job["job_id"]
        done = d.wait_job(job["job_id"], ("succeeded", "failed"))
        assert done["state"] == "succeeded" and done["outputs"] == {"count": 2000}
        assert done["metrics"]["step"] == 1999
        events = d.get("/v1/events", params={"stream": f"job-{job['job_id']}", "limit": 10000}).json()
        types = [e["type"] for e in events["events"]]
        metric_events = [e for e in events["events"] if e["type"] == "job-metrics"]
        points = [p["step"] for e in metric_events for p in e["event"]["points"]]
        assert points == list(range(2000))
        assert len(metric_events) < 200  # batched: ~one append per 200 ms, not one per point
        assert types[0] == "job-queued" and types[1] == "job-started" and types[-1] == "job-succeeded"
        jobs = d.get("/v1/jobs", params={"state": "succeeded"}).json()["jobs"]
        assert [j["job_id"] for j in jobs] == [job["job_id"]]


def test_cancel_of_a_job_that_ignores_sigterm_ends_within_grace_plus_two_seconds(tmp_path: Path) -> None:
    with running(tmp_path / "home", grace_s=1.0) as d:
        job = d.submit("hang", params={"seconds": 60})
        # The operation reports "hanging" only after installing its SIGTERM-ignoring handler.
        wait_message(d, job["job_id"], "hanging")
        t0 = time.monotonic()
        r = d.post(f"/v1/jobs/{job['job_id'][:8]}/cancel", json={"reason": "test"})
        assert r.status_code == 202
        done = d.wait_job(job["job_id"], ("cancelled", "failed"), timeout=10)
        assert done["state"] == "cancelled" and time.monotonic() - t0 < 1.0 + 2.0
        events = d.get("/v1/events", params={"stream": f"job-{job['job_id']}"}).json()["events"]
        assert events[-1]["event"]["forced"] is True


def test_a_worker_killed_with_sigkill_fails_the_job_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        job = d.submit("sleep", params={"seconds": 60})
        running_job = d.wait_job(job["job_id"], ("running",))
        os.killpg(running_job["pid"], signal.SIGKILL)
        failed = d.wait_job(job["job_id"], ("failed",))
        assert failed["cause"] in ("signal", "oom") and "SIGKILL" in failed["error"]
        nxt = d.submit("sleep", params={"seconds": 0})
        assert d.wait_job(nxt["job_id"], ("succeeded",))["state"] == "succeeded"
        crash = d.submit("crash")
        crashed = d.wait_job(crash["job_id"], ("failed",))
        assert crashed["cause"] == "signal" and "SIGSEGV" in crashed["error"]
        assert any("about to crash" in line for line in crashed["last_lines"])


def test_sigterm_stops_gracefully_and_a_restart_interrupts_orphans(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = Daemon(home).start()
    job = d.submit("hang", params={"seconds": 60})
    d.wait_job(job["job_id"], ("running",))
    d.stop(signal.SIGKILL)
    with running(home) as d2:
        row = d2.get(f"/v1/jobs/{job['job_id']}").json()["job"]
        assert row["state"] == "interrupted"
        with d2.client() as c:
            types = [e["type"] for e in c.get("/v1/events", params={"type": "daemon-started,daemon-stopped"}).json()["events"]]
        assert types == ["daemon-started", "daemon-started"]  # the killed one never said it stopped
    assert d2.proc is not None and d2.proc.returncode == 0


def test_the_daemon_never_imports_torch(tmp_path: Path) -> None:
    code = ("import sys, pkgutil, importlib, tunelog.daemon as d\n"
            "for m in pkgutil.walk_packages(d.__path__, 'tunelog.daemon.'):\n"
            "    importlib.import_module(m.name)\n"
            "import tunelog.daemon.main, tunelog.store, tunelog.events.domain\n"
            "bad = sorted(m for m in ('torch', 'transformers', 'peft', 'accelerate', 'bitsandbytes') if m in sys.modules)\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    with running(tmp_path / "home", builtins=True) as d:  # built-in plugins are checked in throwaway processes
        job = d.submit("sleep", params={"seconds": 0})
        d.wait_job(job["job_id"], ("succeeded",))
        maps = Path(f"/proc/{d.proc.pid}/maps").read_text()  # type: ignore[union-attr]
        assert "libtorch" not in maps and "/torch/" not in maps
        loaded = {r["name"] for r in d.get("/v1/plugins").json()["plugins"] if r["status"] == "loaded"}
        assert {"datasets", "lora_trainer", "adapter_merge", "evaluate", "testops"} <= loaded
